//! SIGKILL of the node during a QoS 1 stream, then a restart with the same config (persistent
//! session, same client id, same outbox): every reading the broker acknowledged to the
//! publisher reaches the database with its value; duplicates stay within the last
//! unacknowledged window (the broker's in-flight messages and one write request).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod durable_common;

use durable_common::*;
use millwright_e2e::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_qos1_stream_loses_nothing_the_broker_sent() {
    const PER_MSG: u64 = 20;
    const RATE_MSGS: u64 = 250; // 5,000 readings/s
    const SECONDS: u64 = 12;
    const MSGS: u64 = RATE_MSGS * SECONDS;
    const N: u64 = PER_MSG * MSGS;
    const BATCH: u64 = 5_000;
    let vm = victoria();
    let run = unique("kill");
    let dir = test_dir("mw-durable-kill-");
    let mport = free_port();
    let cfg = write_config(
        &dir,
        &run,
        &vm,
        mport,
        &unique("node-"),
        &format!("batch_size = {BATCH}"),
        "",
    );
    let log1 = dir.join("node1.log");
    let log2 = dir.join("node2.log");
    let mut node = run_checked_node(&cfg, &log1);
    let base = format!("http://127.0.0.1:{mport}");
    let b = base.clone();
    tokio::task::spawn_blocking(move || wait_connected(&b))
        .await
        .unwrap();

    let t0_ms = now_ms() - 600_000;
    let publisher = Publisher::connect("kill-pub-");
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE_MSGS));
    let started = Instant::now();
    let mut written_at_kill = 0.0;
    for m in 0..MSGS {
        tick.tick().await;
        if m == RATE_MSGS * 4 {
            let b = base.clone();
            written_at_kill = tokio::task::spawn_blocking(move || {
                metric(&b, "millwright_influx_written_points_total")
            })
            .await
            .unwrap();
            let pid = node.0.id().to_string();
            assert!(Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap()
                .success());
            let _ = node.0.wait();
            eprintln!(
                "kill: SIGKILL at {:.1} s with {written_at_kill} points written",
                started.elapsed().as_secs_f64()
            );
        }
        if m == RATE_MSGS * 6 {
            node = run_checked_node(&cfg, &log2);
            eprintln!(
                "kill: restarted at {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        let (_, (topic, payload)) = stream_message(&run, t0_ms, m, PER_MSG);
        publisher.publish(topic, payload).await;
    }
    // The publisher's log: every message acknowledged by the broker.
    publisher.wait_acked(MSGS, Duration::from_secs(60)).await;
    assert!(written_at_kill > 0.0, "nothing was written before the kill");

    let (url, r) = (vm.clone(), run.clone());
    let db = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        loop {
            let db = stored(&url, &r);
            let (missing, _) = compare(&db, &r, t0_ms, 0..N);
            if missing.is_empty() || t.elapsed() > Duration::from_secs(60) {
                return db;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    })
    .await
    .unwrap();
    let (missing, dups) = compare(&db, &run, t0_ms, 0..N);
    assert!(
        missing.is_empty(),
        "{} of {N} readings missing (first: {:?}); first run:\n{}\nsecond run:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        log_tail(&log1, 10),
        log_tail(&log2, 20)
    );
    // Unacknowledged window: the broker's in-flight messages (Mosquitto's default 20, plus
    // what rumqttc had read but not acked) and one write request sent again.
    let window = (100 * PER_MSG + BATCH) as usize;
    assert!(
        dups <= window,
        "{dups} duplicates, more than the window of {window}"
    );
    let second = std::fs::read_to_string(&log2).unwrap_or_default();
    assert!(
        second.contains("influxdb outbox open"),
        "the restarted node opened the outbox:\n{second}"
    );
    eprintln!("kill: all {N} readings stored; duplicates: {dups}");
    drop(node);
}
