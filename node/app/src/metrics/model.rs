//! The language model's figures for `/metrics`: a [`Metered`] wrapper around the loaded model
//! records every generation (time to first token, prompt and decode tokens/s, CPU per token)
//! in [`ModelStats`]; the analytics driver adds queue depth and wait. Counting only; the model
//! itself lives in `millwright-slm`.

use millwright_core::{Completion, GenParams, LanguageModel, Prompt, SlmError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A float kept in an `AtomicU64` as its bits.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    /// The value (0.0 until set).
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Counters of the model thread (all relaxed; read by `/metrics`).
#[derive(Debug, Default)]
pub struct ModelStats {
    /// Generations finished.
    pub generations: AtomicU64,
    /// Prompt tokens processed (without cached prefix tokens).
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Microseconds spent on prompts (until the first token).
    pub prompt_us: AtomicU64,
    /// Microseconds spent decoding after the first token.
    pub decode_us: AtomicU64,
    /// Process CPU microseconds while generating.
    pub cpu_us: AtomicU64,
    /// Last generation: time to first token, seconds.
    pub last_ttft_s: AtomicF64,
    /// Last generation: prompt tokens/s.
    pub last_prompt_tps: AtomicF64,
    /// Last generation: decode tokens/s.
    pub last_decode_tps: AtomicF64,
    /// Last generation: CPU seconds per generated token.
    pub last_cpu_per_token_s: AtomicF64,
    /// Explanation jobs started on the model thread.
    pub jobs: AtomicU64,
    /// Microseconds jobs waited in the queue.
    pub queue_wait_us: AtomicU64,
    /// Jobs queued or running.
    pub queue_depth: AtomicU64,
    /// Resident memory the model added when it loaded, bytes.
    pub resident_bytes: AtomicU64,
    /// Loaded, in fallback (and why), loading; None: no model configured.
    pub state: std::sync::Mutex<Option<ModelState>>,
}

/// Whether explanations come from a model (for `/health`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelState {
    /// No `[model]` section: the template explains.
    NotConfigured,
    /// The model thread is loading the model.
    Loading,
    /// Loaded: its name.
    Loaded(String),
    /// No model could be loaded: why (the template explains).
    Fallback(String),
}

impl ModelState {
    /// `{"state": "...", "name"|"reason": ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            ModelState::NotConfigured => json!({"state": "not_configured"}),
            ModelState::Loading => json!({"state": "loading"}),
            ModelState::Loaded(n) => json!({"state": "loaded", "name": n}),
            ModelState::Fallback(r) => json!({"state": "fallback", "reason": r}),
        }
    }

    /// The state of a freshly loaded model: a fallback answers every request with why.
    pub fn of(model: &mut dyn LanguageModel) -> Self {
        if !model.name().starts_with("fallback") {
            return ModelState::Loaded(model.name().to_string());
        }
        match model.generate(&Prompt::default(), &GenParams::default(), &mut |_| {}) {
            Err(SlmError::Unavailable(why)) => ModelState::Fallback(why),
            Err(e) => ModelState::Fallback(e.to_string()),
            Ok(_) => ModelState::Loaded(model.name().to_string()),
        }
    }
}

impl ModelStats {
    /// The model's state (not configured until the loader says otherwise).
    pub fn state(&self) -> ModelState {
        self.state
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or(ModelState::NotConfigured)
    }

    /// Sets the model's state.
    pub fn set_state(&self, s: ModelState) {
        if let Ok(mut g) = self.state.lock() {
            *g = Some(s);
        }
    }

    /// Records one finished generation that used `cpu_s` CPU seconds (process-wide).
    pub fn record(&self, c: &Completion, cpu_s: Option<f64>) {
        let ttft_s = (c.ttft_ms / 1e3).max(0.0);
        let decode_s = ((c.total_ms - c.ttft_ms) / 1e3).max(0.0);
        let prompt = c.prompt_tokens.saturating_sub(c.cached_tokens) as u64;
        let generated = c.generated_tokens as u64;
        self.generations.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens.fetch_add(prompt, Ordering::Relaxed);
        self.generated_tokens
            .fetch_add(generated, Ordering::Relaxed);
        self.prompt_us
            .fetch_add((ttft_s * 1e6) as u64, Ordering::Relaxed);
        self.decode_us
            .fetch_add((decode_s * 1e6) as u64, Ordering::Relaxed);
        self.last_ttft_s.set(ttft_s);
        if ttft_s > 0.0 {
            self.last_prompt_tps.set(prompt as f64 / ttft_s);
        }
        // The first token comes with the prompt; the rest are decode steps.
        if decode_s > 0.0 && generated > 1 {
            self.last_decode_tps.set((generated - 1) as f64 / decode_s);
        }
        if let Some(cpu) = cpu_s {
            self.cpu_us
                .fetch_add((cpu.max(0.0) * 1e6) as u64, Ordering::Relaxed);
            if generated > 0 {
                self.last_cpu_per_token_s.set(cpu / generated as f64);
            }
        }
    }

    /// Records that a job waited `wait` in the queue and started.
    pub fn job_started(&self, wait: Duration) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        self.queue_wait_us
            .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
    }
}

/// A model that records its generations in [`ModelStats`].
pub struct Metered {
    inner: Box<dyn LanguageModel>,
    stats: Arc<ModelStats>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn LanguageModel>, stats: Arc<ModelStats>) -> Self {
        Self { inner, stats }
    }
}

impl LanguageModel for Metered {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn generate(
        &mut self,
        prompt: &Prompt,
        params: &GenParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Completion, SlmError> {
        let cpu0 = crate::procinfo::cpu_seconds();
        let r = self.inner.generate(prompt, params, on_token);
        if let Ok(c) = &r {
            let cpu = cpu0.zip(crate::procinfo::cpu_seconds()).map(|(a, b)| b - a);
            self.stats.record(c, cpu);
        }
        r
    }

    /// Passes batches through to the engine (one decode step for all of them); the CPU time
    /// of the batch is shared out over its completions by their generated tokens.
    fn generate_batch(
        &mut self,
        requests: &[(Prompt, GenParams)],
        on_token: &mut dyn FnMut(usize, &str),
    ) -> Vec<Result<Completion, SlmError>> {
        let cpu0 = crate::procinfo::cpu_seconds();
        let rs = self.inner.generate_batch(requests, on_token);
        let cpu = cpu0.zip(crate::procinfo::cpu_seconds()).map(|(a, b)| b - a);
        let tokens: u64 = rs
            .iter()
            .flatten()
            .map(|c| c.generated_tokens as u64)
            .sum::<u64>()
            .max(1);
        for c in rs.iter().flatten() {
            let share = cpu.map(|t| t * c.generated_tokens as f64 / tokens as f64);
            self.stats.record(c, share);
        }
        rs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_core::StopReason;

    #[test]
    fn a_generation_gives_rates_and_sums() {
        let s = ModelStats::default();
        let c = Completion {
            text: "x".into(),
            prompt_tokens: 110,
            cached_tokens: 10,
            generated_tokens: 21,
            stop_reason: StopReason::Eos,
            ttft_ms: 500.0,
            total_ms: 2500.0,
            model: "m".into(),
        };
        s.record(&c, Some(4.2));
        assert_eq!(s.prompt_tokens.load(Ordering::Relaxed), 100);
        assert!((s.last_prompt_tps.get() - 200.0).abs() < 1e-9);
        assert!((s.last_decode_tps.get() - 10.0).abs() < 1e-9);
        assert!((s.last_cpu_per_token_s.get() - 0.2).abs() < 1e-9);
        assert_eq!(s.decode_us.load(Ordering::Relaxed), 2_000_000);
        s.job_started(Duration::from_millis(3));
        assert_eq!(s.queue_wait_us.load(Ordering::Relaxed), 3000);
    }
}
