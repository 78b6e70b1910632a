//! One module per subcommand.

pub mod bench_ingest;
pub mod bench_model;
pub mod check_config;
pub mod demo;
pub mod detect;
pub mod modbus;
pub mod report;
pub mod run;
