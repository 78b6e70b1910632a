//! One module per subcommand; the benchmarks live in `bench/` (except `bench_model`, for now).

#[cfg(feature = "bench")]
pub mod bench_model;
pub mod check_config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod detect;
pub mod modbus;
pub mod report;
pub mod run;
