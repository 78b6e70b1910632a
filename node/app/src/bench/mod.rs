//! `millwright bench …`: the benchmarks, each printing one JSON line (only with the `bench`
//! Cargo feature).
//!
//! One file per benchmark; process facts (RSS, CPU time, load) come from `crate::procinfo`.
//! Benchmarks that need a second process (a publisher, Modbus devices) start this binary again
//! with a hidden `bench` subcommand. Nothing here may be used by the node's own commands.

pub mod ask;
pub mod detect;
pub mod ingest;
pub mod modbus;
pub mod model;
pub mod plant;

use crate::cli::BenchCommand;
use std::process::ExitCode;

/// Runs a `bench` subcommand (including the hidden child-process sides).
pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Ingest(a) => ingest::run(&a).await,
        BenchCommand::Ask(a) => ask::run(&a).await,
        BenchCommand::IngestPublisher(a) => ingest::publish(&a).await.map(|()| ExitCode::SUCCESS),
        BenchCommand::Detect(a) => detect::run(&a),
        BenchCommand::Modbus(a) => modbus::run(&a).await,
        BenchCommand::ModbusServe(a) => modbus::serve(&a).await,
        BenchCommand::Model(a) => model::run(&a).map(|()| ExitCode::SUCCESS),
        BenchCommand::Plant(a) => plant::run(&a),
    }
}
