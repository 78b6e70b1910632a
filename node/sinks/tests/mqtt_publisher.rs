//! The MQTT publisher against the real Mosquitto (`MILLWRIGHT_TEST_MQTT=host:port`, set by
//! `make test`; the test fails without it): status `online` / `offline` (clean close and last
//! will), publications with their counters, request topics forwarded, a full queue counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_sinks::mqtt::{MqttPublisher, MqttRequest, PublisherConfig};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn broker() -> (String, u16) {
    let hp = std::env::var("MILLWRIGHT_TEST_MQTT").expect(
        "MILLWRIGHT_TEST_MQTT (host:port of a Mosquitto) is not set: run `make test`, or start \
         mosquitto and export MILLWRIGHT_TEST_MQTT=127.0.0.1:<port>",
    );
    let (h, p) = hp
        .rsplit_once(':')
        .expect("MILLWRIGHT_TEST_MQTT is host:port");
    (h.to_string(), p.parse().expect("MILLWRIGHT_TEST_MQTT port"))
}

fn unique(prefix: &str) -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}x{}", std::process::id(), ns % 1_000_000_000)
}

/// A plain client that subscribes to `filter` and hands every message to the returned channel.
async fn listener(filter: &str) -> (AsyncClient, mpsc::UnboundedReceiver<(String, String, bool)>) {
    let (host, port) = broker();
    let (c, mut el) = AsyncClient::new(MqttOptions::new(unique("lsn-"), host, port), 100);
    c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = sub_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((
                        p.topic.clone(),
                        String::from_utf8_lossy(&p.payload).to_string(),
                        p.retain,
                    ));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), sub_rx.recv())
        .await
        .expect("listener subscribed");
    (c, rx)
}

/// The next message on `topic` (others are skipped), within 10 s.
async fn next_on(rx: &mut mpsc::UnboundedReceiver<(String, String, bool)>, topic: &str) -> String {
    let t0 = Instant::now();
    loop {
        let left = Duration::from_secs(10).saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((t, p, _))) if t == topic => return p,
            Ok(Some(_)) => {}
            _ => panic!("nothing on {topic} within 10 s"),
        }
    }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn publisher(prefix: &str, port: u16) -> (MqttPublisher, std::sync::mpsc::Receiver<MqttRequest>) {
    let (host, _) = broker();
    let mut opts = MqttOptions::new(unique("pub-"), host, port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (tx, rx) = std::sync::mpsc::sync_channel(8);
    let p = MqttPublisher::spawn(
        opts,
        PublisherConfig {
            prefix: prefix.to_string(),
            request_topics: vec!["reports/request".into(), "ask".into()],
            queue: 64,
        },
        Some(tx),
    );
    (p, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_counts_forwards_requests_and_keeps_the_status() {
    let (_, port) = broker();
    let root = unique("mwpub");
    let prefix = format!("{root}/site"); // the missing `/` is added
    let (lc, mut msgs) = listener(&format!("{root}/#")).await;
    let (p, requests) = publisher(&prefix, port);
    assert_eq!(p.prefix(), format!("{prefix}/"));
    let status_topic = format!("{prefix}/status");
    assert_eq!(next_on(&mut msgs, &status_topic).await, "online");

    // A publication arrives, and is counted as published and then acknowledged.
    assert!(p.publish("alerts/P-101", r#"{"asset":"P-101"}"#));
    assert_eq!(
        next_on(&mut msgs, &format!("{prefix}/alerts/P-101")).await,
        r#"{"asset":"P-101"}"#
    );
    let st = p.status().clone();
    wait_until("the broker acknowledged", || {
        st.acked.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert_eq!(st.published.load(Ordering::Relaxed), 1);
    assert!(st.connected.load(Ordering::Relaxed));

    // An invalid topic is counted as dropped, not sent.
    assert!(!p.publish("alerts/#", "x"));
    assert_eq!(st.dropped.load(Ordering::Relaxed), 1);
    assert_eq!(st.published.load(Ordering::Relaxed), 1);

    // Requests on the subscribed topics are forwarded with their topic; others are not.
    for (t, body) in [
        ("reports/request", "P-101"),
        ("alerts/other", "no"),
        ("ask", "why is P-101 hot?"),
    ] {
        lc.publish(format!("{prefix}/{t}"), QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }
    let got: Vec<MqttRequest> = (0..2)
        .map(|_| requests.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            MqttRequest {
                topic_suffix: "reports/request".into(),
                payload: "P-101".into()
            },
            MqttRequest {
                topic_suffix: "ask".into(),
                payload: "why is P-101 hot?".into()
            },
        ]
    );
    // The event loop counts a request just after handing it over: wait for the count.
    wait_until("both requests counted", || {
        st.requests.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(st.requests.load(Ordering::Relaxed), 2);

    // A clean close publishes `offline` (retained) and later publications are dropped.
    p.close(Duration::from_secs(5)).await;
    assert_eq!(next_on(&mut msgs, &status_topic).await, "offline");
    assert!(!p.publish("alerts/P-101", "late"));
    assert_eq!(st.dropped.load(Ordering::Relaxed), 2);

    // The retained status is what a newcomer sees.
    let (_lc2, mut msgs2) = listener(&status_topic).await;
    assert_eq!(next_on(&mut msgs2, &status_topic).await, "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_will_says_offline_when_the_publisher_dies() {
    let (_, port) = broker();
    let prefix = format!("{}/site/", unique("mwwill"));
    let status_topic = format!("{prefix}status");
    let (_lc, mut msgs) = listener(&status_topic).await;
    let (p, _requests) = publisher(&prefix, port);
    assert_eq!(next_on(&mut msgs, &status_topic).await, "online");
    p.abort();
    assert_eq!(next_on(&mut msgs, &status_topic).await, "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_counted_while_the_broker_is_away() {
    // A port nobody listens on: the client cannot connect, so its queue fills up.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = MqttOptions::new(unique("away-"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let p = MqttPublisher::spawn(
        opts,
        PublisherConfig {
            prefix: "mw/away/".into(),
            request_topics: vec![],
            queue: 4,
        },
        None,
    );
    let queued = (0..10)
        .filter(|i| p.publish("alerts/x", format!("{i}")))
        .count();
    let st = p.status();
    assert_eq!(queued, 4, "the queue holds 4");
    assert_eq!(st.published.load(Ordering::Relaxed), 4);
    assert_eq!(st.queue_full.load(Ordering::Relaxed), 6);
    assert_eq!(st.dropped.load(Ordering::Relaxed), 0);
    assert!(!st.connected.load(Ordering::Relaxed));
    p.abort();
}
