//! End to end: MQTT (real Mosquitto) → the `millwright` binary → InfluxDB v2 write API (real
//! VictoriaMetrics), checked value by value over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct NodeProc {
    _child: KillOnDrop,
    metrics: String,
    cfg: std::path::PathBuf,
}

fn start_node(mqtt_port: u16, vm: &str, subs: &str, extra: &str) -> NodeProc {
    let mport = free_port();
    let dir = std::env::temp_dir().join(unique("mw-node-"));
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
        _child: child,
        metrics: format!("http://127.0.0.1:{mport}"),
        cfg: cfg.clone(),
    };
    wait_subscribed(&node.metrics, Duration::from_secs(30));
    node
}

/// Sum of a metric over all label sets, or of the rows whose labels contain `filter`.
fn metric_where(node: &NodeProc, name: &str, filter: &str) -> Option<f64> {
    node_metric(&node.metrics, name, filter)
}

fn metric(node: &NodeProc, name: &str) -> Option<f64> {
    metric_where(node, name, "")
}

/// Waits (up to 10 s) until the metric is at least `min`: a counter the node bumps right after
/// handing a message to its publisher can lag a subscriber that already got the message.
async fn metric_reaches(node: &NodeProc, name: &str, min: f64) {
    let t = Instant::now();
    while metric(node, name).unwrap_or(0.0) < min {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{name} = {:?}, want ≥ {min}",
            metric(node, name)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A QoS 1 publisher whose event loop counts broker acknowledgements.
struct Publisher {
    c: AsyncClient,
    acked: Arc<AtomicUsize>,
    sent: usize,
    h: tokio::task::JoinHandle<()>,
}

impl Publisher {
    async fn publish(&mut self, topic: String, payload: impl Into<Vec<u8>>) {
        self.c
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        self.sent += 1;
    }
    /// Waits until the broker has acknowledged everything, then disconnects.
    async fn finish(self) {
        let t = Instant::now();
        while self.acked.load(Ordering::Relaxed) < self.sent {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "broker acknowledged {} of {}",
                self.acked.load(Ordering::Relaxed),
                self.sent
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.c.disconnect().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.h).await;
    }
}

async fn publisher(port: u16) -> Publisher {
    let mut o = MqttOptions::new(unique("pub-"), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(64 << 20, 64 << 20)
        .set_clean_session(false);
    let (c, mut el) = AsyncClient::new(o, 1000);
    let acked = Arc::new(AtomicUsize::new(0));
    let a = acked.clone();
    let h = tokio::spawn(async move {
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
    Publisher {
        c,
        acked,
        sent: 0,
        h,
    }
}

fn base_ms() -> i64 {
    // Recent, ms-aligned timestamps (VictoriaMetrics keeps ms precision).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now - 3_600_000
}

fn expected_value(i: usize) -> f64 {
    // Negative, fractional and large values with 12 significant digits: VictoriaMetrics keeps
    // 12 (InfluxDB keeps the full f64), so this is what "exact" can mean here.
    let v = (i as f64 * 0.731).sin() * 1234.5678901 + if i.is_multiple_of(7) { 1e5 } else { 0.0 };
    (v * 1e6).round() / 1e6
}

/// Exported points of one asset: (signal, ts_ms) -> (value, labels).
fn exported(
    vm: &str,
    asset: &str,
    n: usize,
) -> BTreeMap<(String, i64), (f64, BTreeMap<String, String>)> {
    let sel = format!("{{asset=\"{asset}\"}}");
    let series = vm_wait_for(vm, &sel, n, Duration::from_secs(60));
    let mut out = BTreeMap::new();
    for s in series {
        let name = s.metric["__name__"].trim_end_matches("_value").to_string();
        for (v, t) in s.values.iter().zip(&s.timestamps_ms) {
            out.insert((name.clone(), *t), (*v, s.metric.clone()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_readings_per_format_arrive_exactly() {
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("r");
    let subs = format!(
        r#"
[[mqtt.subscriptions]]
topic = "{run}/json/{{asset}}/{{signal}}"
format = "json"
unit = "bar"
[[mqtt.subscriptions]]
topic = "{run}/array/{{asset}}"
format = "json"
[[mqtt.subscriptions]]
topic = "{run}/fields/{{asset}}"
format = "json"
[[mqtt.subscriptions]]
topic = "{run}/lp"
format = "line_protocol"
precision = "ms"
"#
    );
    let node = start_node(broker.port, &vm, &subs, "");
    let mut c = publisher(broker.port).await;
    const N: usize = 10_000;
    let t0 = base_ms();
    let (a_single, a_array, a_fields, a_lp) = (
        format!("{run}-single"),
        format!("{run}-array"),
        format!("{run}-fields"),
        format!("{run}-lp"),
    );
    // 1. one reading per message, asset and signal from the topic.
    for i in 0..N {
        let p = format!(
            r#"{{"value":{:?},"ts_ms":{}}}"#,
            expected_value(i),
            t0 + i as i64
        );
        c.publish(format!("{run}/json/{a_single}/pressure_bar"), p)
            .await;
    }
    // 2. arrays of 100 readings, signal and unit in the payload.
    for chunk in 0..N / 100 {
        let items: Vec<String> = (0..100)
            .map(|k| {
                let i = chunk * 100 + k;
                format!(
                    r#"{{"signal":"temp_c","unit":"°C","value":{:?},"ts_ns":{},"quality":"{}"}}"#,
                    expected_value(i),
                    (t0 + i as i64) * 1_000_000,
                    if i % 10 == 0 { "uncertain" } else { "good" }
                )
            })
            .collect();
        c.publish(
            format!("{run}/array/{a_array}"),
            format!("[{}]", items.join(",")),
        )
        .await;
    }
    // 3. field sets: 2 signals per message, one timestamp (RFC 3339 for every 2nd).
    for m in 0..N / 2 {
        let ts = t0 + m as i64;
        let time = if m % 2 == 0 {
            format!(r#""ts_s":{}.{:03}"#, ts / 1000, ts % 1000)
        } else {
            format!(r#""ts_ms":{ts}"#)
        };
        let p = format!(
            r#"{{{time},"fields":{{"flow_m3_h":{:?},"speed_rpm":{:?}}},"units":{{"flow_m3_h":"m³/h","speed_rpm":"rpm"}}}}"#,
            expected_value(2 * m),
            expected_value(2 * m + 1)
        );
        c.publish(format!("{run}/fields/{a_fields}"), p).await;
    }
    // 4. line protocol, 50 lines per message.
    for chunk in 0..N / 50 {
        let lines: Vec<String> = (0..50)
            .map(|k| {
                let i = chunk * 50 + k;
                format!(
                    "machine,asset={a_lp},unit=A current_a={:?} {}",
                    expected_value(i),
                    t0 + i as i64
                )
            })
            .collect();
        c.publish(format!("{run}/lp"), lines.join("\n")).await;
    }

    let check =
        |asset: &str, expect: &dyn Fn(usize) -> (String, i64, f64, &'static str, &'static str)| {
            let got = exported(&vm, asset, N);
            assert_eq!(
                got.len(),
                N,
                "asset {asset}: {} of {N} points arrived",
                got.len()
            );
            for i in 0..N {
                let (sig, ts, v, unit, quality) = expect(i);
                let (gv, labels) = got
                    .get(&(sig.clone(), ts))
                    .unwrap_or_else(|| panic!("{asset}: point {i} ({sig} @ {ts}) missing"));
                assert_eq!(*gv, v, "{asset}: point {i} value");
                assert_eq!(labels["unit"], unit, "{asset}: point {i} unit");
                assert_eq!(labels["quality"], quality, "{asset}: point {i} quality");
                assert_eq!(labels["site"], "e2e");
            }
        };
    check(&a_single, &|i| {
        (
            "pressure_bar".into(),
            t0 + i as i64,
            expected_value(i),
            "bar",
            "good",
        )
    });
    check(&a_array, &|i| {
        (
            "temp_c".into(),
            t0 + i as i64,
            expected_value(i),
            "°C",
            if i % 10 == 0 { "uncertain" } else { "good" },
        )
    });
    check(&a_fields, &|i| {
        let sig = if i % 2 == 0 { "flow_m3_h" } else { "speed_rpm" };
        (
            sig.into(),
            t0 + (i / 2) as i64,
            expected_value(i),
            if i % 2 == 0 { "m³/h" } else { "rpm" },
            "good",
        )
    });
    check(&a_lp, &|i| {
        (
            "current_a".into(),
            t0 + i as i64,
            expected_value(i),
            "A",
            "good",
        )
    });
    assert_eq!(metric(&node, "millwright_mqtt_rejected_total"), Some(0.0));
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_counted_and_good_ones_all_arrive() {
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("m");
    let subs = format!(
        r#"
[[mqtt.subscriptions]]
topic = "{run}/{{asset}}/{{signal}}"
format = "json"
[[mqtt.subscriptions]]
topic = "{run}-lp/{{asset}}"
format = "line_protocol"
"#
    );
    let node = start_node(broker.port, &vm, &subs, "");
    let mut c = publisher(broker.port).await;
    let asset = format!("{run}-A");
    let t0 = base_ms();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("syntax", b"{\"value\": 1.0".to_vec()),
        ("schema", br#"{"value": "12.5"}"#.to_vec()),
        ("schema", br#"{"value": [1]}"#.to_vec()),
        ("schema", br#"{"reading": 3}"#.to_vec()),
        ("non_finite", br#"{"value": NaN}"#.to_vec()),
        ("non_finite", br#"{"value": 1e400}"#.to_vec()),
        ("non_finite", br#"{"value": -Infinity}"#.to_vec()),
        (
            "invalid_utf8",
            b"{\"value\": 1, \"unit\": \"\xff\xfe\"}".to_vec(),
        ),
        ("too_large", {
            let mut v = b"[".to_vec();
            while v.len() < 10 * 1024 * 1024 {
                v.extend_from_slice(br#"{"value": 1.0},"#);
            }
            v.extend_from_slice(br#"{"value": 1.0}]"#);
            v
        }),
    ];
    let mut good = 0usize;
    let mut expected_rejects: BTreeMap<&str, usize> = BTreeMap::new();
    for round in 0..20 {
        for (reason, payload) in &bad {
            let p = format!(r#"{{"value":{round}.5,"ts_ms":{}}}"#, t0 + good as i64);
            c.publish(format!("{run}/{asset}/good_signal"), p).await;
            good += 1;
            if *reason == "too_large" && round >= 2 {
                continue; // three 10 MB payloads are plenty
            }
            c.publish(format!("{run}/{asset}/bad_signal"), payload.clone())
                .await;
            *expected_rejects.entry(reason).or_default() += 1;
        }
        // A topic no subscription maps, and bad line protocol.
        c.publish(format!("{run}-unmapped/x/y"), "{\"value\": 1}")
            .await;
        c.publish(format!("{run}-lp/{asset}"), "m,asset=x field=notanumber")
            .await;
    }
    let got = exported(&vm, &asset, good);
    let good_points = got.keys().filter(|(s, _)| s == "good_signal").count();
    assert_eq!(good_points, good, "every good reading arrives");
    assert!(
        got.keys().all(|(s, _)| s == "good_signal"),
        "no bad payload produced a point"
    );
    let t = Instant::now();
    let sub = format!("subscription=\"{run}/{{asset}}/{{signal}}\"");
    loop {
        let mut all = true;
        for (reason, n) in &expected_rejects {
            let got = metric_where(
                &node,
                "millwright_mqtt_rejected_total",
                &format!("{sub},reason=\"{reason}\""),
            )
            .unwrap_or(0.0);
            if got != *n as f64 {
                all = false;
                if t.elapsed() > Duration::from_secs(20) {
                    panic!("reason {reason}: counted {got}, expected {n}");
                }
            }
        }
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lp_rej = metric_where(
        &node,
        "millwright_mqtt_rejected_total",
        &format!("subscription=\"{run}-lp/{{asset}}\",reason=\"schema\""),
    )
    .unwrap();
    assert_eq!(lp_rej, 20.0);
    assert_eq!(
        metric(&node, "millwright_mqtt_connections_total"),
        Some(1.0),
        "a bad message never broke the connection"
    );
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_reconnects_and_resubscribes_after_broker_restart() {
    let mut broker = Mosquitto::start();
    let vm = victoria();
    let run = unique("b");
    let subs = format!(
        r#"
[[mqtt.subscriptions]]
topic = "{run}/{{asset}}/{{signal}}"
format = "json"
qos = 1
"#
    );
    let node = start_node(broker.port(), &vm, &subs, "");
    let asset = format!("{run}-R");
    let t0 = base_ms();
    let port = broker.port();
    let publish_range = |from: usize, to: usize| {
        let asset = asset.clone();
        let run = run.clone();
        async move {
            let mut c = publisher(port).await;
            for i in from..to {
                let p = format!(r#"{{"value":{i},"ts_ms":{}}}"#, t0 + i as i64);
                c.publish(format!("{run}/{asset}/seq"), p).await;
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            c.finish().await;
        }
    };
    publish_range(0, 1000).await;
    let got = exported(&vm, &asset, 1000);
    assert_eq!(got.len(), 1000, "before the restart");

    broker.stop();
    let t = Instant::now();
    while metric(&node, "millwright_mqtt_connected") != Some(0.0) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "node did not notice the broker going away"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&node, "millwright_mqtt_subscribed"),
        Some(0.0),
        "no subscription while disconnected"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.start_again();
    // Connected again and subscribed again (on every connect).
    let b = node.metrics.clone();
    tokio::task::spawn_blocking(move || wait_subscribed(&b, Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(metric(&node, "millwright_mqtt_connections_total").unwrap() >= 2.0);
    publish_range(1000, 2000).await;
    let got = exported(&vm, &asset, 2000);
    assert_eq!(
        got.len(),
        2000,
        "after the restart, ingest resumed without restarting the node"
    );
    for i in 0..2000 {
        assert_eq!(got[&("seq".to_string(), t0 + i as i64)].0, i as f64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_subscription_ingests() {
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("v5");
    let subs = format!(
        "[[mqtt.subscriptions]]\ntopic = \"{run}/{{asset}}/{{signal}}\"\nformat = \"json\"\n"
    );
    let node = start_node(
        broker.port,
        &vm,
        &subs.replace(
            "[[mqtt.subscriptions]]",
            "protocol = \"5\"\n[[mqtt.subscriptions]]",
        ),
        "",
    );
    let asset = format!("{run}-A");
    let t0 = base_ms();
    let mut c = publisher(broker.port).await;
    for i in 0..1000 {
        c.publish(
            format!("{run}/{asset}/level_m"),
            format!(r#"{{"value":{i},"ts_ms":{}}}"#, t0 + i as i64),
        )
        .await;
    }
    c.finish().await;
    let got = exported(&vm, &asset, 1000);
    assert_eq!(got.len(), 1000);
    assert_eq!(metric(&node, "millwright_mqtt_rejected_total"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influx_writes_are_retried_until_the_database_comes_up() {
    let broker = mqtt_broker();
    let vm_port = free_port();
    let vm_url = format!("http://127.0.0.1:{vm_port}");
    let run = unique("db");
    let subs = format!(
        "[[mqtt.subscriptions]]\ntopic = \"{run}/{{asset}}/{{signal}}\"\nformat = \"json\"\n"
    );
    // The database is down when the node starts and while the readings come in. The node's
    // own metrics stay off so the backlog holds exactly the readings.
    let node = start_node(broker.port, &vm_url, &subs, "metrics_interval_s = 0");
    let asset = format!("{run}-A");
    let t0 = base_ms();
    let mut c = publisher(broker.port).await;
    for i in 0..3000 {
        c.publish(
            format!("{run}/{asset}/flow_m3_h"),
            format!(r#"{{"value":{i},"ts_ms":{}}}"#, t0 + i as i64),
        )
        .await;
    }
    c.finish().await;
    // Two failed writes, and every reading (the broker has them all) held in the backlog.
    let t = Instant::now();
    while metric(&node, "millwright_influx_failed_requests_total").unwrap_or(0.0) < 2.0
        || metric(&node, "millwright_influx_backlog_points") != Some(3000.0)
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "failed writes {:?}, backlog {:?} (want ≥ 2 and 3000)",
            metric(&node, "millwright_influx_failed_requests_total"),
            metric(&node, "millwright_influx_backlog_points")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = ureq::get(&format!("{}/health", node.metrics)).call();
    assert!(health.is_err(), "health must report the failing database");
    let vm = Victoria::start_at(vm_port);
    let got = exported(&vm.url, &asset, 3000);
    assert_eq!(
        got.len(),
        3000,
        "every reading written once the database is up"
    );
    for i in 0..3000 {
        assert_eq!(got[&("flow_m3_h".to_string(), t0 + i as i64)].0, i as f64);
    }
    assert_eq!(
        metric(&node, "millwright_influx_dropped_points_total"),
        Some(0.0)
    );
}

#[test]
fn check_config_names_each_problem() {
    let dir = std::env::temp_dir().join(unique("mw-cfg-"));
    std::fs::create_dir_all(&dir).unwrap();
    let good = r#"[site]
name = "s"

[mqtt]
host = "127.0.0.1"

[[mqtt.subscriptions]]
topic = "a/{asset}/{signal}"

[influxdb]
url = "http://127.0.0.1:8086"
org = "o"
bucket = "b"
"#;
    let cases: &[(&str, String, &[&str])] = &[
        (
            "unknown key",
            good.replace("host = \"127.0.0.1\"", "host = \"127.0.0.1\"\nhots = 3"),
            &["line 6", "unknown field `hots`"],
        ),
        (
            "wrong type",
            good.replace(
                "host = \"127.0.0.1\"",
                "host = \"127.0.0.1\"\nport = \"1883\"",
            ),
            &["line 6", "mqtt.port", "invalid type: string"],
        ),
        (
            "missing field",
            good.replace("bucket = \"b\"\n", ""),
            &["influxdb", "missing field `bucket`"],
        ),
        (
            "bad url",
            good.replace("http://127.0.0.1:8086", "ftp://127.0.0.1:8086"),
            &["line 11", "influxdb.url", "scheme"],
        ),
        (
            "bad url 2",
            good.replace("http://127.0.0.1:8086", "http//nohost"),
            &["line 11", "influxdb.url", "not a URL"],
        ),
        (
            "bad topic",
            good.replace("a/{asset}/{signal}", "a/#/b"),
            &["line 8", "mqtt.subscriptions[0].topic", "`#`"],
        ),
        (
            "toml syntax",
            good.replace("name = \"s\"", "name = \"s"),
            &["line 2"],
        ),
    ];
    for (what, text, needles) in cases {
        let f = dir.join(format!("{}.toml", what.replace(' ', "_")));
        std::fs::write(&f, text).unwrap();
        let out = Command::new(millwright_bin())
            .arg("check-config")
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: accepted");
        for n in *needles {
            assert!(err.contains(n), "{what}: `{n}` not in:\n{err}");
        }
        assert!(
            err.contains(&f.display().to_string()),
            "{what}: file not named:\n{err}"
        );
    }
    // Two problems in one file are both reported.
    let two = good.replace(
        "host = \"127.0.0.1\"",
        "host = \"127.0.0.1\"\nhots = 3\nqos_default = 1",
    );
    let f = dir.join("two.toml");
    std::fs::write(&f, two).unwrap();
    let out = Command::new(millwright_bin())
        .arg("check-config")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`hots`") && err.contains("`qos_default`"),
        "{err}"
    );
}

#[test]
fn example_config_in_deploy_passes_check_config() {
    let out = Command::new(millwright_bin())
        .arg("check-config")
        .arg(workspace_root().join("deploy/millwright.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn demo_runs_and_shows_every_machine() {
    let out = Command::new(millwright_bin())
        .args(["demo", "--duration-s", "10", "--refresh-s", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for asset in ["P-101", "M-201", "C-301"] {
        assert!(
            text.contains(asset),
            "{asset} missing from the demo view:\n{text}"
        );
    }
    // Readings with units were shown and counted.
    assert!(text.contains("°C") && text.contains("mm/s"), "{text}");
    let last_view = text.rsplit("live readings").next().unwrap();
    assert!(last_view.contains("n="), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_is_detected_explained_and_published_on_mqtt_and_influx() {
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("an");
    let asset = format!("{run}-P");
    let profile = workspace_root().join("pipelines/centrifugal-pump.toml");
    let extra = format!(
        "[[assets]]\nname = \"{asset}\"\nprofile = \"{}\"\n[model]\nfiles = [\"{}\"]\nthreads = 1\n",
        profile.display(),
        model_path().display()
    );
    let subs = format!("[[mqtt.subscriptions]]\ntopic = \"{run}/{{asset}}\"\nformat = \"json\"\n");
    // Listen for the node's alerts and status before the node starts.
    let mut o = MqttOptions::new(unique("sub-"), "127.0.0.1", broker.port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut el) = AsyncClient::new(o, 100);
    sub.subscribe("millwright/e2e/alerts/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    sub.subscribe("millwright/e2e/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (atx, mut arx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = atx.send((
                        p.topic.clone(),
                        String::from_utf8_lossy(&p.payload).to_string(),
                    ));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let node = start_node(broker.port, &vm, &subs, &extra);
    // 400 s of normal bearing temperature, then a step of +15 °C, at 1 Hz, ending now.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let n = 460;
    let mut c = publisher(broker.port).await;
    for i in 0..n {
        let noise = ((i as f64) * 1.7).sin() * 0.3;
        let v = if i < 400 { 60.0 + noise } else { 75.0 + noise };
        let ts = now_ms - (n - i) as i64 * 1000;
        c.publish(
            format!("{run}/{asset}"),
            format!(r#"{{"ts_ms":{ts},"fields":{{"bearing_temp_c":{v:.3}}},"units":{{"bearing_temp_c":"°C"}}}}"#),
        )
        .await;
    }
    c.finish().await;
    let t = Instant::now();
    let mut status_online = false;
    let alert = loop {
        let left = Duration::from_secs(120).saturating_sub(t.elapsed());
        assert!(!left.is_zero(), "no alert for {asset} within 120 s");
        match tokio::time::timeout(left, arx.recv()).await {
            Ok(Some((topic, payload))) => {
                if topic == "millwright/e2e/status" {
                    status_online |= payload == "online";
                } else if topic == format!("millwright/e2e/alerts/{asset}") {
                    break payload;
                }
            }
            _ => panic!("no alert for {asset}"),
        }
    };
    let card: serde_json::Value = serde_json::from_str(&alert).unwrap();
    assert_eq!(card["asset"], asset.as_str(), "{alert}");
    assert_eq!(card["signal"], "bearing_temp_c", "{alert}");
    assert!(card["text"].as_str().unwrap().len() > 20, "{alert}");
    assert!(
        matches!(card["source"].as_str(), Some("model") | Some("fallback")),
        "{alert}"
    );
    assert!(status_online, "retained status `online` was published");
    // The alert is the card of the asset's incident (one fault, one incident).
    assert!(
        card["id"]
            .as_str()
            .is_some_and(|id| id.starts_with(&format!("{asset}#"))),
        "{alert}"
    );
    // The event is in InfluxDB too.
    let series = vm_wait_for(
        &vm,
        &format!("{{__name__=~\"millwright_anomaly.*\",asset=\"{asset}\"}}"),
        1,
        Duration::from_secs(30),
    );
    assert!(!series.is_empty(), "anomaly event written to the database");
    metric_reaches(&node, "millwright_alerts_published_total", 1.0).await;
    // The incident is in InfluxDB and counted.
    let incidents = vm_wait_for(
        &vm,
        &format!("{{__name__=~\"millwright_incident.*\",asset=\"{asset}\"}}"),
        1,
        Duration::from_secs(30),
    );
    assert!(!incidents.is_empty(), "incident written to the database");
    metric_reaches(&node, "millwright_incidents_total", 1.0).await;
    // The node's MQTT publisher counts what it queued, and nothing was lost on the way.
    metric_reaches(&node, "millwright_mqtt_published_total", 1.0).await;
    assert_eq!(
        metric(&node, "millwright_mqtt_publish_queue_full_total"),
        Some(0.0)
    );
    assert_eq!(
        metric(&node, "millwright_mqtt_publish_dropped_total"),
        Some(0.0)
    );
    // A maintenance report on request, through the CLI and the broker.
    let (bin, cfg, a) = (millwright_bin(), node.cfg.clone(), asset.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["report", "--timeout-s", "90", "--asset", &a, "--config"])
            .arg(cfg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{md}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(md.contains(&format!("Maintenance report: {asset}")), "{md}");
    assert!(
        md.contains("bearing_temp_c") && md.contains("Recommended actions"),
        "{md}"
    );
    metric_reaches(&node, "millwright_reports_total", 1.0).await;
    assert!(metric(&node, "millwright_grounding_checks_total").is_some());
    let series = vm_wait_for(
        &vm,
        &format!("{{__name__=~\"millwright_report.*\",asset=\"{asset}\"}}"),
        1,
        Duration::from_secs(30),
    );
    assert!(!series.is_empty(), "report written to the database");
}
