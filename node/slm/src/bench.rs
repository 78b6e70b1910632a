//! The model benchmark behind `millwright bench model`: load time, time to first token for
//! 60- and 400-token prompts and after a cached 300-token system prompt, prompt and decode
//! throughput, and decode throughput under a vocabulary mask with the mask's cost per token.
//! Returns the timings ([`ModelBench`]); process figures (RSS, CPU time, load
//! average) are the caller's, measured at the [`BenchPhase`]s it is told about (this crate
//! reads nothing from /proc for benchmarks).
//!
//! Batched decode: [`decode_throughput`] gives the aggregate decode tokens/s of 1, 4 or 16
//! sequences decoding together (`decode_tok_s_1`, `_4`, `_16`; `millwright bench ask` calls
//! it too).
//!
//! Prompts are built from a fixed maintenance text so runs are comparable; decoding is greedy
//! with EOS ignored by construction (max_tokens counts, no stop sequences).

use crate::engine::{Engine, EngineOptions};
use crate::kernels::KernelCap;
use crate::model::WeightFormat;
use millwright_core::{GenParams, SlmError};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Kernel threads (None: all cores).
    pub threads: Option<usize>,
    /// Weight format.
    pub weight_format: WeightFormat,
    /// Tokens to decode for `decode_tok_s`.
    pub decode_tokens: usize,
    /// The most capable kernel set to use.
    pub kernels: KernelCap,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            threads: None,
            weight_format: WeightFormat::Auto,
            decode_tokens: 128,
            kernels: KernelCap::Auto,
        }
    }
}

const FILLER: &str =
    "Pump P-101 on line 3 moves cooling water at 42.5 m³/h. The bearing temperature \
is 71.3 °C and the vibration velocity is 4.8 mm/s RMS, above the ISO 10816 alarm of 4.5 mm/s. \
The motor current rose from 18.2 A to 21.7 A within two hours while the discharge pressure \
fell from 3.1 bar to 2.6 bar. Maintenance replaced the mechanical seal 41 days ago. ";

/// Exactly `n` tokens of filler text (after tokenization).
fn tokens_of(engine: &Engine, n: usize) -> Vec<u32> {
    let mut text = String::new();
    let mut ids = Vec::new();
    while ids.len() < n {
        text.push_str(FILLER);
        ids = engine.tokenizer().encode(&text);
    }
    ids.truncate(n);
    ids
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Moments at which the caller may measure the process (RSS, CPU time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchPhase {
    /// The model is loaded; nothing has run yet.
    Loaded,
    /// The timed decode runs start.
    DecodeStart,
    /// The timed decode runs are over.
    DecodeEnd,
}

/// What the benchmark measured.
#[derive(Clone, Debug)]
pub struct ModelBench {
    /// The model file.
    pub model: String,
    /// The weight format used.
    pub weight_format: WeightFormat,
    /// MiB held by the weights.
    pub weight_mb: f64,
    /// Kernel threads of the pool.
    pub threads: usize,
    /// Milliseconds to load.
    pub load_ms: f64,
    /// Time to first token of a 60-token prompt (ms).
    pub ttft_ms_60: f64,
    /// Time to first token of a 400-token prompt (ms).
    pub ttft_ms_400: f64,
    /// Time to first token of a question after a cached system prefix (ms).
    pub cached_prefix_ttft_ms: f64,
    /// Positions taken from the cache for that question.
    pub cached_prefix_tokens: usize,
    /// Positions of that question computed anew.
    pub cached_question_tokens: usize,
    /// Prompt tokens per second (400-token prompt).
    pub prompt_tok_s: f64,
    /// Decode tokens per second, median of the runs.
    pub decode_tok_s: f64,
    /// Decode tokens per second of each run.
    pub decode_tok_s_runs: Vec<f64>,
    /// Tokens generated over all decode runs.
    pub decode_generated: usize,
    /// Number of decode runs.
    pub decode_runs: usize,
    /// Decode tokens per second under a vocabulary mask (median of the runs, same prompt and
    /// run as `decode_tok_s`; the vocabulary is the filler text's words).
    pub constrained_decode_tok_s: f64,
    /// Tokens generated per constrained answer (median run; the mask allows an early end).
    pub constrained_decode_tokens: usize,
    /// Milliseconds the mask cost per generated token (all constrained runs).
    pub mask_ms_per_token: f64,
    /// The kernel set used.
    pub kernels: &'static str,
    /// Times the pool switched to solo.
    pub pool_solo_switches: usize,
    /// Aggregate decode tokens/s of 1, 4 and 16 sequences decoding together (median of
    /// [`BATCH_RUNS`] runs of [`BATCH_TOKENS`] tokens each).
    pub decode_tok_s_batch: [f64; 3],
}

/// Tokens each sequence decodes in the batched decode runs.
pub const BATCH_TOKENS: usize = 64;
/// Runs per batch size (the median is reported).
pub const BATCH_RUNS: usize = 3;

impl ModelBench {
    /// The benchmark's own keys of the `bench model` JSON line (the caller adds the process
    /// figures).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "bench": "model",
            "model": self.model,
            "weight_format": self.weight_format.name(),
            "weight_mb": self.weight_mb,
            "threads": self.threads,
            "load_ms": self.load_ms,
            "ttft_ms_60": self.ttft_ms_60,
            "ttft_ms_400": self.ttft_ms_400,
            "cached_prefix_ttft_ms": self.cached_prefix_ttft_ms,
            "cached_prefix_tokens": self.cached_prefix_tokens,
            "cached_question_tokens": self.cached_question_tokens,
            "prompt_tok_s": self.prompt_tok_s,
            "decode_tok_s": self.decode_tok_s,
            "decode_tokens": self.decode_generated / self.decode_runs.max(1),
            "decode_tok_s_runs": self.decode_tok_s_runs,
            "constrained_decode_tok_s": self.constrained_decode_tok_s,
            "constrained_decode_tokens": self.constrained_decode_tokens,
            "mask_ms_per_token": self.mask_ms_per_token,
            "kernels": self.kernels,
            "pool_solo_switches": self.pool_solo_switches,
            "decode_tok_s_1": self.decode_tok_s_batch[0],
            "decode_tok_s_4": self.decode_tok_s_batch[1],
            "decode_tok_s_16": self.decode_tok_s_batch[2],
            "decode_batch_speedup_16": self.decode_tok_s_batch[2] / self.decode_tok_s_batch[0].max(1e-9),
        })
    }
}

/// Runs the benchmark on the model at `path` and returns what it measured;
/// `on_phase` is called at each [`BenchPhase`].
pub fn run_model_bench(
    path: &Path,
    opts: &BenchOptions,
    on_phase: &mut dyn FnMut(BenchPhase),
) -> Result<ModelBench, SlmError> {
    let t_load = Instant::now();
    let mut engine = Engine::load(
        path,
        &EngineOptions {
            weight_format: opts.weight_format,
            max_context: 2048,
            threads: opts.threads,
            kernels: opts.kernels,
        },
    )?;
    let load_ms = ms(t_load);
    on_phase(BenchPhase::Loaded);
    let one = GenParams {
        max_tokens: 1,
        ..GenParams::default()
    };
    // warm-up (kernel thread pool, page faults)
    let warm = tokens_of(&engine, 8);
    engine.generate_tokens(&warm, &one, &mut |_| {})?;

    let p60 = tokens_of(&engine, 60);
    engine.clear_cache();
    let c60 = engine.generate_tokens(&p60, &one, &mut |_| {})?;

    let p400 = tokens_of(&engine, 400);
    engine.clear_cache();
    let c400 = engine.generate_tokens(&p400, &one, &mut |_| {})?;
    let prompt_tok_s = 400.0 / (c400.ttft_ms / 1000.0);

    // cached prefix: 300-token system prefix computed once, then a 25-token question
    let sys = tokens_of(&engine, 300);
    engine.clear_cache();
    let mut question: Vec<u32> = sys.clone();
    let q: Vec<u32> = engine
        .tokenizer()
        .encode(" Why does the bearing run hot and what should the technician check first today?");
    question.extend(q.iter().cycle().take(25));
    // put the prefix into the engine cache, then time the question
    engine.generate_tokens(&sys, &one, &mut |_| {})?;
    let cq = engine.generate_tokens(&question, &one, &mut |_| {})?;
    let cached_prefix_ttft_ms = cq.ttft_ms;
    let cached_tokens = cq.cached_tokens;

    // decode
    engine.clear_cache();
    let decode_params = GenParams {
        max_tokens: opts.decode_tokens,
        repeat_penalty: 1.0,
        ..GenParams::default()
    };
    // an unterminated prompt so the model keeps writing; EOS would end early, so count tokens.
    // Three runs, the median reported: a shared machine's speed drifts from run to run.
    on_phase(BenchPhase::DecodeStart);
    let mut runs = Vec::new();
    let mut generated = 0;
    let decode_runs = 3;
    for _ in 0..decode_runs {
        engine.clear_cache();
        let cd = engine.generate_tokens(&p60, &decode_params, &mut |_| {})?;
        let decode_ms = cd.total_ms - cd.ttft_ms;
        let decoded = cd.generated_tokens.saturating_sub(1).max(1);
        runs.push(decoded as f64 / (decode_ms / 1000.0));
        generated += cd.generated_tokens;
    }
    on_phase(BenchPhase::DecodeEnd);
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let decode_tok_s = sorted[sorted.len() / 2];

    // the same decode under a vocabulary mask (the filler's words and some function words)
    let mut vocab = millwright_core::llm::Vocabulary::new();
    vocab.allow_text(FILLER);
    vocab.allow_text("the a is are was of to and or because likely check inspect replace it");
    let constrained = GenParams {
        vocabulary: Some(std::sync::Arc::new(vocab)),
        ..decode_params
    };
    let mut c_runs: Vec<(f64, usize)> = Vec::new();
    let (mut mask_ms, mut mask_steps) = (0.0, 0usize);
    engine.token_trie();
    // The mask lets the model end at a word boundary, so one answer may be short: each run
    // repeats the request until it has decoded `decode_tokens` tokens in all.
    for _ in 0..decode_runs {
        let (mut decode_ms, mut decoded, mut calls) = (0.0, 0usize, 0usize);
        while decoded < opts.decode_tokens && calls < 4 * opts.decode_tokens {
            engine.clear_cache();
            let cd = engine.generate_tokens(&p60, &constrained, &mut |_| {})?;
            decode_ms += cd.total_ms - cd.ttft_ms;
            decoded += cd.generated_tokens.saturating_sub(1).max(1);
            calls += 1;
            let m = engine.mask_stats();
            mask_ms += m.total_ms;
            mask_steps += m.steps;
        }
        c_runs.push((
            decoded as f64 / (decode_ms.max(1e-3) / 1000.0),
            decoded / calls.max(1),
        ));
    }
    c_runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut decode_tok_s_batch = [0f64; 3];
    for (out, n) in decode_tok_s_batch.iter_mut().zip([1, 4, 16]) {
        let mut r: Vec<f64> = (0..BATCH_RUNS)
            .map(|_| decode_throughput(&mut engine, n, BATCH_TOKENS))
            .collect::<Result<_, _>>()?;
        r.sort_by(f64::total_cmp);
        *out = r.get(r.len() / 2).copied().unwrap_or(0.0);
    }
    let (constrained_decode_tok_s, constrained_decode_tokens) =
        c_runs.get(c_runs.len() / 2).copied().unwrap_or((0.0, 0));
    Ok(ModelBench {
        model: engine.path().display().to_string(),
        weight_format: opts.weight_format,
        weight_mb: engine.model().weight_bytes() as f64 / 1048576.0,
        threads: crate::pool::global().threads(),
        load_ms,
        ttft_ms_60: c60.ttft_ms,
        ttft_ms_400: c400.ttft_ms,
        cached_prefix_ttft_ms,
        cached_prefix_tokens: cached_tokens,
        cached_question_tokens: question.len() - cached_tokens,
        prompt_tok_s,
        decode_tok_s,
        decode_tok_s_runs: runs,
        decode_generated: generated,
        decode_runs,
        constrained_decode_tok_s,
        constrained_decode_tokens,
        mask_ms_per_token: mask_ms / mask_steps.max(1) as f64,
        kernels: engine.model().kernels().name(),
        pool_solo_switches: crate::pool::global().solo_switches(),
        decode_tok_s_batch,
    })
}

/// Aggregate decode tokens/s of `sequences` requests decoding together (greedy, `tokens`
/// tokens each at most, no stop sequences; their prompts share a 40-token prefix and differ
/// after it). The time counted runs from the end of the last prefill to the end of the last
/// sequence; the tokens counted are those decoded in it (each sequence's first token comes
/// from its prefill). One sequence runs the engine's one-sequence path.
pub fn decode_throughput(
    engine: &mut Engine,
    sequences: usize,
    tokens: usize,
) -> Result<f64, SlmError> {
    let shared = tokens_of(engine, 40);
    let params = GenParams {
        max_tokens: tokens.max(2),
        repeat_penalty: 1.0,
        ..GenParams::default()
    };
    let requests: Vec<(Vec<u32>, GenParams)> = (0..sequences.max(1))
        .map(|i| {
            let mut t = shared.clone();
            t.extend(engine.tokenizer().encode(&format!(
                " Reading {i} of pump P-{}: the vibration is {}.{} mm/s and",
                101 + i,
                2 + i % 5,
                i % 10
            )));
            (t, params.clone())
        })
        .collect();
    engine.clear_cache();
    let out = engine.generate_tokens_batch(&requests, &mut |_, _| {});
    let (mut decoded, mut last_ttft, mut last_end) = (0usize, 0f64, 0f64);
    for c in out {
        let c = c?;
        decoded += c.generated_tokens.saturating_sub(1);
        last_ttft = last_ttft.max(c.ttft_ms);
        last_end = last_end.max(c.total_ms);
    }
    let secs = (last_end - last_ttft).max(1e-3) / 1000.0;
    Ok(decoded as f64 / secs)
}
