//! Site scale-out: two nodes in one MQTT shared-subscription group (`$share/<group>/…`,
//! MQTT 5) against the real Mosquitto take one 100,000-reading stream between them; every
//! reading arrives in the real VictoriaMetrics exactly once and each node took a real share
//! (its own `/metrics` counter).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeSet;
use std::time::Duration;

const MESSAGES: usize = 10_000;
const FIELDS: usize = 10;
const ASSETS: usize = 20;

fn start_node(run: &str, n: usize, mqtt_port: u16, vm: &str) -> (KillOnDrop, String) {
    let mport = free_port();
    let dir = std::env::temp_dir().join(unique("mw-share-"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("millwright.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[site]
name = "{run}"
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "{run}-node-{n}"
protocol = "5"
[[mqtt.subscriptions]]
topic = "$share/{run}-line/{run}/{{asset}}"
format = "json"
qos = 1
[influxdb]
url = "{vm}"
org = "e2e"
bucket = "e2e"
batch_size = 5000
flush_interval_ms = 200
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 0
metrics_interval_s = 0
"#
        ),
    )
    .unwrap();
    let child = run_checked_node(&cfg, &dir.join("node.log"));
    let metrics = format!("http://127.0.0.1:{mport}");
    wait_subscribed(&metrics, Duration::from_secs(30));
    (child, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_shared_group_store_every_reading_once_and_each_takes_a_share() {
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("so");
    let (_a, ma) = start_node(&run, 1, broker.port, &vm);
    let (_b, mb) = start_node(&run, 2, broker.port, &vm);
    // Let both SUBSCRIBEs be acknowledged before the stream starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    let mut o = MqttOptions::new(unique("pub-"), "127.0.0.1", broker.port);
    o.set_max_packet_size(1 << 20, 1 << 20)
        .set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 1000);
    let acks = tokio::spawn(async move {
        let mut n = 0;
        while n < MESSAGES {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => n += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher: {e}"),
            }
        }
    });
    for i in 0..MESSAGES {
        let fields: Vec<String> = (0..FIELDS)
            .map(|f| format!("\"s{f}\":{}.5", i * FIELDS + f))
            .collect();
        c.publish(
            format!("{run}/{run}-A{}", i % ASSETS),
            QoS::AtLeastOnce,
            false,
            format!(
                r#"{{"ts_ms":{},"fields":{{{}}}}}"#,
                base_ms + i as i64,
                fields.join(",")
            ),
        )
        .await
        .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(120), acks)
        .await
        .expect("broker acknowledged every message")
        .unwrap();
    let total = MESSAGES * FIELDS;
    let series = vm_wait_for(
        &vm,
        &format!("{{site=\"{run}\"}}"),
        total,
        Duration::from_secs(120),
    );
    // Exactly once: as many points as readings, every (series, time) once, every value right.
    let mut seen = BTreeSet::new();
    let mut points = 0;
    for s in &series {
        let name = s.metric["__name__"].trim_end_matches("_value").to_string();
        let f: usize = name.trim_start_matches('s').parse().unwrap();
        for (v, t) in s.values.iter().zip(&s.timestamps_ms) {
            points += 1;
            let i = (t - base_ms) as usize;
            assert_eq!(*v, (i * FIELDS + f) as f64 + 0.5, "{name} at {t}");
            assert_eq!(s.metric["asset"], format!("{run}-A{}", i % ASSETS));
            assert!(
                seen.insert((name.clone(), *t)),
                "{name} at {t} stored twice"
            );
        }
    }
    assert_eq!(points, total, "every reading stored exactly once");
    // Each node took a real share of the stream, and together exactly the whole stream.
    let a = node_metric(&ma, "millwright_mqtt_readings_total", "").unwrap();
    let b = node_metric(&mb, "millwright_mqtt_readings_total", "").unwrap();
    assert_eq!(a + b, total as f64, "node shares {a} + {b}");
    for (n, share) in [(1, a), (2, b)] {
        assert!(
            share >= total as f64 * 0.2,
            "node {n} took only {share} of {total} readings"
        );
    }
    eprintln!("shares: node 1 {a}, node 2 {b} of {total}");
}
