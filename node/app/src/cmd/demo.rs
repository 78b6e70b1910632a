//! `millwright demo`: the whole node on embedded defaults, with nothing to install or configure.
//!
//! - three simulated machines (pump P-101, motor M-201, compressor C-301) run the real sensor
//!   firmware on simulated buses and serve it over Modbus TCP on loopback (`millwright-sim`);
//! - the node polls them with its Modbus pollers, keeps history in the local store and runs the
//!   asset profiles' detectors; an embedded MQTT broker carries a tank-level transmitter too;
//! - bearing wear is injected into P-101; the detectors open an anomaly, the on-device model
//!   (or, without a model file, the rule-based template) explains it, and a maintenance report
//!   is written.
//!
//! The plant runs as a time-lapse (`--speed`, default 60×): readings are stamped with simulated
//! plant time so that an hour of operation fits in a minute. Nothing leaves this machine.

use crate::broker;
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::node::{Hooks, Node};
use anyhow::Context;
use millwright_core::anomaly::{Anomaly, Phase};
use millwright_core::{Batch, LanguageModel};
use millwright_detect::AssetMonitor;
use millwright_profile::Profile;
use millwright_sim::{Fault, FaultKind, MachineConfig, MachineKind, MachineServer};
use millwright_store::Store;
use std::fmt::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A simulated machine of the demo and its asset profile.
struct DemoMachine {
    kind: MachineKind,
    asset: &'static str,
    profile: &'static str,
    profile_toml: &'static str,
}

const MACHINES: [DemoMachine; 3] = [
    DemoMachine {
        kind: MachineKind::Pump,
        asset: "P-101",
        profile: "centrifugal-pump",
        profile_toml: include_str!("../../../../pipelines/centrifugal-pump.toml"),
    },
    DemoMachine {
        kind: MachineKind::Motor,
        asset: "M-201",
        profile: "electric-motor",
        profile_toml: include_str!("../../../../pipelines/electric-motor.toml"),
    },
    DemoMachine {
        kind: MachineKind::Compressor,
        asset: "C-301",
        profile: "air-compressor",
        profile_toml: include_str!("../../../../pipelines/air-compressor.toml"),
    },
];

/// Poll interval of the demo's Modbus devices (real time).
const POLL_MS: u64 = 200;
/// Readings each baseline learns from in the demo (the shipped profiles use 300 at 1 Hz).
const DEMO_LEARN_N: u32 = 60;

/// The Modbus register map of a simulated machine as node config, restricted to the signals
/// its profile knows.
fn modbus_device_toml(m: &DemoMachine, port: u16, profile: &Profile) -> String {
    use millwright_sensor::registers::{Function, RegisterValueType, WordOrder};
    let mut t = format!(
        "[[modbus.devices]]\nname = \"{asset}\"\nasset = \"{asset}\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\nunit_id = 1\npoll_interval_ms = {POLL_MS}\ntimeout_ms = 150\n",
        asset = m.asset
    );
    for d in millwright_sim::register_map(m.kind) {
        if profile.signal(d.signal).is_none() {
            continue;
        }
        let ty = match d.data_type {
            RegisterValueType::U16 => "u16",
            RegisterValueType::I16 => "i16",
            RegisterValueType::U32 => "u32",
            RegisterValueType::I32 => "i32",
            RegisterValueType::F32 => "f32",
            RegisterValueType::Bits16 => continue,
        };
        let order = match d.word_order {
            WordOrder::Abcd => "abcd",
            WordOrder::Cdab => "cdab",
        };
        let function = match d.function {
            Function::Input => "input",
            Function::Holding => "holding",
        };
        let _ = write!(
            t,
            "[[modbus.devices.fields]]\nsignal = \"{}\"\nfunction = \"{function}\"\naddress = {}\ntype = \"{ty}\"\norder = \"{order}\"\nscale = {:?}\nunit = \"{}\"\n",
            d.signal, d.address, d.scale, d.unit
        );
    }
    t
}

fn demo_profile(m: &DemoMachine) -> anyhow::Result<Profile> {
    let text = m
        .profile_toml
        .replace("learn_n = 300", &format!("learn_n = {DEMO_LEARN_N}"));
    Profile::from_toml_str(&text, m.profile).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs the demo.
pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let speed = args.speed.max(1.0);
    let mqtt_port = broker::free_port()?;
    let broker_addr = broker::start_embedded(mqtt_port)?;
    println!("Millwright demo — simulated plant at {speed}× speed; nothing leaves this machine.");
    println!("  MQTT: embedded broker on {broker_addr} (tank T-401 level transmitter)");

    // The machines.
    let mut servers = Vec::new();
    let mut profiles = Vec::new();
    let mut modbus = String::new();
    let onset_s = f64::from(DEMO_LEARN_N) * POLL_MS as f64 / 1000.0 * speed + 120.0;
    for (i, m) in MACHINES.iter().enumerate() {
        let mut cfg = MachineConfig::new(m.kind, m.asset, 1);
        cfg.seed = 7 + i as u64;
        cfg.time_scale = speed;
        if m.asset == "P-101" {
            cfg.faults.push(Fault {
                kind: FaultKind::BearingWear,
                onset_s,
                ramp_s: 1800.0,
            });
        }
        let server = MachineServer::start("127.0.0.1:0".parse()?, cfg)
            .await
            .with_context(|| format!("starting the simulated {}", m.asset))?;
        let profile = demo_profile(m)?;
        modbus += &modbus_device_toml(m, server.local_addr().port(), &profile);
        println!(
            "  Modbus TCP: simulated {} {} on {} (profile {})",
            m.kind,
            m.asset,
            server.local_addr(),
            m.profile
        );
        servers.push(server);
        profiles.push((m.asset, profile));
    }
    println!(
        "  Fault: bearing wear on P-101 from plant time t+{:.0} min, developing over 30 min.\n",
        onset_s / 60.0
    );

    let text = format!(
        r#"
[site]
name = "demo"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "millwright-demo"

[[mqtt.subscriptions]]
topic = "demo/{{asset}}/telemetry"
format = "json"

[store]
window_s = 86400

[node]
status_interval_s = 0

{modbus}
"#
    );
    let cfg = Config::parse(&text).map_err(|p| anyhow::anyhow!("demo config: {p:?}"))?;
    let (tap_tx, tap_rx) = mpsc::channel::<Batch>(4096);
    let t0 = crate::time_ns();
    let node = Node::start_with(
        &cfg,
        Hooks {
            time_lapse: Some((t0, speed)),
            tap: Some(tap_tx),
        },
    )
    .context("starting the node")?;
    let publisher = tokio::spawn(publish_tank(mqtt_port));

    // Detection and explanation run on their own thread: model inference never blocks the
    // async runtime.
    let store = node.store.clone();
    let detect = std::thread::Builder::new()
        .name("demo-detect".into())
        .spawn(move || detect_explain_report(tap_rx, profiles, store))
        .context("starting the detector thread")?;

    let started = Instant::now();
    let refresh = Duration::from_secs(args.refresh_s.max(1));
    let mut tick = tokio::time::interval(refresh);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let elapsed = started.elapsed();
                if let Ok(store) = node.store.lock() {
                    print!("{}", live_view(&store, elapsed, speed, &node.status_line()));
                }
                if args.duration_s.is_some_and(|d| elapsed >= Duration::from_secs(d)) {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    publisher.abort();
    println!("demo finished: {}", node.status_line());
    node.shutdown().await;
    for s in servers {
        s.stop().await;
    }
    // The detector thread ends when the tap closes; it prints the final report.
    let _ = tokio::task::spawn_blocking(move || detect.join()).await;
    Ok(ExitCode::SUCCESS)
}

/// Detects, explains and reports, printing as it goes; prints a final report of P-101.
fn detect_explain_report(
    mut rx: mpsc::Receiver<Batch>,
    profiles: Vec<(&'static str, Profile)>,
    store: Arc<Mutex<Store>>,
) {
    let mut monitors: Vec<(AssetMonitor, Profile)> = profiles
        .into_iter()
        .filter_map(|(asset, p)| AssetMonitor::new(asset, &p).ok().map(|m| (m, p)))
        .collect();
    let mut model = load_model();
    let explainer = millwright_reason::Explainer::new(millwright_reason::ExplainOptions {
        known_assets: MACHINES.iter().map(|m| m.asset.to_string()).collect(),
        ..Default::default()
    });
    let mut events: Vec<Anomaly> = Vec::new();
    let mut all: Vec<Anomaly> = Vec::new();
    let mut cards = Vec::new();
    while let Some(batch) = rx.blocking_recv() {
        for r in &batch {
            for (m, _) in monitors.iter_mut() {
                if *r.sensor.asset == *m.asset() {
                    m.observe(r, &mut events);
                }
            }
        }
        for ev in events.drain(..) {
            if ev.phase != Phase::Opened {
                all.retain(|a: &Anomaly| a.id != ev.id);
                all.push(ev);
                continue;
            }
            println!(
                "\n⚠ ANOMALY {} {} — {:?}, score {:.2}",
                ev.sensor.asset, ev.sensor.signal, ev.kind, ev.score
            );
            let profile = monitors
                .iter()
                .find(|(m, _)| *m.asset() == *ev.sensor.asset)
                .map(|(_, p)| p);
            let t = Instant::now();
            let card = match model.as_mut() {
                Some(m) => {
                    let m: &mut dyn LanguageModel = &mut **m;
                    explainer.explain(&ev, profile, Some(m))
                }
                None => explainer.explain(&ev, profile, None),
            };
            println!(
                "  explanation ({}, {} in {:.1} s):\n  {}",
                card.model,
                if card.source == millwright_core::anomaly::TextSource::Model {
                    "from the model, grounding check passed"
                } else {
                    "rule-based template"
                },
                t.elapsed().as_secs_f64(),
                card.text
            );
            for (i, a) in card.actions.iter().enumerate().take(3) {
                println!("  action {}: {}", i + 1, a.text);
            }
            if let Ok(st) = store.lock() {
                let report = asset_report(
                    &st,
                    &ev.sensor.asset,
                    profile,
                    std::slice::from_ref(&ev),
                    std::slice::from_ref(&card),
                );
                println!("\n{report}");
            }
            all.push(ev);
            cards.push(card);
        }
    }
    if let Ok(st) = store.lock() {
        for (m, p) in &monitors {
            let evs: Vec<Anomaly> = all
                .iter()
                .filter(|a| *a.sensor.asset == *m.asset())
                .cloned()
                .collect();
            if m.asset() == "P-101" || !evs.is_empty() {
                println!("\n{}", asset_report(&st, m.asset(), Some(p), &evs, &cards));
            }
        }
    }
}

fn load_model() -> Option<Box<dyn LanguageModel>> {
    let path = std::env::var("MILLWRIGHT_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if !path.exists() {
        println!(
            "  (no model file at {}: explanations use the rule-based template; `make model` fetches it)",
            path.display()
        );
        return None;
    }
    let m = millwright_slm::load_best(&[path], &millwright_slm::EngineOptions::default());
    println!("  language model: {}", m.name());
    Some(m)
}

/// Builds and renders the maintenance report of one asset from the local store.
fn asset_report(
    store: &Store,
    asset: &str,
    profile: Option<&Profile>,
    anomalies: &[Anomaly],
    cards: &[millwright_core::anomaly::ExplanationCard],
) -> String {
    let r = crate::reports::asset_report(
        store,
        "demo",
        asset,
        profile,
        (i64::MIN, i64::MAX),
        anomalies,
        cards,
    );
    millwright_reason::to_markdown(&r)
}

/// Publishes a tank level transmitter's readings over MQTT twice a second.
async fn publish_tank(port: u16) {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let mut opts = MqttOptions::new("millwright-demo-tank", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = AsyncClient::new(opts, 100);
    tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let mut t: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        t += 1;
        let level = 3.2 + 0.4 * ((t as f64) * 0.05).sin();
        let payload = format!(
            r#"{{"fields":{{"level_m":{level:.3},"outlet_valve_pct":{:.1}}},"units":{{"level_m":"m","outlet_valve_pct":"%"}}}}"#,
            40.0 + 5.0 * ((t as f64) * 0.11).cos()
        );
        let _ = client
            .publish("demo/T-401/telemetry", QoS::AtLeastOnce, false, payload)
            .await;
    }
}

/// Renders the per-asset live view: latest values with units, sample counts, 10-minute range.
pub fn live_view(store: &Store, elapsed: Duration, speed: f64, status: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n── live readings (t+{:>3}s real, plant time t+{:.0} min) ────────────────────",
        elapsed.as_secs(),
        elapsed.as_secs_f64() * speed / 60.0
    );
    let mut last_asset = String::new();
    for id in store.sensors() {
        if *id.asset != *last_asset {
            let _ = writeln!(out, "{}", id.asset);
            last_asset = id.asset.to_string();
        }
        let Some(last) = store.last(&id) else {
            continue;
        };
        let unit = store.unit(&id).map(|u| u.to_string()).unwrap_or_default();
        let stats = store.stats(&id, last.ts_ns - 600_000_000_000, i64::MAX);
        let health = store.health(&id).unwrap_or_default();
        let range = stats
            .map(|s| format!("10-min range {:.2}…{:.2}", s.min, s.max))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<26} {:>10.2} {:<5} n={:<6} {}",
            id.signal, last.value, unit, health.total, range
        );
    }
    let _ = writeln!(out, "  [{status}]");
    out
}
