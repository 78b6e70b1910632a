//! The outbox's byte budget full under `drop_oldest` (the database unreachable): exactly the
//! readings the node counted as dropped are missing from the database once it is back, the
//! newest are present, and every value that arrived is right.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod durable_common;

use durable_common::*;
use millwright_e2e::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_loses_exactly_the_counted_readings_and_keeps_the_newest() {
    const PER_MSG: u64 = 10;
    // Enough that the 64 KiB budget fills however well the batches compress (records are
    // gzip bodies, so bytes per reading depend on how many readings one record gathers).
    const MSGS: u64 = 1500;
    const N: u64 = PER_MSG * MSGS;
    // Not started yet: the database is down while the data comes.
    let mut vm = OwnVictoria::new();
    let run = unique("budget");
    let dir = test_dir("mw-durable-budget-");
    let mport = free_port();
    let cfg = write_config(
        &dir,
        &run,
        &vm.url,
        mport,
        &unique("node-"),
        "",
        "max_bytes = 65536\npolicy = \"drop_oldest\"",
    );
    let log = dir.join("node.log");
    let _node = run_checked_node(&cfg, &log);
    let base = format!("http://127.0.0.1:{mport}");
    let b = base.clone();
    tokio::task::spawn_blocking(move || wait_connected(&b))
        .await
        .unwrap();

    let t0_ms = now_ms() - 600_000;
    let publisher = Publisher::connect("budget-pub-");
    for m in 0..MSGS {
        let (_, (topic, payload)) = stream_message(&run, t0_ms, m, PER_MSG);
        publisher.publish(topic, payload).await;
    }
    publisher.wait_acked(MSGS, Duration::from_secs(30)).await;
    let b = base.clone();
    let (kept, dropped) = tokio::task::spawn_blocking(move || {
        wait_for(
            "every reading in the outbox or dropped",
            Duration::from_secs(30),
            || {
                metric(&b, "millwright_influx_backlog_points")
                    + metric(&b, "millwright_influx_dropped_points_total")
                    == N as f64
            },
        );
        (
            metric(&b, "millwright_influx_backlog_points"),
            metric(&b, "millwright_influx_dropped_points_total"),
        )
    })
    .await
    .unwrap();
    assert!(dropped > 0.0, "the budget never filled");
    assert!(kept > 0.0 && kept < N as f64, "kept {kept} of {N}");

    vm.start();
    let b = base.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the kept readings written", Duration::from_secs(60), || {
            metric(&b, "millwright_influx_written_points_total") >= kept
                && metric(&b, "millwright_influx_backlog_points") == 0.0
        });
    })
    .await
    .unwrap();
    assert_eq!(
        metric(&base, "millwright_influx_dropped_points_total"),
        dropped,
        "nothing more dropped once the database was back"
    );
    let db = stored_once(
        &vm.url,
        &run,
        kept,
        Duration::from_secs(20),
        Duration::from_millis(250),
    )
    .await;
    let (missing, dups) = compare(&db, &run, t0_ms, 0..N);
    assert_eq!(
        missing.len() as f64,
        dropped,
        "missing readings vs the dropped counter; log:\n{}",
        log_tail(&log, 20)
    );
    assert_eq!(dups, 0);
    // The newest message's readings are all there.
    let (newest, _) = stream_message(&run, t0_ms, MSGS - 1, PER_MSG);
    for k in newest {
        assert!(!missing.contains(&k), "newest reading {k} missing");
    }
    eprintln!("budget: {N} published, {kept} kept, {dropped} dropped and missing");
}
