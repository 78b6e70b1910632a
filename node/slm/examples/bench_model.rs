//! The model benchmark without the CLI: `bench_model [MODEL] [THREADS] [q8_0|native|f32]`,
//! prints the benchmark's own keys of `millwright bench model`'s JSON line (without the
//! process figures: RSS, CPU time and load average are the app's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use millwright_slm::bench::{run_model_bench, BenchOptions};
use millwright_slm::WeightFormat;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let model = a
        .get(1)
        .cloned()
        .unwrap_or_else(|| "models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    let opts = BenchOptions {
        threads: a.get(2).and_then(|s| s.parse().ok()),
        weight_format: a
            .get(3)
            .and_then(|s| WeightFormat::parse(s))
            .unwrap_or_default(),
        ..BenchOptions::default()
    };
    let bench = run_model_bench(model.as_ref(), &opts, &mut |_| {}).unwrap();
    println!("{}", bench.to_json());
}
