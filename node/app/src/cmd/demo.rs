//! `millwright demo`: the whole node on embedded defaults — an embedded MQTT broker on
//! loopback, simulated machines publishing into it, ingest, local store — with a live view.
//! Needs nothing installed and sends nothing off the machine.

use crate::broker;
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::node::Node;
use anyhow::Context;
use millwright_store::Store;
use std::fmt::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Simulated machines of the demo: asset, and (signal, unit, base, amplitude).
const MACHINES: &[(&str, &[(&str, &str, f64, f64)])] = &[
    (
        "P-101",
        &[
            ("flow_m3_h", "m³/h", 42.0, 1.5),
            ("discharge_pressure_bar", "bar", 6.2, 0.15),
            ("bearing_temp_c", "°C", 61.0, 0.8),
            ("vibration_rms_mm_s", "mm/s", 2.1, 0.2),
        ],
    ),
    (
        "M-201",
        &[
            ("motor_current_a", "A", 18.5, 0.6),
            ("speed_rpm", "rpm", 1480.0, 4.0),
            ("winding_temp_c", "°C", 74.0, 1.0),
            ("vibration_rms_mm_s", "mm/s", 1.6, 0.15),
        ],
    ),
    (
        "C-301",
        &[
            ("outlet_pressure_bar", "bar", 7.5, 0.1),
            ("discharge_temp_c", "°C", 88.0, 1.2),
            ("motor_current_a", "A", 32.0, 0.9),
            ("vibration_rms_mm_s", "mm/s", 2.8, 0.25),
        ],
    ),
];

/// Node config of the demo (embedded broker on `port`, no database).
pub fn demo_config(port: u16) -> anyhow::Result<Config> {
    let text = format!(
        r#"
[site]
name = "demo"

[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "millwright-demo"

[[mqtt.subscriptions]]
topic = "demo/{{asset}}/telemetry"
format = "json"
qos = 1

[store]
window_s = 3600
"#
    );
    Config::parse(&text).map_err(|p| anyhow::anyhow!("demo config: {p:?}"))
}

/// Runs the demo.
pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let port = broker::free_port()?;
    let addr = broker::start_embedded(port)?;
    println!("Millwright demo — embedded MQTT broker on {addr}; nothing leaves this machine.");
    let cfg = demo_config(port)?;
    let node = Node::start(&cfg).context("starting the node")?;
    let publisher = tokio::spawn(publish_machines(port));
    let started = Instant::now();
    let refresh = Duration::from_secs(args.refresh_s.max(1));
    let mut tick = tokio::time::interval(refresh);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Ok(store) = node.store.lock() {
                    print!("{}", live_view(&store, started.elapsed(), &node.status_line()));
                }
                if args.duration_s.is_some_and(|d| started.elapsed() >= Duration::from_secs(d)) {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    publisher.abort();
    println!("demo finished: {}", node.status_line());
    node.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// Publishes synthetic telemetry for every machine twice a second, as JSON field sets.
async fn publish_machines(port: u16) {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let mut opts = MqttOptions::new("millwright-demo-machines", "127.0.0.1", port);
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
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        for (mi, (asset, signals)) in MACHINES.iter().enumerate() {
            let mut fields = String::new();
            let mut units = String::new();
            for (si, (sig, unit, base, amp)) in signals.iter().enumerate() {
                let phase = (t as f64) * 0.21 + (mi * 7 + si * 3) as f64;
                let v = base + amp * (phase.sin() * 0.7 + (phase * 2.3).cos() * 0.3);
                let _ = write!(fields, "{}\"{sig}\":{v:.3}", if si > 0 { "," } else { "" });
                let _ = write!(
                    units,
                    "{}\"{sig}\":\"{unit}\"",
                    if si > 0 { "," } else { "" }
                );
            }
            let payload =
                format!(r#"{{"ts_ms":{now_ms},"fields":{{{fields}}},"units":{{{units}}}}}"#);
            let _ = client
                .publish(
                    format!("demo/{asset}/telemetry"),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await;
        }
    }
}

/// Renders the per-asset live view: latest values with units, sample counts, 1-minute range.
pub fn live_view(store: &Store, elapsed: Duration, status: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n── live readings (t+{:>4}s) ──────────────────────────────────────",
        elapsed.as_secs()
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
        let stats = store.stats(&id, last.ts_ns - 60_000_000_000, i64::MAX);
        let health = store.health(&id).unwrap_or_default();
        let range = stats
            .map(|s| format!("1-min range {:.2}…{:.2}", s.min, s.max))
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
