//! Unit tests of the outbox against real files in a temporary folder: order, delivery and
//! cursor, restart with a torn tail, the budget policies and the replay throttle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::segment;
use super::{Outbox, OutboxConfig, OutboxPolicy};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mw-outbox-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn cfg(dir: &PathBuf) -> OutboxConfig {
    let mut c = OutboxConfig::in_dir(dir);
    c.replay_points_per_s = 0;
    c
}

fn body(i: usize) -> String {
    format!("m v={i} {i}\n")
}

fn ids(s: &str) -> Vec<usize> {
    s.lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn records_come_back_in_order_and_leave_once_delivered() {
    let d = tmp("order");
    let mut o = Outbox::open(&d, cfg(&d)).unwrap();
    for i in 0..10 {
        o.append(body(i).as_bytes(), 1, 1).unwrap();
    }
    o.sync().unwrap();
    assert_eq!(o.pending_points(), 10);
    let t = Instant::now();
    let r = o.next_request(4, t).unwrap().unwrap();
    assert_eq!(ids(&r.body), vec![0, 1, 2, 3]);
    assert!(
        o.next_request(4, t).unwrap().is_none(),
        "one request at a time"
    );
    o.on_retry(&r);
    let r = o.next_request(4, t).unwrap().unwrap();
    assert_eq!(
        ids(&r.body),
        vec![0, 1, 2, 3],
        "a retry sends the same records"
    );
    o.on_ok(&r);
    assert_eq!(o.pending_points(), 6);
    drop(o);
    // A restart resumes after what was delivered.
    let mut o = Outbox::open(&d, cfg(&d)).unwrap();
    assert_eq!(o.pending_points(), 6);
    assert_eq!(o.counters().torn_records, 0);
    let r = o.next_request(100, t).unwrap().unwrap();
    assert_eq!(ids(&r.body), vec![4, 5, 6, 7, 8, 9]);
    o.on_ok(&r);
    assert_eq!(o.pending_points(), 0);
    assert_eq!(o.oldest_ms(), None);
}

#[test]
fn a_torn_tail_is_cut_off_and_counted_and_the_rest_survives() {
    let d = tmp("torn");
    let mut o = Outbox::open(&d, cfg(&d)).unwrap();
    for i in 0..3 {
        o.append(body(i).as_bytes(), 1, 1).unwrap();
    }
    o.sync().unwrap();
    drop(o);
    let seg = *segment::list_segments(&d).unwrap().first().unwrap();
    let p = segment::seg_path(&d, seg);
    // Half a record at the end (as a crash in the middle of a write leaves it).
    let mut rec = Vec::new();
    segment::encode(&mut rec, body(3).as_bytes(), 1, 1);
    let mut data = std::fs::read(&p).unwrap();
    let whole = data.len() as u64;
    data.extend_from_slice(&rec[..rec.len() / 2]);
    std::fs::write(&p, &data).unwrap();
    let mut o = Outbox::open(&d, cfg(&d)).unwrap();
    assert_eq!(o.counters().torn_records, 1);
    assert_eq!(o.pending_points(), 3);
    assert_eq!(
        std::fs::metadata(&p).unwrap().len(),
        whole,
        "cut back to the last whole record"
    );
    let r = o.next_request(100, Instant::now()).unwrap().unwrap();
    assert_eq!(ids(&r.body), vec![0, 1, 2]);
    drop(o);
    // A flipped byte inside a record fails its checksum: that record and what follows go.
    let mut data = std::fs::read(&p).unwrap();
    let last = data.len() - 3;
    data[last] ^= 0x55;
    std::fs::write(&p, &data).unwrap();
    let o = Outbox::open(&d, cfg(&d)).unwrap();
    assert_eq!(o.counters().torn_records, 1);
    assert_eq!(o.pending_points(), 2);
}

#[test]
fn drop_oldest_drops_exactly_the_oldest_and_keeps_the_newest() {
    let d = tmp("drop");
    let mut c = cfg(&d);
    c.policy = OutboxPolicy::DropOldest;
    c.max_bytes = 64 * 1024;
    let mut o = Outbox::open(&d, c).unwrap();
    let big = "x".repeat(10_000);
    for _ in 0..20 {
        o.append(big.as_bytes(), 1, 1).unwrap();
        o.enforce(2);
    }
    let kept = o.pending_points();
    assert!(o.pending_bytes() <= 64 * 1024);
    assert_eq!(
        o.counters().dropped_points + kept,
        20,
        "every point kept or counted"
    );
    assert_eq!(kept, 6);
    // Block-ingest never drops; it only says full.
    let d2 = tmp("block");
    let mut c = cfg(&d2);
    c.max_bytes = 64 * 1024;
    let mut o = Outbox::open(&d2, c).unwrap();
    for _ in 0..20 {
        o.append(big.as_bytes(), 1, 1).unwrap();
        o.enforce(2);
    }
    assert!(o.is_full());
    assert_eq!((o.pending_points(), o.counters().dropped_points), (20, 0));
}

#[test]
fn too_old_records_are_dropped_and_counted() {
    let d = tmp("age");
    let mut c = cfg(&d);
    c.max_age_s = 10;
    let mut o = Outbox::open(&d, c).unwrap();
    o.append(body(0).as_bytes(), 1, 1_000).unwrap();
    o.append(body(1).as_bytes(), 1, 20_000).unwrap();
    o.append(body(2).as_bytes(), 1, 25_000).unwrap();
    assert_eq!(o.enforce(21_000), 1);
    assert_eq!(o.counters().dropped_age_points, 1);
    let r = o.next_request(10, Instant::now()).unwrap().unwrap();
    assert_eq!(ids(&r.body), vec![1, 2]);
}

#[test]
fn after_an_outage_live_data_goes_first_and_the_backlog_is_throttled() {
    let d = tmp("replay");
    let mut c = cfg(&d);
    c.replay_points_per_s = 10;
    let mut o = Outbox::open(&d, c).unwrap();
    for i in 0..30 {
        o.append(body(i).as_bytes(), 1, 1).unwrap();
    }
    o.on_recovered();
    o.append(body(100).as_bytes(), 1, 2).unwrap();
    let t = Instant::now();
    let r = o.next_request(10, t).unwrap().unwrap();
    assert!(!r.replay);
    assert_eq!(ids(&r.body), vec![100], "live first");
    o.on_ok(&r);
    let r = o.next_request(10, t).unwrap().unwrap();
    assert!(r.replay);
    assert_eq!(ids(&r.body), (0..10).collect::<Vec<_>>());
    o.on_ok(&r);
    assert!(
        o.next_request(10, t).unwrap().is_none(),
        "the replay budget is spent"
    );
    let wait = o.replay_wait(10).unwrap();
    assert!(
        wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    let r = o
        .next_request(10, t + Duration::from_secs(1))
        .unwrap()
        .unwrap();
    assert_eq!(ids(&r.body), (10..20).collect::<Vec<_>>());
    o.on_ok(&r);
    assert_eq!(o.counters().replayed_points, 20);
    drop(o);
    // The cursor moved only past the delivered prefix: a restart resends from 20 (the live
    // point 100, delivered out of order, comes again: a harmless duplicate).
    let o = Outbox::open(&d, cfg(&d)).unwrap();
    assert_eq!(o.pending_points(), 11);
}

#[test]
fn segments_rotate_and_delivered_ones_are_deleted() {
    let d = tmp("rotate");
    let mut c = cfg(&d);
    c.segment_bytes = 4096;
    let mut o = Outbox::open(&d, c).unwrap();
    let b = "y".repeat(1000);
    for _ in 0..20 {
        o.append(b.as_bytes(), 1, 1).unwrap();
    }
    o.sync().unwrap();
    let before = segment::list_segments(&d).unwrap().len();
    assert!(before >= 5, "{before}");
    let r = o.next_request(100, Instant::now()).unwrap().unwrap();
    assert_eq!(r.points, 20);
    o.on_ok(&r);
    assert_eq!(
        segment::list_segments(&d).unwrap().len(),
        1,
        "only the active segment is left"
    );
}
