//! `millwright-sim`: runs simulated machines (pump, motor, compressor) and serves each one's
//! sensor-node register map over Modbus TCP until Ctrl-C.
//!
//! Argument parsing and wiring only; the simulation lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use millwright_sim::config::{FaultSpec, MachineSpec};
use millwright_sim::{
    register_map, ConfigError, MachineConfig, MachineKind, MachineServer, SimFile,
};
use millwright_sim::{Function, RegisterValueType};

/// Simulated machines with sensor nodes, served over Modbus TCP.
///
/// Example:
///   millwright-sim --machine pump:P-101@127.0.0.1:5020 --machine motor:M-201@127.0.0.1:5021/2
///                  --fault P-101:bearing_wear:30:120 --speed 60
#[derive(Debug, Parser)]
#[command(name = "millwright-sim", version, verbatim_doc_comment)]
struct Cli {
    /// A machine: KIND:NAME@HOST:PORT[/UNIT], KIND = pump | motor | compressor, UNIT defaults
    /// to 1 (the server also answers unit 0 and 255). Repeatable.
    #[arg(short, long = "machine", value_name = "SPEC")]
    machines: Vec<MachineSpec>,
    /// A fault: NAME:KIND:ONSET_S[:RAMP_S] in simulated seconds after start. KIND =
    /// bearing_wear | cavitation | overheating | stuck_sensor | dropout | leak | no_response.
    /// Severity ramps linearly from 0 at ONSET_S to 1 after RAMP_S (default 0 = step). Repeatable.
    #[arg(short, long = "fault", value_name = "SPEC")]
    faults: Vec<FaultSpec>,
    /// Simulated seconds per real second (e.g. 60 = one minute per second).
    #[arg(short, long)]
    speed: Option<f64>,
    /// TOML file with `speed` and `[[machine]]` tables (see firmware/sim/README.md);
    /// combined with --machine/--fault.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Base random seed for machines given with --machine (machine i gets seed + i).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the register map of a machine kind as a table and exit.
    #[arg(long, value_name = "KIND")]
    print_map: Option<MachineKind>,
    /// Log a one-line summary per machine every this many real seconds (0 = never).
    #[arg(long, default_value_t = 10)]
    status_every_s: u64,
}

fn print_map(kind: MachineKind) {
    println!("# register map: {kind}");
    println!("function  address  type    order  scale   unit      signal");
    for d in register_map(kind) {
        let f = match d.function {
            Function::Input => "input",
            Function::Holding => "holding",
        };
        let order = if d.data_type.registers() == 2 {
            d.word_order.name()
        } else {
            "-"
        };
        let t = match d.data_type {
            RegisterValueType::Bits16 => "bits16",
            other => other.name(),
        };
        println!(
            "{f:<9} {:<8} {t:<7} {order:<6} {:<7} {:<9} {}",
            d.address, d.scale, d.unit, d.signal
        );
    }
}

fn build(cli: &Cli) -> Result<Vec<(std::net::SocketAddr, MachineConfig)>, ConfigError> {
    let mut machines = match &cli.config {
        Some(path) => SimFile::load(path)?.machines()?,
        None => Vec::new(),
    };
    for (i, m) in cli.machines.iter().enumerate() {
        if machines.iter().any(|(_, c)| c.name == m.name) {
            return Err(ConfigError::DuplicateName(m.name.clone()));
        }
        let mut cfg = MachineConfig::new(m.kind, m.name.clone(), m.unit_id);
        cfg.seed = cli.seed.wrapping_add(i as u64);
        machines.push((m.addr, cfg));
    }
    for f in &cli.faults {
        let Some((_, cfg)) = machines.iter_mut().find(|(_, c)| c.name == f.machine) else {
            return Err(ConfigError::UnknownMachine(
                format!("{}:{}", f.machine, f.fault.kind),
                f.machine.clone(),
            ));
        };
        cfg.faults.push(f.fault);
    }
    for (_, cfg) in machines.iter_mut() {
        if let Some(s) = cli.speed {
            cfg.time_scale = s;
        }
        cfg.validate()?;
    }
    Ok(machines)
}

fn summary(s: &MachineServer) {
    let r = s.input_registers();
    let get = |a: usize| r.get(a).copied().unwrap_or(0);
    let f32_at = |a: usize| f32::from_bits((u32::from(get(a)) << 16) | u32::from(get(a + 1)));
    tracing::info!(
        machine = s.name(),
        sim_time_s = format!("{:.0}", s.sim_time_s()),
        requests = s.request_count(),
        status = format!("{:#06x}", get(0)),
        vel_rms_mm_s = f64::from(get(9)) / 100.0,
        kurtosis = f64::from(get(13)) / 100.0,
        temp_c = f64::from(get(14) as i16) / 100.0,
        loop0 = f32_at(16),
        "status"
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if let Some(kind) = cli.print_map {
        print_map(kind);
        return ExitCode::SUCCESS;
    }
    let machines = match build(&cli) {
        Ok(m) if m.is_empty() => {
            eprintln!(
                "millwright-sim: no machines; give --machine KIND:NAME@HOST:PORT or --config FILE"
            );
            return ExitCode::from(2);
        }
        Ok(m) => m,
        Err(e) => {
            eprintln!("millwright-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let mut servers = Vec::new();
    for (addr, cfg) in machines {
        let name = cfg.name.clone();
        match MachineServer::start(addr, cfg).await {
            Ok(s) => servers.push(s),
            Err(e) => {
                eprintln!("millwright-sim: machine {name} on {addr}: {e}");
                for s in servers {
                    s.stop().await;
                }
                return ExitCode::from(1);
            }
        }
    }
    let every = Duration::from_secs(cli.status_every_s.max(1));
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick(), if cli.status_every_s > 0 => {
                for s in &servers {
                    summary(s);
                }
            }
        }
    }
    for s in servers {
        s.stop().await;
    }
    ExitCode::SUCCESS
}
