//! The egress check at connect time, against the real Mosquitto (`MILLWRIGHT_TEST_MQTT`): the
//! MQTT source asks the process's `ConnectCheck` before every (re)connect. A test check stands
//! in for DNS: the broker's address is on site at first, then "resolves" to 8.8.8.8. The source
//! connects, loses its session to another client with the same id, is refused on reconnect
//! (reported in its status, no socket opened: the client that took the session over is never
//! kicked back off), and connects again once the address is on site again — no crash, no
//! restart. The broker's name exists only in the test check: the source connects to the
//! address the check returned and never resolves the name again itself (which would be a
//! second, unchecked lookup); of several checked addresses it tries the next one when one
//! fails. Both protocol versions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::broker;

use millwright_core::egress::{first_public, ConnectCheck};
use millwright_ingest::mqtt::{AckMode, MqttConfig, MqttSource};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// "DNS" for the test: an address where nothing listens, then the broker's (a client must try
/// the next one), or 8.8.8.8 once `public` is set; refusals counted.
struct FlipCheck {
    dead: SocketAddr,
    broker: SocketAddr,
    public: AtomicBool,
    asked: AtomicU64,
    refused: AtomicU64,
}

impl ConnectCheck for FlipCheck {
    fn resolve_checked(
        &self,
        field: &str,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, String> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let addrs = if self.public.load(Ordering::SeqCst) {
            vec![SocketAddr::new("8.8.8.8".parse().unwrap(), port)]
        } else {
            vec![self.dead, self.broker]
        };
        match first_public(&addrs) {
            Some(a) => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                Err(format!(
                    "{field} ({host}:{port}) resolves to {}, a public address",
                    a.ip()
                ))
            }
            None => Ok(addrs),
        }
    }
}

async fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A name no resolver knows (RFC 6761): only the test check does.
const NAME: &str = "broker.millwright.invalid";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_to_an_address_turned_public_is_refused_before_any_socket() {
    // One after the other: the check is process-wide.
    case("3.1.1").await;
    case("5").await;
}

async fn case(protocol: &str) {
    let (host, port) = broker();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let check = Arc::new(FlipCheck {
        dead,
        broker: format!("{host}:{port}").parse().unwrap(),
        public: AtomicBool::new(false),
        asked: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    millwright_core::egress::install(check.clone());
    let id = format!("egress-{}-{protocol}", std::process::id());
    let cfg: MqttConfig = toml::from_str(&format!(
        "host = \"{NAME}\"\nport = {port}\nprotocol = \"{protocol}\"\nclient_id = \"{id}\"\n\
         reconnect_min_ms = 100\n\
         reconnect_max_ms = 200\n[[subscriptions]]\ntopic = \"egress-test/{{asset}}/{{signal}}\"\n"
    ))
    .unwrap();
    let budget = millwright_core::budget::ByteBudget::new("bus", 1 << 20);
    let (tx, _rx) = millwright_core::budget::channel(16, budget);
    let src = MqttSource::spawn(&cfg, tx, AckMode::OnReceipt).unwrap();
    let st = src.status.clone();
    wait("first connection", 20, || {
        st.connected.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        check.asked.load(Ordering::SeqCst) >= 1,
        "connected without asking"
    );
    assert_eq!(st.connections.load(Ordering::SeqCst), 1);

    // The name now resolves off site; another client takes the session over (same id), so the
    // source has to reconnect.
    check.public.store(true, Ordering::SeqCst);
    let mut o = MqttOptions::new(id.clone(), host.clone(), port);
    o.set_keep_alive(Duration::from_secs(5));
    let (_thief, mut el) = AsyncClient::new(o, 10);
    let thief_lost = Arc::new(AtomicBool::new(false));
    let thief_up = Arc::new(AtomicBool::new(false));
    let (lost, up) = (thief_lost.clone(), thief_up.clone());
    let thief = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => up.store(true, Ordering::SeqCst),
                Ok(_) => {}
                Err(_) => {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    });
    wait("the session taken over", 20, || {
        thief_up.load(Ordering::SeqCst) && !st.connected.load(Ordering::SeqCst)
    })
    .await;
    wait("a refusal", 20, || {
        check.refused.load(Ordering::SeqCst) >= 3
    })
    .await;
    let err = st.last_error.lock().unwrap().clone().unwrap_or_default();
    assert!(
        err.contains("egress refused") && err.contains("8.8.8.8") && err.contains(NAME),
        "{err}"
    );
    // Refused attempts open no socket: the source never took the session back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !thief_lost.load(Ordering::SeqCst),
        "the source connected anyway"
    );
    assert_eq!(st.connections.load(Ordering::SeqCst), 1);
    assert!(!st.connected.load(Ordering::SeqCst));
    assert!(st.connection_errors.load(Ordering::SeqCst) >= 3);
    assert!(!src.task.is_finished(), "the source gave up");

    // On site again: the next attempt connects (and takes the session back).
    check.public.store(false, Ordering::SeqCst);
    wait("reconnection", 20, || st.connected.load(Ordering::SeqCst)).await;
    assert_eq!(st.connections.load(Ordering::SeqCst), 2);
    wait("the other client kicked", 20, || {
        thief_lost.load(Ordering::SeqCst)
    })
    .await;
    thief.abort();
    src.task.abort();
}
