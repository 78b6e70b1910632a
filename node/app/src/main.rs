//! `millwright`: the node binary. Parses the command line and runs a subcommand.
//!
//! Cargo features (both default): `demo` (the `demo` subcommand, with the simulator and the
//! embedded broker) and `bench` (the `bench` subcommands). `--no-default-features` builds the
//! lean production node without either; nothing the node itself runs may depend on them.

mod analytics;
mod ask;
#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "embedded-broker")]
mod broker;
mod cli;
mod cmd;
mod config;
mod egress;
mod memory;
mod metrics;
mod node;
// Peak RSS, CPU time and load average serve the benchmarks only.
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
mod procinfo;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_json);
    millwright_mqtt::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("millwright")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async {
        match cli.command {
            Command::Run { config } => cmd::run::run(&config).await,
            Command::CheckConfig { file } => cmd::check_config::run(&file),
            Command::CheckPayload(a) => cmd::check_payload::run(&a),
            #[cfg(feature = "demo")]
            Command::Demo(a) => cmd::demo::run(&a).await,
            Command::Report(a) => cmd::report::run(&a).await,
            Command::Ask(a) => cmd::ask::run(&a).await,
            #[cfg(feature = "bench")]
            Command::Bench(b) => bench::run(b).await,
            Command::Modbus(cli::ModbusCommand::Probe(a)) => cmd::modbus::probe(&a).await,
            Command::Detect(a) => cmd::detect::run(&a),
            Command::Schema => cmd::schema::run(),
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Now as nanoseconds since the Unix epoch.
pub fn time_ns() -> i64 {
    millwright_core::time::now_ns()
}

fn init_tracing(filter: &str, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("MILLWRIGHT_LOG").unwrap_or_else(|_| filter.to_string());
    // Quiet the embedded broker unless asked for: rumqttd logs every connection closed during
    // or after its handshake at ERROR (the readiness probe, a client's normal disconnect); its
    // failure to start is reported by the node (`broker.rs`).
    let filter = if filter.contains("rumqttd") {
        filter
    } else {
        format!("{filter},rumqttd=warn,rumqttd::server::broker=off")
    };
    let env = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}
