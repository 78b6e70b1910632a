//! SIGTERM drains: readings that sit in the InfluxDB writer's memory when the node is told to
//! stop (long flush interval, large batch) all reach VictoriaMetrics before the process exits
//! with code 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sum of a Prometheus metric (all label sets) from the node's `/metrics`.
fn metric(base: &str, name: &str) -> Option<f64> {
    node_metric(base, name, "")
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_held_by_the_writer_reach_the_database_after_sigterm() {
    const N: usize = 500;
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("drain");
    let asset = format!("{run}-P");
    let mport = free_port();
    let dir = std::env::temp_dir().join(unique("mw-drain-"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("millwright.toml");
    // One flush per 10 minutes and batches of 100 000: nothing is written before the stop.
    std::fs::write(
        &cfg,
        format!(
            r#"
[site]
name = "e2e"
[mqtt]
host = "{host}"
port = {port}
client_id = "{cid}"
[[mqtt.subscriptions]]
topic = "{run}/{{asset}}/{{signal}}"
format = "json"
unit = "bar"
[influxdb]
url = "{vm}"
org = "e2e"
bucket = "e2e"
batch_size = 100000
flush_interval_ms = 600000
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 0
shutdown_drain_s = 20
metrics_interval_s = 0            # the writer holds the readings only
"#,
            host = broker.host,
            port = broker.port,
            cid = unique("node-"),
        ),
    )
    .unwrap();
    let log = dir.join("node.log");
    let child = Command::new(millwright_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut node = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{mport}");
    let b = base.clone();
    tokio::task::spawn_blocking(move || wait_subscribed(&b, Duration::from_secs(30)))
        .await
        .unwrap();

    // N readings at QoS 1, acknowledged by the broker.
    let mut o = MqttOptions::new(unique("pub-"), broker.host.clone(), broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 1000);
    let acked = Arc::new(AtomicUsize::new(0));
    let a = acked.clone();
    let pump = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    a.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let t0_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 600_000;
    let value = |i: usize| (i as f64) * 0.25 - 17.0;
    for i in 0..N {
        c.publish(
            format!("{run}/{asset}/pressure_bar"),
            QoS::AtLeastOnce,
            false,
            format!(r#"{{"value":{:?},"ts_ms":{}}}"#, value(i), t0_ms + i as i64),
        )
        .await
        .unwrap();
    }
    let t = Instant::now();
    while acked.load(Ordering::Relaxed) < N {
        assert!(t.elapsed() < Duration::from_secs(30), "broker acks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pump.abort();

    // The node has every reading, and every one waits in the writer's memory.
    let b = base.clone();
    tokio::task::spawn_blocking(move || {
        wait_for(
            "the node to receive every reading",
            Duration::from_secs(30),
            || {
                metric(&b, "millwright_readings_total") == Some(N as f64)
                    && metric(&b, "millwright_influx_backlog_points") == Some(N as f64)
            },
        );
    })
    .await
    .unwrap();
    assert_eq!(
        metric(&base, "millwright_influx_written_points_total"),
        Some(0.0),
        "nothing was written before the stop"
    );

    // SIGTERM, then a clean exit within the drain deadline.
    let pid = node.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = node.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the node did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "exit status; log:\n{log_text}");

    // Every reading is in the database, value by value.
    let sel = format!("{{asset=\"{asset}\"}}");
    let series =
        tokio::task::spawn_blocking(move || vm_wait_for(&vm, &sel, N, Duration::from_secs(10)))
            .await
            .unwrap();
    let mut got: Vec<(i64, f64)> = series
        .iter()
        .flat_map(|s| {
            s.timestamps_ms
                .iter()
                .copied()
                .zip(s.values.iter().copied())
        })
        .collect();
    got.sort_by_key(|p| p.0);
    assert_eq!(
        got.len(),
        N,
        "{} of {N} readings reached the database after SIGTERM; log:\n{log_text}",
        got.len()
    );
    for (i, (ts, v)) in got.iter().enumerate() {
        assert_eq!((*ts, *v), (t0_ms + i as i64, value(i)), "reading {i}");
    }
}
