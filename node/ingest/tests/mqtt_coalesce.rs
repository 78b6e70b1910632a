//! One-reading messages through the MQTT source with acks after storage, against the real
//! Mosquitto (`MILLWRIGHT_TEST_MQTT`): the messages of one network read go on the reading bus
//! as one delivery (one token), every reading arrives once and in order, and a message is
//! acknowledged only once its delivery's token is fired — the broker redelivers the messages
//! of unfired tokens to the next session, and none of the fired ones. The acks go out many per
//! socket write.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{broker, probe_until_subscribed, publish, spawn_after_storage};

use millwright_ingest::mqtt::{Delivery, MqttConfig, MqttSource};
use std::time::{Duration, Instant};

fn config(host: &str, port: u16, id: &str, root: &str) -> MqttConfig {
    toml::from_str(&format!(
        "host = \"{host}\"\nport = {port}\nclient_id = \"{id}\"\nclean_session = false\n\
         reconnect_min_ms = 100\nreconnect_max_ms = 200\n[[subscriptions]]\n\
         topic = \"{root}/{{asset}}/{{signal}}\"\nqos = 1\n"
    ))
    .unwrap()
}

/// Receives deliveries until `n` readings came, firing each delivery's token as it arrives
/// while `fire` says so; returns (deliveries and the most readings in one, readings fired,
/// unfired deliveries, values).
async fn take(
    rx: &mut millwright_core::budget::Receiver<Delivery>,
    n: usize,
    fire_until: usize,
) -> ((usize, usize), usize, Vec<Delivery>, Vec<u32>) {
    let mut deliveries = 0;
    let mut largest = 0;
    let mut fired = 0;
    let mut held = Vec::new();
    let mut values = Vec::new();
    let t = Instant::now();
    while values.len() < n {
        let left = Duration::from_secs(30).saturating_sub(t.elapsed());
        let Ok(d) = tokio::time::timeout(left, rx.recv()).await else {
            panic!("timed out after {} of {n} readings", values.len());
        };
        let d = d.expect("bus open");
        deliveries += 1;
        largest = largest.max(d.batch.len());
        values.extend(d.batch.iter().map(|r| r.value as u32));
        assert!(d.ack.is_some(), "every delivery carries its token");
        if fired < fire_until {
            fired += d.batch.len();
            if let Some(a) = d.ack {
                a.done();
            }
        } else {
            held.push(d);
        }
    }
    ((deliveries, largest), fired, held, values)
}

async fn stop(src: MqttSource) {
    src.task.abort();
    let _ = src.task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reading_messages_coalesce_and_are_acked_only_after_storage() {
    let (host, port) = broker();
    let root = format!("coalesce{}", std::process::id());
    let id = format!("{root}-node");
    let cfg = config(&host, port, &id, &root);
    const N: u32 = 3000;

    // The persistent session with its subscription is in place once a probe came through.
    let (src, mut rx) = spawn_after_storage(&cfg);
    probe_until_subscribed(&host, port, &root, &mut rx).await;
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        d.ack.expect("a token").done();
    }
    stop(src).await;

    // The messages wait at the broker for the node, which then gets them in bursts of the
    // broker's in-flight window, or all at once (Mosquitto, for messages queued offline).
    publish(&host, port, &root, 0..N).await;
    let (src, mut rx) = spawn_after_storage(&cfg);
    let half = N as usize / 2;
    let ((deliveries, largest), fired, held, values) = take(&mut rx, half, half).await;
    assert_eq!(
        values,
        (0..values.len() as u32).collect::<Vec<_>>(),
        "once, in order"
    );
    assert!(held.is_empty());
    // The messages of one network read (rumqttc decodes up to 10 packets per read) go on as
    // one delivery: about 9 here on an idle machine. How many one read holds depends on how
    // fast the broker writes (on a loaded machine it may trickle), so the check is that reads
    // of several messages were coalesced at all: one delivery per message never gives this.
    assert!(
        largest >= 5,
        "{deliveries} deliveries for {fired} one-reading messages, at most {largest} in one: \
         not coalesced"
    );
    eprintln!("{deliveries} deliveries for {fired} messages, at most {largest} in one");
    // Whatever comes now is held: its messages stay unacknowledged.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut unfired = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        unfired.push(d);
    }
    // The acks of the stored messages went out in bunches, not one socket write each (the
    // last ones may still be on their way).
    let t = std::time::Instant::now();
    while src
        .status
        .acks_sent
        .load(std::sync::atomic::Ordering::Relaxed)
        < fired as u64
        && t.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Time for the broker to read them before the session ends (one packet per loop turn).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acks = src
        .status
        .acks_sent
        .load(std::sync::atomic::Ordering::Relaxed);
    let writes = src
        .status
        .ack_writes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        acks, fired as u64,
        "every stored message acknowledged, no other"
    );
    // Typically 1,500 acks in 40-70 writes; under load fewer per write (they go out as the
    // storage watermark moves), but one write per ack means they were not bunched at all.
    eprintln!("{acks} acks in {writes} socket writes");
    assert!(
        writes * 2 < acks,
        "{acks} acks in {writes} socket writes: not written in bunches"
    );
    let got = src.status.readings();
    assert_eq!(
        got,
        (fired + unfired.iter().map(|d| d.batch.len()).sum::<usize>()) as u64
    );
    // (Mosquitto sends a session's queued messages at once on reconnect, beyond its
    // in-flight window: the held ones are unacknowledged, not unsent.)
    stop(src).await;
    drop(unfired);

    // The next session, same client id: exactly the messages whose tokens were not fired
    // come again (and the rest of the queue), none of the acknowledged ones.
    let (src, mut rx) = spawn_after_storage(&cfg);
    let (_, _, _, again) = take(&mut rx, N as usize - fired, N as usize).await;
    assert_eq!(
        again,
        (fired as u32..N).collect::<Vec<_>>(),
        "the unacknowledged messages come again, the acknowledged ones do not"
    );
    let extra = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
    assert!(extra.is_err(), "more came than was unacknowledged");
    assert_eq!(src.status.rejected(), 0);
    stop(src).await;
}
