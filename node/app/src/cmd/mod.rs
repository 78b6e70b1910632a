//! One module per subcommand; the benchmarks live in `bench/`.

pub mod ask;
pub mod check_config;
pub mod check_payload;
#[cfg(feature = "demo")]
pub mod demo;
pub mod detect;
pub mod modbus;
pub mod report;
pub mod run;
pub mod schema;
