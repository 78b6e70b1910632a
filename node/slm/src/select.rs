//! Graceful degradation: choose the largest configured model that fits the available RAM,
//! and fall back to [`Fallback`] (which reports why no model is available) when none fits or
//! every candidate file is missing, truncated or corrupt. The node keeps running either way.
//!
//! The RAM a model needs is estimated from its file size and the weight format (Q8_0
//! conversion of 4-bit weights roughly doubles the matrices; f32 multiplies them by ~8) plus
//! the KV cache and a working margin. Available RAM is `MemAvailable` from /proc/meminfo.

use crate::engine::{Engine, EngineOptions};
use crate::model::WeightFormat;
use millwright_core::{Completion, GenParams, LanguageModel, Prompt, SlmError};
use std::path::{Path, PathBuf};

/// Bytes of RAM the kernel says are available (`MemAvailable`), if readable.
pub fn mem_available_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo_available(&s)
}

fn parse_meminfo_available(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Estimated resident bytes for running the GGUF of `file_bytes` in `format` with a context of
/// `max_context` positions.
pub fn estimate_ram_bytes(file_bytes: u64, format: WeightFormat, max_context: usize) -> u64 {
    let weights = match format {
        WeightFormat::Auto | WeightFormat::Native => file_bytes,
        WeightFormat::Q8_0 => file_bytes.saturating_mul(2),
        WeightFormat::F32 => file_bytes.saturating_mul(8),
    };
    // KV cache: ~0.1% of the weights per 1k positions is typical for GQA models; keep it
    // simple and generous, plus a fixed working margin.
    let kv = file_bytes / 64 * (max_context as u64).div_ceil(1024);
    weights + kv + 64 * 1024 * 1024
}

/// Picks from `candidates` the largest existing file whose estimate fits in `available` bytes
/// (keeping 25% of it free for the rest of the node). Returns the chosen path and the reasons
/// the others were skipped.
pub fn choose_model(
    candidates: &[PathBuf],
    available: u64,
    opts: &EngineOptions,
) -> (Option<PathBuf>, Vec<String>) {
    let budget = available / 4 * 3;
    let mut notes = Vec::new();
    let mut sized: Vec<(u64, &PathBuf)> = Vec::new();
    for p in candidates {
        match std::fs::metadata(p) {
            Ok(m) => sized.push((m.len(), p)),
            Err(e) => notes.push(format!("{}: {e}", p.display())),
        }
    }
    sized.sort_by_key(|b| std::cmp::Reverse(b.0));
    for (size, p) in sized {
        let need = estimate_ram_bytes(size, opts.weight_format, opts.max_context);
        if need <= budget {
            return (Some(p.clone()), notes);
        }
        notes.push(format!(
            "{}: needs ~{} MB, {} MB usable",
            p.display(),
            need / (1 << 20),
            budget / (1 << 20)
        ));
    }
    (None, notes)
}

/// Loads the largest candidate that fits the available RAM and loads cleanly; otherwise
/// returns a [`Fallback`] that explains why. Never fails.
pub fn load_best(candidates: &[PathBuf], opts: &EngineOptions) -> Box<dyn LanguageModel> {
    let available = mem_available_bytes().unwrap_or(u64::MAX / 2);
    let mut remaining: Vec<PathBuf> = candidates.to_vec();
    let mut reasons = Vec::new();
    loop {
        let (choice, notes) = choose_model(&remaining, available, opts);
        reasons.extend(notes);
        let Some(path) = choice else { break };
        match Engine::load(&path, opts) {
            Ok(e) => return Box::new(e),
            Err(e) => {
                reasons.push(e.to_string());
                remaining.retain(|p| p != &path);
            }
        }
    }
    if candidates.is_empty() {
        reasons.push("no model configured".into());
    }
    Box::new(Fallback::new(reasons.join("; ")))
}

/// Loads one model file, or a [`Fallback`] naming the problem.
pub fn load_or_fallback(path: &Path, opts: &EngineOptions) -> Box<dyn LanguageModel> {
    match Engine::load(path, opts) {
        Ok(e) => Box::new(e),
        Err(e) => Box::new(Fallback::new(e.to_string())),
    }
}

/// The stand-in when no model could be loaded: every request answers
/// [`SlmError::Unavailable`] with the reason, so callers use their rule-based answers.
#[derive(Clone, Debug)]
pub struct Fallback {
    reason: String,
}

impl Fallback {
    /// A fallback that reports `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// Why no model is available.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl LanguageModel for Fallback {
    fn name(&self) -> &str {
        "fallback (no language model)"
    }

    fn generate(
        &mut self,
        _prompt: &Prompt,
        _params: &GenParams,
        _on_token: &mut dyn FnMut(&str),
    ) -> Result<Completion, SlmError> {
        Err(SlmError::Unavailable(self.reason.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_parsed() {
        let s = "MemTotal: 100 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(parse_meminfo_available(s), Some(2048 * 1024));
        assert_eq!(parse_meminfo_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn largest_fitting_model_is_chosen() {
        let dir = std::env::temp_dir().join(format!("mw-slm-select-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.gguf");
        let big = dir.join("big.gguf");
        std::fs::write(&small, vec![0u8; 1000]).unwrap();
        std::fs::write(&big, vec![0u8; 100_000_000]).unwrap();
        let opts = EngineOptions::default();
        let (c, _) = choose_model(&[small.clone(), big.clone()], 8 << 30, &opts);
        assert_eq!(c, Some(big.clone()));
        let (c, notes) = choose_model(&[small.clone(), big.clone()], 200 << 20, &opts);
        assert_eq!(c, Some(small.clone()));
        assert!(notes.iter().any(|n| n.contains("big.gguf")));
        let (c, _) = choose_model(&[big.clone(), dir.join("absent.gguf")], 10 << 20, &opts);
        assert_eq!(c, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fallback_reports_unavailable() {
        let mut f = load_best(
            &[PathBuf::from("/nonexistent/model.gguf")],
            &EngineOptions::default(),
        );
        let err = f
            .generate(&Prompt::new("s", "u"), &GenParams::default(), &mut |_| {})
            .unwrap_err();
        match err {
            SlmError::Unavailable(r) => assert!(r.contains("/nonexistent/model.gguf"), "{r}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
