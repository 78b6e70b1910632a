//! Batched decode throughput alone (for profiling): `batch_decode [MODEL] [ROUNDS] [SIZES] [KERNELS] [THREADS]`,
//! e.g. `batch_decode models/SmolLM2-135M-Instruct.Q4_1.gguf 3 1,16`; prints the aggregate
//! decode tokens/s of each batch size per round (the sizes alternate within a round), and
//! in brackets the tokens per CPU second of the whole run (prefills included; steadier than
//! wall time on a shared machine, and with one thread free of the workers' spinning).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use millwright_slm::bench::{decode_throughput, BATCH_TOKENS};
use millwright_slm::{Engine, EngineOptions, KernelCap};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let model = a
        .get(1)
        .cloned()
        .unwrap_or_else(|| "models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    let rounds: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let sizes: Vec<usize> = a
        .get(3)
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4, 16]);
    let kernels = a
        .get(4)
        .and_then(|s| KernelCap::parse(s))
        .unwrap_or_default();
    let opts = EngineOptions {
        kernels,
        threads: a.get(5).and_then(|s| s.parse().ok()),
        ..EngineOptions::default()
    };
    let mut e = Engine::load(model.as_ref(), &opts).unwrap();
    println!("kernels {}", e.model().kernels().name());
    decode_throughput(&mut e, 2, 8).unwrap();
    for r in 0..rounds {
        let v: Vec<String> = sizes
            .iter()
            .map(|&n| {
                let c0 = cpu_s();
                let t = decode_throughput(&mut e, n, BATCH_TOKENS).unwrap();
                let cpu = cpu_s() - c0;
                let per_cpu = (n * (BATCH_TOKENS - 1)) as f64 / cpu.max(1e-3);
                format!("{n}: {t:.1} [{per_cpu:.1}]")
            })
            .collect();
        println!("round {r}: {}", v.join("  "));
    }
}

/// CPU seconds (user + system) of this process so far.
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command's `)`
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}
