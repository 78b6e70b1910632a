//! `millwright demo`: the whole node on embedded defaults, with nothing to install or configure.
//!
//! - three simulated machines (pump P-101, motor M-201, compressor C-301) run the real sensor
//!   firmware on simulated buses and serve it over Modbus TCP on loopback (`millwright-sim`);
//! - the node polls them with its Modbus pollers, keeps history in the local store and runs the
//!   asset profiles' detectors; an embedded MQTT broker carries a tank-level transmitter too;
//! - bearing wear is injected into P-101; the detectors open an anomaly, the on-device model
//!   (or, without a model file, the rule-based template) explains it, and a maintenance report
//!   is written;
//! - after the fault is explained, an operator asks three questions (why, an aggregate over a
//!   time range, which machines need attention) over MQTT 5 through the embedded broker, the
//!   way an HMI would (`<root>/demo/ask` → `<root>/demo/answers/<id>`).
//!
//! The plant runs as a time-lapse (`--speed`, default 60×): readings are stamped with simulated
//! plant time so that an hour of operation fits in a minute. Nothing leaves this machine.

use crate::analytics::{Deliver, Driver, DriverOptions, SharedStore};
use crate::broker;
use crate::cli::DemoArgs;
use crate::config::{build, Config};
use crate::node::{Hooks, Node};
use anyhow::Context;
use millwright_analytics::{Analytics, Output};
use millwright_core::anomaly::{Anomaly, ExplanationCard, MaintenanceReport, Phase, TextSource};
use millwright_core::Incident;
use millwright_profile::Profile;
use millwright_sim::{Fault, FaultKind, MachineConfig, MachineKind, MachineServer};
use millwright_store::Store;
use std::collections::HashMap;
use std::fmt::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
fn modbus_device(
    m: &DemoMachine,
    port: u16,
    profile: &Profile,
) -> millwright_ingest::modbus::DeviceConfig {
    use millwright_ingest::modbus::config::DataType as Ty;
    use millwright_ingest::modbus::decode::RegisterOrder;
    use millwright_ingest::modbus::plan::Function as F;
    use millwright_sensor::registers::{Function, RegisterValueType as DataType, WordOrder};
    let mut fields = Vec::new();
    for d in millwright_sim::register_map(m.kind) {
        if profile.signal(d.signal).is_none() {
            continue;
        }
        let ty = match d.data_type {
            DataType::U16 => Ty::U16,
            DataType::I16 => Ty::I16,
            DataType::U32 => Ty::U32,
            DataType::I32 => Ty::I32,
            DataType::F32 => Ty::F32,
            DataType::Bits16 => continue,
        };
        let order = match d.word_order {
            WordOrder::Abcd => RegisterOrder::ABCD,
            WordOrder::Cdab => RegisterOrder::CDAB,
        };
        let function = match d.function {
            Function::Input => F::Input,
            Function::Holding => F::Holding,
        };
        fields.push(build::register_field(
            d.signal, function, d.address, ty, order, d.scale, d.unit,
        ));
    }
    build::modbus_tcp(m.asset, "127.0.0.1", port, POLL_MS, 150, fields)
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
    let (broker_addr, ask_port) = broker::start_embedded_v5(mqtt_port)?;
    println!("Millwright demo — simulated plant at {speed}× speed; nothing leaves this machine.");
    println!("  MQTT: embedded broker on {broker_addr} (tank T-401 level transmitter)");

    // The machines.
    let mut servers = Vec::new();
    let mut profiles = Vec::new();
    let mut devices = Vec::new();
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
        devices.push(modbus_device(m, server.local_addr().port(), &profile));
        println!(
            "  Modbus TCP: simulated {} {} on {} (profile {})",
            m.kind,
            m.asset,
            server.local_addr(),
            m.profile
        );
        servers.push(server);
        profiles.push((m.asset.to_string(), profile));
    }
    println!(
        "  Fault: bearing wear on P-101 from plant time t+{:.0} min, developing over 30 min.\n",
        onset_s / 60.0
    );

    let mut cfg = Config::for_site("demo");
    let mut mqtt = millwright_ingest::mqtt::MqttConfig::new("127.0.0.1", mqtt_port);
    mqtt.client_id = "millwright-demo".into();
    mqtt.subscriptions
        .push(millwright_ingest::mqtt::SubscriptionConfig::new(
            "demo/{asset}/telemetry",
            millwright_ingest::mqtt::PayloadFormat::Json,
        ));
    cfg.mqtt = Some(mqtt);
    cfg.store.window_s = 86_400;
    cfg.node.status_interval_s = 0;
    cfg.modbus = Some(millwright_ingest::modbus::ModbusConfig { devices });
    let problems = cfg.validate();
    if !problems.is_empty() {
        anyhow::bail!("demo config: {problems:?}");
    }
    let status = std::sync::Arc::new(crate::analytics::AnalyticsStatus::default());
    let budgets = crate::memory::Budgets::new(crate::memory::MemoryCaps::of(&cfg));
    let (tap, inbox) =
        crate::analytics::channel_with(status.clone(), budgets.analytics_tap.clone());
    let t0 = crate::time_ns();
    let node = Node::start_with(
        &cfg,
        Hooks {
            time_lapse: Some((t0, speed)),
            tap: Some(tap),
            budgets: Some(budgets),
            ..Hooks::default()
        },
    )
    .context("starting the node")?;
    let publisher = tokio::spawn(publish_tank(mqtt_port));

    // Detection runs on its own thread, explanations on the model's: model inference never
    // blocks the async runtime or detection.
    let machine = Analytics::new(millwright_analytics::Options::new("demo"), profiles);
    let model = load_model()?;
    let asset_tags = MACHINES.iter().map(|m| m.asset.to_string()).collect();
    let answers = start_ask(
        &cfg,
        ask_port,
        &inbox,
        model.clone(),
        crate::ask::service::known_assets(asset_tags, node.store.clone()),
        (t0, speed),
    )?;
    let explained = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let driver = Driver::new(
        inbox,
        machine,
        Box::new(SharedStore(node.store.clone())),
        model,
        Printer {
            explained: explained.clone(),
            ..Printer::default()
        },
        // Readings carry plant time (time-lapse): a wall-clock dropout check would misfire.
        DriverOptions {
            tick: None,
            ..DriverOptions::default()
        },
    )
    .with_answers(answers);
    let store = node.store.clone();
    let detect = std::thread::Builder::new()
        .name("demo-detect".into())
        .spawn(move || final_reports(driver.run(), &SharedStore(store)))
        .context("starting the detector thread")?;

    let started = Instant::now();
    let refresh = Duration::from_secs(args.refresh_s.max(1));
    let mut tick = tokio::time::interval(refresh);
    tick.tick().await;
    let mut questions: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let elapsed = started.elapsed();
                if questions.is_none() && explained.load(std::sync::atomic::Ordering::Relaxed) {
                    questions = Some(tokio::spawn(ask_three(ask_port)));
                }
                if questions.is_none() || questions.as_ref().is_some_and(|q| q.is_finished()) {
                    if let Ok(store) = node.store.lock() {
                        print!("{}", live_view(&store, elapsed, speed, &node.status_line()));
                    }
                }
                if args.duration_s.is_some_and(|d| elapsed >= Duration::from_secs(d)) {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // The operator's questions are part of the demo: asked now if the fault was not explained
    // in time, and waited for.
    let questions = questions.unwrap_or_else(|| tokio::spawn(ask_three(ask_port)));
    if tokio::time::timeout(Duration::from_secs(120), questions)
        .await
        .is_err()
    {
        println!("  (the questions were not answered within 120 s)");
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

/// Starts the ask service on the embedded broker's MQTT 5 listener; questions' "now" is plant
/// time (`t0 + (t - t0) × speed`), like the readings'.
fn start_ask(
    cfg: &Config,
    port: u16,
    inbox: &crate::analytics::Inbox,
    model: Option<millwright_slm::ModelHandle>,
    assets: std::sync::Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    (t0, speed): (i64, f64),
) -> anyhow::Result<crate::ask::AnswerPort> {
    let mut conn = millwright_ingest::mqtt::MqttConfig::new("127.0.0.1", port).connection();
    conn.client_id = "millwright-demo-ask".into();
    let setup = crate::ask::AskSetup {
        conn,
        prefix: format!("{}/{}", cfg.site.topic_root, cfg.site.name),
        topic_root: cfg.site.topic_root.clone(),
        section: cfg.ask.clone(),
        assets,
        clock: std::sync::Arc::new(move || t0 + ((crate::time_ns() - t0) as f64 * speed) as i64),
        model,
        status: std::sync::Arc::new(crate::ask::AskStatus::default()),
    };
    let (port, _task) = crate::ask::spawn(setup, inbox.questions())?;
    Ok(port)
}

/// The three questions of the demo, asked one after the other as an operator on the floor
/// would (MQTT 5, the embedded broker), with their answers.
async fn ask_three(port: u16) {
    const QUESTIONS: [&str; 3] = [
        "Why is P-101 vibrating?",
        "What was the max bearing temperature on P-101 in the last hour?",
        "Which machines need attention this shift?",
    ];
    println!(
        "\n── an operator asks (MQTT 5: millwright/demo/ask → millwright/demo/answers/<id>) ──"
    );
    for (i, q) in QUESTIONS.iter().enumerate() {
        let mut opts =
            rumqttc::v5::MqttOptions::new(format!("demo-operator-{i}"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        let payload = millwright_core::ask::AskPayload {
            id: format!("demo-q{}", i + 1),
            question: q.to_string(),
            asset: None,
        };
        println!("\n? {q}");
        let asked = crate::cmd::ask::ask_over_mqtt(
            opts,
            "millwright/demo",
            &payload,
            Some("shift-lead"),
            Duration::from_secs(60),
        )
        .await;
        match asked {
            Ok(Some(a)) => {
                for line in crate::cmd::ask::render(&a).lines() {
                    println!("  {line}");
                }
            }
            Ok(None) => println!("  (no answer within 60 s)"),
            Err(e) => println!("  (could not ask: {e:#})"),
        }
    }
}

/// Prints what the analytics machine says: anomalies as they open, their explanations when
/// ready (with the time they took), reports.
#[derive(Default)]
struct Printer {
    opened: HashMap<String, Instant>,
    /// Set when P-101's fault is explained (the operator's questions follow).
    explained: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Deliver for Printer {
    fn opened(&mut self, ev: &Anomaly) {
        self.opened.insert(ev.id.clone(), Instant::now());
    }

    fn incident(&mut self, i: &Incident) {
        let mut symptoms: Vec<String> = Vec::new();
        for s in &i.symptoms {
            let s = format!("{} {}", s.signal, s.kind.describe());
            if !symptoms.contains(&s) {
                symptoms.push(s);
            }
        }
        let diagnosis = i.top().map_or("no known failure mode".to_string(), |t| {
            format!("{} (confidence {:.1})", t.title, t.confidence)
        });
        match i.phase {
            Phase::Opened => println!(
                "\n⚠ INCIDENT {} [{}] — {}; {}",
                i.asset,
                i.severity.as_str(),
                symptoms.join(", "),
                diagnosis
            ),
            Phase::Updated => println!(
                "  incident {} updated [{}]: {}; {}",
                i.asset,
                i.severity.as_str(),
                symptoms.join(", "),
                diagnosis
            ),
            Phase::Closed => println!(
                "\n✓ INCIDENT {} closed ({}) after {} events ({} suppressed); {}",
                i.asset,
                i.resolution.map_or("normal", |r| r.as_str()),
                i.events_merged + 1,
                i.events_suppressed,
                diagnosis
            ),
        }
    }

    fn alert(&mut self, card: &ExplanationCard) {
        let took = self
            .opened
            .remove(&card.id)
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or_default();
        let runner_up = card
            .runner_up
            .as_ref()
            .map(|r| format!("; runner-up: {r}"))
            .unwrap_or_default();
        println!(
            "  explanation of incident {} ({}, confidence {:.1}{runner_up}; {}, {} in {took:.1} s):\n  {}",
            card.id,
            card.failure_modes.first().map_or("no known failure mode", String::as_str),
            card.confidence,
            card.model,
            if card.source == TextSource::Model {
                "from the model, grounding check passed"
            } else {
                "rule-based template"
            },
            card.text
        );
        for (i, a) in card.actions.iter().enumerate().take(3) {
            println!("  action {}: {}", i + 1, a.text);
        }
        if card.asset == "P-101" {
            self.explained
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn report(&mut self, _: &MaintenanceReport, markdown: &str) {
        println!("\n{markdown}");
    }

    fn site_report(&mut self, markdown: &str) {
        println!("\n{markdown}");
    }
}

/// After the tap closed: the reports of P-101 and of every asset with anomalies.
fn final_reports((mut machine, mut printer): (Analytics, Printer), history: &SharedStore) {
    let assets: Vec<String> = machine
        .assets()
        .filter(|a| *a == "P-101" || machine.events().iter().any(|e| &*e.sensor.asset == *a))
        .map(str::to_string)
        .collect();
    let mut out = Vec::new();
    for asset in assets {
        machine.on_report_request(&asset, history, &mut out);
    }
    for o in out {
        if let Output::Report { report, markdown } = o {
            printer.report(&report, &markdown);
        }
    }
}

/// The model on its own thread (loaded there), or None when the file is missing.
fn load_model() -> anyhow::Result<Option<millwright_slm::ModelHandle>> {
    let path = std::env::var("MILLWRIGHT_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if !path.exists() {
        println!(
            "  (no model file at {}: explanations use the rule-based template; `make model` fetches it)",
            path.display()
        );
        return Ok(None);
    }
    let loader = move || {
        let m = millwright_slm::load_best(&[path], &millwright_slm::EngineOptions::default());
        println!("  language model: {}", m.name());
        m
    };
    let queue = crate::analytics::EXPLAIN_QUEUE + crate::ask::service::MODEL_SLOTS;
    let h = millwright_slm::ModelHandle::spawn_with(loader, queue)
        .context("starting the model thread")?;
    Ok(Some(h))
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
