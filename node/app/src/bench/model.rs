//! `millwright bench model`: the language-model benchmark (one JSON line on stdout).
//!
//! Argument handling and the process figures (peak RSS, RSS after load, CPU seconds per
//! token, load average, from [`crate::procinfo`]) live here; the model measurements are
//! `millwright_slm::bench`.

use crate::cli::BenchModelArgs;
use crate::procinfo;
use anyhow::Context;
use millwright_slm::bench::{run_model_bench, BenchOptions, BenchPhase};
use millwright_slm::{KernelCap, WeightFormat};
use std::path::PathBuf;

/// Runs the benchmark and prints its JSON line.
pub fn run(args: &BenchModelArgs) -> anyhow::Result<()> {
    let model = args.model.clone().unwrap_or_else(|| {
        std::env::var_os("MILLWRIGHT_MODEL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    });
    let weight_format = WeightFormat::parse(&args.weights).with_context(|| {
        format!(
            "--weights must be auto, q8_0, native or f32, not `{}`",
            args.weights
        )
    })?;
    if args.threads == Some(0) {
        anyhow::bail!("--threads must be at least 1");
    }
    let kernels = match &args.kernels {
        Some(k) => KernelCap::parse(k).with_context(|| {
            format!("--kernels must be auto, portable, avx2, avx512-vnni or avx-vnni, not `{k}`")
        })?,
        // Read once here for compatibility with the former variable; an unknown value means
        // no cap, as it did.
        None => std::env::var("MILLWRIGHT_SLM_KERNELS")
            .ok()
            .and_then(|v| KernelCap::parse(&v))
            .unwrap_or_default(),
    };
    let opts = BenchOptions {
        threads: args.threads,
        weight_format,
        decode_tokens: args.decode_tokens.max(2),
        kernels,
    };
    let (mut rss_after_load, mut cpu0, mut cpu1) = (None, None, None);
    let bench = run_model_bench(&model, &opts, &mut |phase| match phase {
        BenchPhase::Loaded => rss_after_load = procinfo::peak_rss_mb(),
        BenchPhase::DecodeStart => cpu0 = procinfo::cpu_seconds(),
        BenchPhase::DecodeEnd => cpu1 = procinfo::cpu_seconds(),
    })
    .with_context(|| format!("model benchmark with {}", model.display()))?;
    // CPU includes each run's 60-token prompt; per generated token it is an upper bound.
    let cpu_s_per_token = match (cpu0, cpu1) {
        (Some(a), Some(b)) if bench.decode_generated > 0 => {
            Some((b - a) / bench.decode_generated as f64)
        }
        _ => None,
    };
    let mut v = bench.to_json();
    if let Some(o) = v.as_object_mut() {
        o.insert("peak_rss_mb".into(), procinfo::peak_rss_mb().into());
        o.insert("rss_after_load_mb".into(), rss_after_load.into());
        o.insert("cpu_s_per_token".into(), cpu_s_per_token.into());
        o.insert("load_avg_1m".into(), procinfo::load_average_1m().into());
    }
    println!("{v}");
    Ok(())
}
