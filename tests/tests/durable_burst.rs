//! The unpaced burst: 3,000,000 readings (100 per JSON message, QoS 1) published as fast as
//! the real Mosquitto takes them, into the real VictoriaMetrics through the node's disk outbox
//! with a small budget under `block_ingest`. Every reading arrives with its value; nothing is
//! dropped (the node stops reading while the outbox is full and the broker holds the rest).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod durable_common;

use durable_common::*;
use millwright_e2e::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaced_burst_of_three_million_readings_arrives_complete() {
    const PER_MSG: u64 = 100;
    const MSGS: u64 = 30_000;
    const N: u64 = PER_MSG * MSGS;
    let vm = victoria();
    let run = unique("burst");
    let dir = test_dir("mw-durable-burst-");
    let mport = free_port();
    // 32 MiB of outbox: about a tenth of the burst, so the budget fills and ingest blocks.
    let cfg = write_config(
        &dir,
        &run,
        &vm,
        mport,
        &unique("node-"),
        "",
        "max_bytes = 33554432\npolicy = \"block_ingest\"",
    );
    let log = dir.join("node.log");
    let _node = run_checked_node(&cfg, &log);
    let base = format!("http://127.0.0.1:{mport}");
    let b = base.clone();
    tokio::task::spawn_blocking(move || wait_connected(&b))
        .await
        .unwrap();

    let t0_ms = now_ms() - 3_600_000;
    let publisher = Publisher::connect("burst-pub-");
    let started = Instant::now();
    for m in 0..MSGS {
        let (_, (topic, payload)) = stream_message(&run, t0_ms, m, PER_MSG);
        publisher.publish(topic, payload).await;
    }
    publisher.wait_acked(MSGS, Duration::from_secs(120)).await;
    let published_s = started.elapsed().as_secs_f64();

    let b = base.clone();
    let l = log.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("every reading written", Duration::from_secs(240), || {
            let w = metric(&b, "millwright_influx_written_points_total");
            let d = metric(&b, "millwright_influx_dropped_points_total");
            assert_eq!(
                d,
                0.0,
                "the outbox dropped points; log:\n{}",
                log_tail(&l, 30)
            );
            w >= N as f64
        });
    })
    .await
    .unwrap();
    let end_to_end_s = started.elapsed().as_secs_f64();
    eprintln!(
        "burst: {N} readings published in {published_s:.1} s, all written after {end_to_end_s:.1} s ({:.0} readings/s)",
        N as f64 / end_to_end_s
    );

    let db = stored_once(
        &vm,
        &run,
        N as f64,
        Duration::from_secs(30),
        Duration::from_millis(500),
    )
    .await;
    let (missing, dups) = compare(&db, &run, t0_ms, 0..N);
    assert!(
        missing.is_empty(),
        "{} of {N} readings missing (first: {:?}); log:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        log_tail(&log, 30)
    );
    assert_eq!(
        metric(&base, "millwright_mqtt_rejected_total"),
        0.0,
        "no message rejected"
    );
    eprintln!("burst: duplicates in the database: {dups}");
}
