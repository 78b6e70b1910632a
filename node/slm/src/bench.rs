//! The model benchmark behind `millwright bench model`: load time, time to first token for
//! 60- and 400-token prompts and after a cached 300-token system prompt, prompt and decode
//! throughput, peak RSS and CPU seconds per generated token. Returns one JSON object.
//!
//! Prompts are built from a fixed maintenance text so runs are comparable; decoding is greedy
//! with EOS ignored by construction (max_tokens counts, no stop sequences). Linux only for
//! the RSS and CPU figures (read from /proc/self).

use crate::engine::{Engine, EngineOptions};
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
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            threads: None,
            weight_format: WeightFormat::Auto,
            decode_tokens: 128,
        }
    }
}

const FILLER: &str =
    "Pump P-101 on line 3 moves cooling water at 42.5 m³/h. The bearing temperature \
is 71.3 °C and the vibration velocity is 4.8 mm/s RMS, above the ISO 10816 alarm of 4.5 mm/s. \
The motor current rose from 18.2 A to 21.7 A within two hours while the discharge pressure \
fell from 3.1 bar to 2.6 bar. Maintenance replaced the mechanical seal 41 days ago. ";

/// Peak resident set size in MB (VmHWM), if readable.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The 1-minute load average (other work on the machine while measuring), if readable.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds (user + system) used by this process so far, if readable.
pub fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the command name in parentheses
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this node targets
    Some((utime + stime) / 100.0)
}

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

/// Runs the benchmark on the model at `path` and returns the JSON line's object.
pub fn run_model_bench(path: &Path, opts: &BenchOptions) -> Result<serde_json::Value, SlmError> {
    let t_load = Instant::now();
    let mut engine = Engine::load(
        path,
        &EngineOptions {
            weight_format: opts.weight_format,
            max_context: 2048,
            threads: opts.threads,
        },
    )?;
    let load_ms = ms(t_load);
    let rss_after_load = peak_rss_mb();
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
    let cpu0 = cpu_seconds();
    let mut runs = Vec::new();
    let mut generated = 0;
    for _ in 0..3 {
        engine.clear_cache();
        let cd = engine.generate_tokens(&p60, &decode_params, &mut |_| {})?;
        let decode_ms = cd.total_ms - cd.ttft_ms;
        let decoded = cd.generated_tokens.saturating_sub(1).max(1);
        runs.push(decoded as f64 / (decode_ms / 1000.0));
        generated += cd.generated_tokens;
    }
    let cpu1 = cpu_seconds();
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let decode_tok_s = sorted[sorted.len() / 2];
    // CPU includes each run's 60-token prompt; per generated token it is an upper bound.
    let cpu_s_per_token = match (cpu0, cpu1) {
        (Some(a), Some(b)) if generated > 0 => Some((b - a) / generated as f64),
        _ => None,
    };
    let threads = crate::pool::global().threads();
    Ok(json!({
        "bench": "model",
        "model": engine.path().display().to_string(),
        "weight_format": opts.weight_format.name(),
        "weight_mb": engine.model().weight_bytes() as f64 / 1048576.0,
        "threads": threads,
        "load_ms": load_ms,
        "ttft_ms_60": c60.ttft_ms,
        "ttft_ms_400": c400.ttft_ms,
        "cached_prefix_ttft_ms": cached_prefix_ttft_ms,
        "cached_prefix_tokens": cached_tokens,
        "cached_question_tokens": question.len() - cached_tokens,
        "prompt_tok_s": prompt_tok_s,
        "decode_tok_s": decode_tok_s,
        "decode_tokens": generated / 3,
        "decode_tok_s_runs": runs,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_load_mb": rss_after_load,
        "cpu_s_per_token": cpu_s_per_token,
        "kernels": crate::kernels::Isa::detect().name(),
        "load_avg_1m": load_average(),
        "pool_solo_switches": crate::pool::global().solo_switches(),
    }))
}
