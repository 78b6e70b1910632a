//! `millwright bench model`: the language-model benchmark (one JSON line on stdout).
//!
//! Only argument handling lives here; the measurements are `millwright_slm::bench`.

use crate::cli::BenchModelArgs;
use anyhow::Context;
use millwright_slm::bench::{run_model_bench, BenchOptions};
use millwright_slm::WeightFormat;
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
    let opts = BenchOptions {
        threads: args.threads,
        weight_format,
        decode_tokens: args.decode_tokens.max(2),
    };
    let v = run_model_bench(&model, &opts)
        .with_context(|| format!("model benchmark with {}", model.display()))?;
    println!("{v}");
    Ok(())
}
