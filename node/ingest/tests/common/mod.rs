//! Helpers shared by this crate's integration tests against the real services.
#![allow(clippy::expect_used, clippy::unwrap_used, dead_code)]

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;

/// The test Mosquitto's (host, port) from `MILLWRIGHT_TEST_MQTT` (set by `make test`).
pub fn broker() -> (String, u16) {
    let hp = std::env::var("MILLWRIGHT_TEST_MQTT").expect(
        "MILLWRIGHT_TEST_MQTT (host:port of a Mosquitto) is not set: run `make test`, or start \
         mosquitto and export MILLWRIGHT_TEST_MQTT=127.0.0.1:<port>",
    );
    let (h, p) = hp.rsplit_once(':').expect("host:port");
    (h.to_string(), p.parse().expect("port"))
}

/// Publishes `values` as one-reading JSON messages (QoS 1) and waits for every PUBACK.
pub async fn publish(host: &str, port: u16, root: &str, values: std::ops::Range<u32>) {
    let mut o = MqttOptions::new(format!("{root}-pub"), host, port);
    o.set_keep_alive(Duration::from_secs(10)).set_inflight(200);
    let (client, mut el) = AsyncClient::new(o, 256);
    let n = values.len();
    let topic = format!("{root}/A1/s1");
    let sender = tokio::spawn(async move {
        for v in values {
            let p = format!(
                r#"{{"value":{v},"ts_ms":{}}}"#,
                1_700_000_000_000u64 + u64::from(v)
            );
            client
                .publish(topic.clone(), QoS::AtLeastOnce, false, p)
                .await
                .unwrap();
        }
        client
    });
    let mut acked = 0;
    while acked < n {
        if let Event::Incoming(Packet::PubAck(_)) = el.poll().await.unwrap() {
            acked += 1;
        }
    }
    let client = sender.await.unwrap();
    let _ = client.try_disconnect();
    while !matches!(
        el.poll().await,
        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_)
    ) {}
}

/// Value of the readings [`probe_until_subscribed`] publishes.
pub const PROBE: u32 = 1_000_000;

/// The MQTT source with acks after storage, and the receiving end of its reading bus.
pub fn spawn_after_storage(
    cfg: &millwright_ingest::mqtt::MqttConfig,
) -> (
    millwright_ingest::mqtt::MqttSource,
    millwright_core::budget::Receiver<millwright_ingest::mqtt::Delivery>,
) {
    let budget = millwright_core::budget::ByteBudget::new("bus", 64 << 20);
    let (tx, rx) = millwright_core::budget::channel(64, budget);
    let src = millwright_ingest::mqtt::MqttSource::spawn(
        cfg,
        tx,
        millwright_ingest::mqtt::AckMode::AfterStorage,
    )
    .unwrap();
    (src, rx)
}

/// Publishes probe messages to `root/A1/s1` until one comes through `rx` (the persistent
/// session and its subscription are in place), and fires its token, so it is never
/// redelivered.
pub async fn probe_until_subscribed(
    host: &str,
    port: u16,
    root: &str,
    rx: &mut millwright_core::budget::Receiver<millwright_ingest::mqtt::Delivery>,
) {
    let t = std::time::Instant::now();
    loop {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the subscription never took effect"
        );
        publish(host, port, root, PROBE..PROBE + 1).await;
        if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            assert!(d.batch.iter().all(|r| r.value as u32 == PROBE));
            d.ack.expect("a token").done();
            return;
        }
    }
}
