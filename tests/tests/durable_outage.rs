//! VictoriaMetrics stopped for 60 s during a 10,000 readings/s stream, then started again:
//! every reading arrives with its value, the outbox held the data meanwhile and drains after,
//! throttled to `replay_points_per_s` behind the live data. Runs its own VictoriaMetrics so the
//! shared one keeps running.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod durable_common;

use durable_common::*;
use millwright_e2e::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_second_database_outage_loses_nothing() {
    const PER_MSG: u64 = 100;
    const RATE_MSGS: u64 = 100; // 10,000 readings/s
    const BEFORE_S: u64 = 5;
    const OUTAGE_S: u64 = 60;
    const AFTER_S: u64 = 10;
    const MSGS: u64 = RATE_MSGS * (BEFORE_S + OUTAGE_S + AFTER_S);
    const N: u64 = PER_MSG * MSGS;
    const REPLAY: u64 = 100_000;
    let mut vm = OwnVictoria::new();
    vm.start();
    let run = unique("outage");
    let dir = test_dir("mw-durable-outage-");
    let mport = free_port();
    let cfg = write_config(
        &dir,
        &run,
        &vm.url,
        mport,
        &unique("node-"),
        "",
        &format!("replay_points_per_s = {REPLAY}"),
    );
    let log = dir.join("node.log");
    let _node = run_checked_node(&cfg, &log);
    let base = format!("http://127.0.0.1:{mport}");
    let b = base.clone();
    tokio::task::spawn_blocking(move || wait_connected(&b))
        .await
        .unwrap();

    let t0_ms = now_ms() - 600_000;
    let publisher = Publisher::connect("outage-pub-");
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE_MSGS));
    let started = Instant::now();
    let mut peak_backlog = 0.0f64;
    let mut restarted_at = None;
    for m in 0..MSGS {
        tick.tick().await;
        if m == RATE_MSGS * BEFORE_S {
            vm.stop();
            eprintln!(
                "outage: VictoriaMetrics stopped at {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        if m == RATE_MSGS * (BEFORE_S + OUTAGE_S) {
            let b = base.clone();
            peak_backlog =
                tokio::task::spawn_blocking(move || metric(&b, "millwright_influx_backlog_points"))
                    .await
                    .unwrap();
            vm.start();
            restarted_at = Some(Instant::now());
            eprintln!(
                "outage: VictoriaMetrics started again at {:.1} s; outbox held {peak_backlog} points",
                started.elapsed().as_secs_f64()
            );
        }
        let (_, (topic, payload)) = stream_message(&run, t0_ms, m, PER_MSG);
        publisher.publish(topic, payload).await;
    }
    publisher.wait_acked(MSGS, Duration::from_secs(60)).await;
    assert!(
        peak_backlog >= (OUTAGE_S * RATE_MSGS * PER_MSG) as f64 * 0.8,
        "the outbox held {peak_backlog} points during the outage; log:\n{}",
        log_tail(&log, 20)
    );

    // The outbox drains.
    let b = base.clone();
    let l = log.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the outbox to drain", Duration::from_secs(180), || {
            assert_eq!(
                metric(&b, "millwright_influx_dropped_points_total"),
                0.0,
                "points dropped; log:\n{}",
                log_tail(&l, 20)
            );
            metric(&b, "millwright_influx_written_points_total") >= N as f64
                && metric(&b, "millwright_influx_backlog_points") == 0.0
        });
    })
    .await
    .unwrap();
    let drained_s = restarted_at.unwrap().elapsed().as_secs_f64();
    eprintln!("outage: drained {drained_s:.1} s after the restart");
    // Throttled: the backlog cannot have gone faster than the replay rate allows (the first
    // second's worth of budget is available at once).
    let min_s = peak_backlog / REPLAY as f64 - 1.0;
    assert!(
        drained_s >= min_s,
        "the backlog of {peak_backlog} points drained in {drained_s:.1} s, faster than {REPLAY}/s"
    );

    let db = stored_once(
        &vm.url,
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
    eprintln!("outage: all {N} readings stored; duplicates: {dups}");
}
