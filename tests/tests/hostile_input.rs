//! Hostile input end to end (real Mosquitto → the `millwright` binary → real VictoriaMetrics):
//! asset and signal names line protocol or MQTT cannot carry and readings dated beyond the
//! allowed skew, published next to good readings, are counted by reason and never reach the
//! database, while every good reading arrives and the database rejects nothing; a publisher
//! flooding 1 MiB payloads does not push the node's RSS past a bound.

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
    let t0 = Instant::now();
    while node_metric(&node.metrics, "millwright_mqtt_connected", "").unwrap_or(0.0) != 1.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "node did not connect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
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

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// RSS the node may reach while a publisher floods 1 MiB payloads: the bus holds at most
/// `bus_capacity` batches of at most `max_readings_per_message` readings each, the payloads
/// themselves are bounded by `max_payload_bytes`.
const FLOOD_RSS_BUDGET_MIB: u64 = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_1mib_payloads_keeps_the_node_under_its_memory_budget() {
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
    let node = start_node(broker.port, &vm, &subs);
    let pid = node.child.0.id();
    let start = rss_kib(pid);
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
            p2.fetch_max(rss_kib(pid), Ordering::Relaxed);
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
    wait_acked(&acked, N).await;
    let sub = format!("subscription=\"{run}/{{asset}}\"");
    wait_metric(
        &node,
        "millwright_mqtt_rejected_total",
        &format!("{sub},reason=\"too_large\""),
        (N - n_big) as f64,
    );
    wait_metric(
        &node,
        "millwright_mqtt_readings_total",
        &sub,
        (n_big * 9_000) as f64,
    );
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "node RSS: start {} MiB, peak {} MiB during {N} payloads of ~1 MiB",
        start / 1024,
        peak / 1024
    );
    assert!(
        peak / 1024 < FLOOD_RSS_BUDGET_MIB,
        "peak RSS {} MiB over the {FLOOD_RSS_BUDGET_MIB} MiB budget",
        peak / 1024
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
