//! `millwright bench modbus`: N devices polled at a fixed rate by the real pollers over loopback
//! TCP; one JSON line.
//!
//! The devices are simulated machines (`millwright-sim`, ~48 registers each; `--server sim`,
//! default) or register images of `--registers` contiguous registers (`--server image`, ingest's
//! Modbus test server), both real tokio-modbus servers, in a child process (this binary, hidden
//! `bench modbus-serve`), so the CPU figure is the polling process's own (from /proc/self/stat):
//! pollers, decoding and the reading channel only.
//! The request count per cycle is counted by the servers, i.e. on the wire.

use crate::cli::{BenchModbusArgs, BenchModbusServeArgs};
use crate::procinfo;
use anyhow::{bail, Context};
use millwright_ingest::modbus::config::{
    DataType, DeviceConfig, FieldConfig, ModbusConfig, TransportKind,
};
use millwright_ingest::modbus::decode::{encode_engineering, FieldType, RegisterOrder};
use millwright_ingest::modbus::plan::{self, Function};
use millwright_ingest::modbus::server::{ImageServer, RegisterImage};
use millwright_ingest::modbus::spawn_devices;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The benchmark device's register map: 10 × f32, 5 × u32 (word-swapped), 20 × i16 (tenths)
/// = 50 contiguous holding registers, 35 fields.
fn bench_fields(registers: u16) -> Vec<(FieldConfig, f64)> {
    let mut out = Vec::new();
    let mut addr = 0u16;
    let mut k = 0;
    while addr < registers {
        let (dt, ty, order, scale) = match k {
            0..=9 => (DataType::F32, FieldType::F32, RegisterOrder::ABCD, 1.0),
            10..=14 => (DataType::U32, FieldType::U32, RegisterOrder::CDAB, 1.0),
            _ => (DataType::I16, FieldType::I16, RegisterOrder::ABCD, 0.1),
        };
        if addr + ty.registers() > registers {
            break;
        }
        let value = f64::from(k) * 1.5;
        out.push((
            FieldConfig {
                signal: format!("s{k:03}"),
                asset: None,
                function: Function::Holding,
                address: addr,
                data_type: dt,
                bit: None,
                length_registers: None,
                order,
                scale,
                offset: 0.0,
                unit: String::new(),
            },
            value,
        ));
        addr += ty.registers();
        k += 1;
    }
    out
}

fn bench_image(registers: u16) -> anyhow::Result<RegisterImage> {
    let mut img = RegisterImage::default();
    for (f, v) in bench_fields(registers) {
        let ty = f.field_type().context("bench field type")?;
        let words = encode_engineering(v, ty, f.order, f.scale, f.offset)
            .map_err(|e| anyhow::anyhow!("bench image: {e}"))?;
        img.set(Function::Holding, f.address, &words);
    }
    Ok(img)
}

/// A device of the benchmark: the machine simulator or a register image.
enum BenchServer {
    Sim(millwright_sim::MachineServer),
    Image(ImageServer),
}

impl BenchServer {
    fn port(&self) -> u16 {
        match self {
            BenchServer::Sim(s) => s.local_addr().port(),
            BenchServer::Image(s) => s.local_addr().map_or(0, |a| a.port()),
        }
    }
    fn request_count(&self) -> u64 {
        match self {
            BenchServer::Sim(s) => s.request_count(),
            BenchServer::Image(s) => s.request_count(),
        }
    }
}

/// Machine kind of simulated device `i` (pumps, motors and compressors in turn).
fn sim_kind(i: usize) -> millwright_sim::MachineKind {
    match i % 3 {
        0 => millwright_sim::MachineKind::Pump,
        1 => millwright_sim::MachineKind::Motor,
        _ => millwright_sim::MachineKind::Compressor,
    }
}

/// The simulator's register map of `kind` as node config fields.
fn sim_fields(kind: millwright_sim::MachineKind) -> Vec<FieldConfig> {
    millwright_sim::register_map(kind)
        .iter()
        .map(|d| FieldConfig {
            signal: d.signal.to_string(),
            asset: None,
            function: match d.function {
                millwright_sim::Function::Input => Function::Input,
                millwright_sim::Function::Holding => Function::Holding,
            },
            address: d.address,
            data_type: match d.data_type {
                millwright_sim::RegisterValueType::U16
                | millwright_sim::RegisterValueType::Bits16 => DataType::U16,
                millwright_sim::RegisterValueType::I16 => DataType::I16,
                millwright_sim::RegisterValueType::U32 => DataType::U32,
                millwright_sim::RegisterValueType::I32 => DataType::I32,
                millwright_sim::RegisterValueType::F32 => DataType::F32,
            },
            bit: None,
            length_registers: None,
            order: match d.word_order {
                millwright_sim::WordOrder::Abcd => RegisterOrder::ABCD,
                millwright_sim::WordOrder::Cdab => RegisterOrder::CDAB,
            },
            scale: d.scale,
            offset: 0.0,
            unit: d.unit.to_string(),
        })
        .collect()
}

/// The child process (`bench modbus-serve`): serves `devices` devices, prints their ports,
/// answers `count` with the total requests received, exits when stdin closes.
pub async fn serve(a: &BenchModbusServeArgs) -> anyhow::Result<ExitCode> {
    let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().context("loopback")?;
    let mut servers: Vec<BenchServer> = Vec::with_capacity(a.devices);
    if a.server == "sim" {
        for i in 0..a.devices {
            let cfg = millwright_sim::MachineConfig::new(sim_kind(i), format!("SIM-{i:03}"), 1);
            servers.push(BenchServer::Sim(
                millwright_sim::MachineServer::start(loopback, cfg).await?,
            ));
        }
    } else {
        let img = bench_image(a.registers)?;
        for _ in 0..a.devices {
            let s = ImageServer::start_tcp(loopback, HashMap::from([(1, img.clone())])).await?;
            servers.push(BenchServer::Image(s));
        }
    }
    let ports: Vec<String> = servers.iter().map(|s| s.port().to_string()).collect();
    println!("PORTS {}", ports.join(","));
    std::io::stdout().flush()?;
    let servers = Arc::new(servers);
    let s2 = servers.clone();
    tokio::task::spawn_blocking(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "count" {
                let n: u64 = s2.iter().map(BenchServer::request_count).sum();
                println!("{n}");
                let _ = std::io::stdout().flush();
            }
        }
    })
    .await?;
    drop(servers);
    Ok(ExitCode::SUCCESS)
}

/// `millwright bench modbus`.
pub async fn run(a: &BenchModbusArgs) -> anyhow::Result<ExitCode> {
    if a.devices == 0 || a.registers == 0 || a.poll_interval_ms == 0 || a.duration_s == 0 {
        bail!("--devices, --registers, --poll-interval-ms and --duration-s must be > 0");
    }
    if !matches!(a.server.as_str(), "sim" | "image") {
        bail!("--server must be `sim` or `image`, not `{}`", a.server);
    }
    let exe = std::env::current_exe().context("own executable")?;
    let mut child = std::process::Command::new(exe)
        .args([
            "--log",
            "warn",
            "bench",
            "modbus-serve",
            "--devices",
            &a.devices.to_string(),
            "--registers",
            &a.registers.to_string(),
            "--server",
            &a.server,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the server process")?;
    let mut child_in = child.stdin.take().context("child stdin")?;
    let mut child_out = BufReader::new(child.stdout.take().context("child stdout")?);
    let mut line = String::new();
    child_out.read_line(&mut line)?;
    let ports: Vec<u16> = line
        .strip_prefix("PORTS ")
        .context("server process did not report its ports")?
        .trim()
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("server ports")?;
    let mut wire_count_raw = move || -> anyhow::Result<u64> {
        writeln!(child_in, "count")?;
        child_in.flush()?;
        let mut l = String::new();
        child_out.read_line(&mut l)?;
        l.trim()
            .parse()
            .context("request count from the server process")
    };

    let image_fields: Vec<FieldConfig> = bench_fields(a.registers)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    let timeout_ms = (a.poll_interval_ms * 8 / 10).max(1);
    let devices: Vec<DeviceConfig> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| DeviceConfig {
            name: format!("bench-{i:03}"),
            asset: format!("B{i:03}"),
            transport: TransportKind::Tcp,
            host: Some("127.0.0.1".into()),
            port: Some(*p),
            serial_path: None,
            baud_rate: None,
            parity: None,
            stop_bits: None,
            unit_id: 1,
            poll_interval_ms: a.poll_interval_ms,
            timeout_ms,
            retries: 1,
            backoff_max_ms: a.poll_interval_ms * 10,
            max_gap_registers: 4,
            max_registers_per_request: 125,
            max_coils_per_request: 2000,
            fields: if a.server == "sim" {
                sim_fields(sim_kind(i))
            } else {
                image_fields.clone()
            },
        })
        .collect();
    let cfg = ModbusConfig { devices };
    let dev0 = &cfg.devices[0];
    let planned: usize = cfg
        .devices
        .iter()
        .map(DeviceConfig::planned_request_count)
        .sum();
    let optimal: usize = cfg
        .devices
        .iter()
        .map(|d| plan::optimal_request_count(&d.plan_fields(), &d.plan_limits()))
        .sum();
    let per_field: usize = cfg.devices.iter().map(|d| d.fields.len()).sum();

    let (tx, mut rx) = tokio::sync::mpsc::channel::<millwright_core::Batch>(1024);
    let readings = Arc::new(AtomicU64::new(0));
    let r2 = readings.clone();
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            r2.fetch_add(u64::try_from(b.len()).unwrap_or(0), Ordering::Relaxed);
        }
    });
    let pollers = spawn_devices(&cfg, tx).map_err(|e| anyhow::anyhow!("{e}"))?;
    let m = pollers.metrics.clone();
    tokio::time::sleep(Duration::from_secs(a.warmup_s)).await;

    // The wire count comes from the other process; take the cycle count on both sides of the
    // query and use the midpoint so in-flight requests do not skew requests per cycle.
    let mut sample = || -> anyhow::Result<(u64, f64)> {
        let c0 = m.total(|d| &d.cycles);
        let w = wire_count_raw()?;
        let c1 = m.total(|d| &d.cycles);
        Ok((w, (c0 + c1) as f64 / 2.0))
    };
    m.cycle_time.reset();
    let items0 = m.total(|d| &d.items_read);
    let (wire0, cycles0) = sample()?;
    let cpu0 = procinfo::cpu_seconds().unwrap_or(0.0);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.duration_s)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = procinfo::cpu_seconds().unwrap_or(0.0);
    let (wire1, cycles1) = sample()?;
    let items1 = m.total(|d| &d.items_read);
    let readings_total = readings.load(Ordering::Relaxed);
    pollers.shutdown().await;
    let _ = child.kill();
    let _ = child.wait();

    let cycles = cycles1 - cycles0;
    let n = a.devices as f64;
    let wire = (wire1 - wire0) as f64;
    let out = serde_json::json!({
        "bench": "modbus",
        "server": if a.server == "sim" {
            "millwright-sim machines (pump/motor/compressor) in a child process"
        } else {
            "register-image tokio-modbus TCP servers in a child process"
        },
        "devices": a.devices,
        "registers_per_device": dev0.plan_fields().iter().map(|f| u64::from(f.width)).sum::<u64>(),
        "fields_per_device": dev0.fields.len(),
        "poll_interval_ms": a.poll_interval_ms,
        "duration_s": round(wall, 2),
        "registers_per_s": round((items1 - items0) as f64 / wall, 0),
        "requests_per_cycle": round(if cycles > 0.0 { wire / cycles * n } else { 0.0 }, 3),
        "planned_requests_per_cycle": planned,
        "optimal_requests_per_cycle": optimal,
        "per_field_requests_per_cycle": per_field,
        "poll_hz_per_device": round(cycles / wall / n, 3),
        "cycle_ms_p50": round(m.cycle_time.quantile_us(0.5) as f64 / 1000.0, 3),
        "cycle_ms_p99": round(m.cycle_time.quantile_us(0.99) as f64 / 1000.0, 3),
        "cpu_pct": round((cpu1 - cpu0) / wall * 100.0, 1),
        "timeouts": m.total(|d| &d.timeouts),
        "transport_errors": m.total(|d| &d.transport_errors),
        "offline_devices": m.offline_devices().len(),
        "readings_total": readings_total,
        "loadavg": procinfo::loadavg(),
    });
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}
