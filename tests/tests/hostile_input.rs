//! Hostile input end to end (real Mosquitto → the `millwright` binary → real VictoriaMetrics):
//! asset and signal names line protocol or MQTT cannot carry and readings dated beyond the
//! allowed skew, published next to good readings, are counted by reason and never reach the
//! database, while every good reading arrives and the database rejects nothing; a publisher
//! flooding 1 MiB payloads and thousands of distinct series does not push the node's peak RSS
//! past its `[node] memory_budget_mb`, the caps it hit are counted, and good data sent after
//! the flood arrives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct NodeProc {
    child: KillOnDrop,
    metrics: String,
}

fn start_node(mqtt_port: u16, vm: &str, subs: &str) -> NodeProc {
    start_node_with(mqtt_port, vm, subs, "")
}

/// `extra` goes at the end of the `[node]` section (more sections may follow it).
fn start_node_with(mqtt_port: u16, vm: &str, subs: &str, extra: &str) -> NodeProc {
    let mport = free_port();
    let dir = std::env::temp_dir().join(unique("mw-hostile-"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("millwright.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[site]
name = "e2e"
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "{cid}"
reconnect_min_ms = 100
reconnect_max_ms = 1000
{subs}
[influxdb]
url = "{vm}"
org = "e2e"
bucket = "e2e"
batch_size = 2000
flush_interval_ms = 200
retry_min_ms = 200
retry_max_ms = 1000
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 0
{extra}
"#,
            cid = unique("node-"),
        ),
    )
    .unwrap();
    let child = run_checked_node(&cfg, &dir.join("node.log"));
    let node = NodeProc {
        child,
        metrics: format!("http://127.0.0.1:{mport}"),
    };
    wait_subscribed(&node.metrics, Duration::from_secs(30));
    node
}

async fn publisher(port: u16) -> (AsyncClient, Arc<AtomicUsize>) {
    let mut o = MqttOptions::new(unique("pub-"), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(64 << 20, 64 << 20);
    let (c, mut el) = AsyncClient::new(o, 1000);
    let acked = Arc::new(AtomicUsize::new(0));
    let a = acked.clone();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    a.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (c, acked)
}

async fn wait_acked(acked: &AtomicUsize, n: usize) {
    let t = Instant::now();
    while acked.load(Ordering::Relaxed) < n {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "broker acked {} of {n}",
            acked.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn wait_metric(node: &NodeProc, name: &str, filter: &str, want: f64) {
    let t = Instant::now();
    loop {
        let got = node_metric(&node.metrics, name, filter).unwrap_or(0.0);
        if got == want {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{name}{{{filter}}}: {got}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_times_are_counted_and_good_readings_arrive() {
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("h");
    let subs = format!(
        r#"
[[mqtt.subscriptions]]
topic = "{run}/{{asset}}/{{signal}}"
format = "json"
[[mqtt.subscriptions]]
topic = "{run}-lp"
format = "line_protocol"
precision = "ms"
max_past_age_s = 3600
"#
    );
    let node = start_node(broker.port, &vm, &subs);
    let (c, acked) = publisher(broker.port).await;
    let asset = format!("{run}-A");
    let t0 = now_ms() - 60_000;
    let long = "x".repeat(300);
    // (topic suffix, payload) that must be refused as bad_name.
    let bad_names: Vec<(String, String)> = vec![
        ("/temp".to_string(), r#"{"value":1}"#.into()),
        (format!("{asset}/x"), r#"{"signal":"","value":1}"#.into()),
        (
            format!("{asset}/x"),
            r#"{"signal":"a\nb","value":1}"#.into(),
        ),
        (
            format!("{asset}/x"),
            r##"{"signal":"#temp","value":1}"##.into(),
        ),
        (
            format!("{asset}/x"),
            r#"{"signal":"tab\there","value":1}"#.into(),
        ),
        (
            format!("{asset}/x"),
            format!(r#"{{"signal":"{long}","value":1}}"#),
        ),
        (format!("{asset}/x"), r#"{"asset":"P+1","value":1}"#.into()),
        (
            format!("{asset}/x"),
            r#"{"fields":{"ok":1,"nul\u0000":2}}"#.into(),
        ),
    ];
    let mut sent = 0;
    let mut good = 0i64;
    let publish = |topic: String, p: String| {
        let c = c.clone();
        async move { c.publish(topic, QoS::AtLeastOnce, false, p).await.unwrap() }
    };
    for round in 0..5 {
        for (t, p) in &bad_names {
            publish(format!("{run}/{t}"), p.clone()).await;
            sent += 1;
            // A good reading after each bad one, and one with a name the encoder must escape.
            publish(
                format!("{run}/{asset}/good"),
                format!(r#"{{"value":{round}.5,"ts_ms":{}}}"#, t0 + good),
            )
            .await;
            publish(
                format!("{run}/{asset}/x"),
                format!(
                    r#"{{"signal":"we ird,sig=nal\\","value":2.5,"ts_ms":{}}}"#,
                    t0 + good
                ),
            )
            .await;
            sent += 2;
            good += 1;
        }
        // Dated an hour ahead (JSON) and two hours back (line protocol, max_past_age_s = 3600).
        publish(
            format!("{run}/{asset}/good"),
            format!(r#"{{"value":999,"ts_ms":{}}}"#, now_ms() + 3_600_000),
        )
        .await;
        publish(
            format!("{run}-lp"),
            format!("m,asset={asset} good=999 {}", now_ms() - 7_200_000),
        )
        .await;
        sent += 2;
    }
    wait_acked(&acked, sent).await;
    let sel = format!("{{asset=\"{asset}\"}}");
    let series = vm_wait_for(&vm, &sel, 2 * good as usize, Duration::from_secs(60));
    let points: usize = series.iter().map(|s| s.values.len()).sum();
    assert_eq!(points, 2 * good as usize, "{series:#?}");
    assert!(series
        .iter()
        .all(|s| s.values.iter().all(|v| *v != 999.0 && *v != 1.0)));
    let sub = format!("subscription=\"{run}/{{asset}}/{{signal}}\"");
    wait_metric(
        &node,
        "millwright_mqtt_rejected_total",
        &format!("{sub},reason=\"bad_name\""),
        5.0 * bad_names.len() as f64,
    );
    wait_metric(
        &node,
        "millwright_mqtt_rejected_total",
        &format!("{sub},reason=\"bad_time\""),
        5.0,
    );
    wait_metric(
        &node,
        "millwright_mqtt_rejected_total",
        &format!("subscription=\"{run}-lp\",reason=\"bad_time\""),
        5.0,
    );
    assert_eq!(
        node_metric(&node.metrics, "millwright_influx_rejected_points_total", ""),
        Some(0.0)
    );
    assert_eq!(
        node_metric(&node.metrics, "millwright_influx_failed_requests_total", ""),
        Some(0.0)
    );
}

/// A `VmRSS:` or `VmHWM:` line of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The node's `[node] memory_budget_mb` in this test.
const BUDGET_MB: u64 = 64;
/// Peak RSS (VmHWM) the node may reach: the whole budget, process included (measured 45–48
/// MiB; 72 MiB while JSON arrays were parsed whole before the readings cap was checked).
const RSS_LIMIT_MIB: u64 = BUDGET_MB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_1mib_payloads_and_new_series_keeps_the_node_under_its_memory_budget() {
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("flood");
    let subs = format!(
        r#"
[[mqtt.subscriptions]]
topic = "{run}/{{asset}}"
format = "json"
"#
    );
    // A small budget, and a store sized to fit it (200 series × 1,024-sample rings).
    let extra = format!(
        "memory_budget_mb = {BUDGET_MB}\n[store]\nmax_sensors = 200\nmax_points_per_sensor = 1000\n"
    );
    let node = start_node_with(broker.port, &vm, &subs, &extra);
    let pid = node.child.0.id();
    let start = status_kib(pid, "VmRSS:");
    // The caps derived from the budget are on /metrics.
    let caps = |q: &str| {
        node_metric(
            &node.metrics,
            "millwright_memory_queue_cap_bytes",
            &format!("queue=\"{q}\""),
        )
        .unwrap()
    };
    assert_eq!(caps("bus"), (BUDGET_MB << 20) as f64 / 16.0);
    assert_eq!(caps("writer_inbox"), (BUDGET_MB << 20) as f64 / 16.0);
    assert_eq!(
        node_metric(&node.metrics, "millwright_mqtt_max_packet_bytes", ""),
        Some((BUDGET_MB << 20) as f64 / 64.0)
    );
    let (c, acked) = publisher(broker.port).await;
    // ~1 MiB each: 9,000 readings with padding (under the 10,000-readings cap), and every
    // fifth an array of 40,000 small readings (over the cap: counted too_large).
    let t0 = now_ms() - 600_000;
    let big = |k: usize| {
        let mut s = String::from("[");
        for i in 0..9_000 {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                r#"{{"signal":"s{}","value":{k}.{i},"ts_ms":{},"pad":"{}"}}"#,
                i % 50,
                t0 + (k * 9_000 + i) as i64 / 50,
                "p".repeat(50)
            ));
        }
        s.push(']');
        s
    };
    let over: String = format!(
        "[{}]",
        vec![r#"{"signal":"o","value":1}"#; 40_000].join(",")
    );
    assert!(over.len() < 1 << 20);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(start));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p2, s2) = (peak.clone(), stop.clone());
    let sampler = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            p2.fetch_max(status_kib(pid, "VmRSS:"), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    const N: usize = 100;
    let mut n_big = 0;
    for k in 0..N {
        let p = if k % 5 == 4 {
            over.clone()
        } else {
            n_big += 1;
            big(k)
        };
        c.publish(format!("{run}/{run}-F"), QoS::AtLeastOnce, false, p)
            .await
            .unwrap();
    }
    // Then a flood of new series: 4 messages of 1,000 distinct signal names each (the store
    // keeps 200 series; the rest are written to the database but not kept locally).
    const SERIES_MSGS: usize = 4;
    const SERIES_PER_MSG: usize = 1_000;
    for m in 0..SERIES_MSGS {
        let items: Vec<String> = (0..SERIES_PER_MSG)
            .map(|i| {
                format!(
                    r#"{{"signal":"n{m}_{i}_{}","value":{i},"ts_ms":{}}}"#,
                    "q".repeat(60),
                    t0 + i as i64
                )
            })
            .collect();
        c.publish(
            format!("{run}/{run}-S"),
            QoS::AtLeastOnce,
            false,
            format!("[{}]", items.join(",")),
        )
        .await
        .unwrap();
    }
    wait_acked(&acked, N + SERIES_MSGS).await;
    let sub = format!("subscription=\"{run}/{{asset}}\"");
    wait_metric(
        &node,
        "millwright_mqtt_rejected_total",
        &format!("{sub},reason=\"too_large\""),
        (N - n_big) as f64,
    );
    let flood_readings = n_big * 9_000 + SERIES_MSGS * SERIES_PER_MSG;
    wait_metric(
        &node,
        "millwright_mqtt_readings_total",
        &sub,
        flood_readings as f64,
    );
    // Good data after the flood reaches the database.
    let good_asset = format!("{run}-G");
    let good_t0 = now_ms() - 5_000;
    for i in 0..20 {
        c.publish(
            format!("{run}/{good_asset}"),
            QoS::AtLeastOnce,
            false,
            format!(
                r#"{{"signal":"after","value":{i},"ts_ms":{}}}"#,
                good_t0 + i
            ),
        )
        .await
        .unwrap();
    }
    wait_acked(&acked, N + SERIES_MSGS + 20).await;
    let series = vm_wait_for(
        &vm,
        &format!("{{asset=\"{good_asset}\"}}"),
        20,
        Duration::from_secs(60),
    );
    let got: Vec<f64> = series.iter().flat_map(|s| s.values.clone()).collect();
    assert_eq!(got.len(), 20, "{series:#?}");
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let hwm = status_kib(pid, "VmHWM:");
    let m = |name: &str, f: &str| node_metric(&node.metrics, name, f).unwrap_or(-1.0);
    let full = |q: &str| {
        m(
            "millwright_memory_queue_full_total",
            &format!("queue=\"{q}\""),
        )
    };
    let peak_q = |q: &str| {
        m(
            "millwright_memory_queue_peak_bytes",
            &format!("queue=\"{q}\""),
        )
    };
    eprintln!(
        "node RSS: start {} MiB, sampled peak {} MiB, VmHWM {} MiB (budget {BUDGET_MB} MB) during \
         {N} payloads of ~1 MiB and {} new series; bus full {} times (peak {:.1} MiB), writer \
         inbox full {} times (peak {:.1} MiB); store {} series, {} readings not kept; influx \
         dropped {} points",
        start / 1024,
        peak / 1024,
        hwm / 1024,
        SERIES_MSGS * SERIES_PER_MSG,
        full("bus"),
        peak_q("bus") / 1048576.0,
        full("writer_inbox"),
        peak_q("writer_inbox") / 1048576.0,
        m("millwright_store_series", ""),
        m("millwright_store_rejected_readings_total", ""),
        m("millwright_influx_dropped_points_total", ""),
    );
    assert!(
        hwm / 1024 < RSS_LIMIT_MIB,
        "peak RSS (VmHWM) {} MiB over {RSS_LIMIT_MIB} MiB (budget {BUDGET_MB} MB)",
        hwm / 1024
    );
    // The caps were hit and counted; no queue held more than its cap.
    assert!(
        full("bus") + full("writer_inbox") > 0.0,
        "no byte cap was hit"
    );
    assert!(peak_q("bus") <= caps("bus") + 1_100_000.0);
    assert!(peak_q("writer_inbox") <= caps("writer_inbox") + 1_100_000.0);
    assert_eq!(m("millwright_store_series", ""), 200.0);
    assert_eq!(m("millwright_store_max_series", ""), 200.0);
    // The 50 flood signals and 150 of the 4,000 new names fit; the rest, and the 20 good
    // readings of a 201st series, were not kept locally (but written, as the check above saw).
    assert_eq!(
        m("millwright_store_rejected_readings_total", ""),
        (SERIES_MSGS * SERIES_PER_MSG - 150 + 20) as f64
    );
    // /health shows the budget and its queues.
    let health: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!("{}/health", node.metrics))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        health["memory"]["budget_bytes"].as_u64(),
        Some(BUDGET_MB << 20),
        "{health}"
    );
    assert!(
        health["memory"]["queues"]["bus"]["full_total"].is_u64(),
        "{health}"
    );
    assert_eq!(
        health["store"]["max_series"].as_u64(),
        Some(200),
        "{health}"
    );
}

#[test]
fn check_config_names_a_missing_or_corrupt_model_file() {
    let dir = std::env::temp_dir().join(unique("mw-hostile-model-"));
    std::fs::create_dir_all(&dir).unwrap();
    // A GGUF header whose alignment is 0 (the parser would divide by it).
    let mut g = b"GGUF".to_vec();
    g.extend(3u32.to_le_bytes());
    g.extend(0u64.to_le_bytes());
    g.extend(1u64.to_le_bytes());
    let key = "general.alignment";
    g.extend((key.len() as u64).to_le_bytes());
    g.extend(key.as_bytes());
    g.extend(4u32.to_le_bytes());
    g.extend(0u32.to_le_bytes());
    std::fs::write(dir.join("corrupt.gguf"), &g).unwrap();
    let real = model_path();
    for (files, want) in [
        (
            r#"["missing.gguf"]"#.to_string(),
            "model.files[0]: model file",
        ),
        (
            format!(r#"["{}", "corrupt.gguf"]"#, real.display()),
            "general.alignment = 0",
        ),
        (format!(r#"["{}"]"#, real.display()), ""),
    ] {
        let cfg = dir.join("millwright.toml");
        std::fs::write(
            &cfg,
            format!(
                "[site]\nname = \"e2e\"\n[mqtt]\nhost = \"127.0.0.1\"\n[[mqtt.subscriptions]]\ntopic = \"x/{{asset}}/{{signal}}\"\n[model]\nfiles = {files}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new(millwright_bin())
            .arg("check-config")
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if want.is_empty() {
            assert!(out.status.success(), "{err}");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("model "),
                "model not listed"
            );
        } else {
            assert!(!out.status.success(), "{files}: accepted");
            assert!(err.contains(want), "{files}: {err}");
        }
    }
}
