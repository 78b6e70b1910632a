//! The model benchmark without the CLI: `bench_model [MODEL] [THREADS] [q8_0|native|f32]`,
//! prints the same JSON line as `millwright bench model`.
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
    println!("{}", run_model_bench(model.as_ref(), &opts).unwrap());
}
