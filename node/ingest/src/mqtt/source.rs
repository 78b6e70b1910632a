//! The MQTT client task: connects, subscribes, decodes, and hands batches to the reading bus.
//!
//! The task drives rumqttc's event loop itself and never blocks it: subscriptions are queued
//! with `try_subscribe_many`, and the only await besides the network is the bounded reading
//! bus (back-pressure: when the node cannot keep up, the broker buffers, nothing is dropped).
//! After any connection failure it waits with exponential back-off and reconnects; every new
//! connection re-subscribes, so ingest resumes after a broker restart without a node restart.

use super::codec::sparkplug::Outgoing;
use super::codec::Decoder;
use super::config::{MqttConfig, MqttProtocol};
use super::topic::TopicPattern;
use super::watch::{self, SubWatch};
use crate::metrics::{RejectReason, SourceCounters};
use millwright_core::Batch;
use millwright_mqtt::Backoff;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Why the MQTT source could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttSetupError {
    /// A subscription's topic pattern is invalid.
    #[error(transparent)]
    Pattern(#[from] super::topic::PatternError),
    /// The client options could not be built (a TLS file could not be read).
    #[error(transparent)]
    Connect(#[from] millwright_mqtt::ConnectError),
}

/// Live state of one subscription.
#[derive(Debug)]
pub struct SubscriptionStatus {
    /// The configured topic pattern.
    pub topic: String,
    /// Counters (messages, readings, rejects by reason).
    pub counters: SourceCounters,
    /// Silence and SUBACK state (`watch.rs`).
    pub watch: SubWatch,
}

impl SubscriptionStatus {
    /// Fresh status of the subscription to `topic`.
    pub fn new(topic: &str, watch: SubWatch) -> Self {
        Self {
            topic: topic.to_string(),
            counters: SourceCounters::default(),
            watch,
        }
    }
}

/// Live state of the MQTT source, shared with health reporting.
#[derive(Debug, Default)]
pub struct SourceStatus {
    /// True while connected to the broker.
    pub connected: AtomicBool,
    /// Successful connections (1 after the first connect; more after reconnects).
    pub connections: AtomicU64,
    /// Connection failures and drops.
    pub connection_errors: AtomicU64,
    /// Per subscription, in config order.
    pub subscriptions: Vec<SubscriptionStatus>,
    /// Messages whose topic matched no subscription.
    pub unknown_topic: SourceCounters,
    /// Last connection error, for the status view.
    pub last_error: Mutex<Option<String>>,
}

impl SourceStatus {
    /// Readings produced over all subscriptions.
    pub fn readings(&self) -> u64 {
        self.subscriptions
            .iter()
            .map(|s| s.counters.readings.load(Ordering::Relaxed))
            .sum()
    }
    /// Rejected messages over all subscriptions, unknown topics included.
    pub fn rejected(&self) -> u64 {
        self.subscriptions
            .iter()
            .map(|s| s.counters.rejected_total())
            .sum::<u64>()
            + self.unknown_topic.rejected_total()
    }
}

struct Sub {
    pattern: TopicPattern,
    decoder: Decoder,
    log_gate: LogGate,
}

/// At most one log line per `LOG_EVERY` per subscription; suppressed lines are counted.
struct LogGate {
    last: Option<Instant>,
    suppressed: u64,
}
const LOG_EVERY: Duration = Duration::from_secs(10);

impl LogGate {
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Decodes and routes messages; independent of the protocol version.
struct Router {
    subs: Vec<Sub>,
    status: Arc<SourceStatus>,
    unknown_gate: LogGate,
    tx: mpsc::Sender<Batch>,
    /// Messages the decoders asked to publish (Sparkplug B rebirth requests).
    outbox: Vec<Outgoing>,
}

impl Router {
    /// Handles one publish. Returns false when the reading bus is closed.
    async fn handle(&mut self, topic: &[u8], payload: &[u8]) -> bool {
        let now = millwright_core::time::now_ns();
        let topic = String::from_utf8_lossy(topic);
        #[cfg(feature = "fault-inject")]
        crate::fault::mqtt_message(&topic);
        let Some(i) = self
            .subs
            .iter()
            .position(|s| s.pattern.matches(&topic).is_some())
        else {
            self.status
                .unknown_topic
                .messages
                .fetch_add(1, Ordering::Relaxed);
            self.status.unknown_topic.reject(RejectReason::UnknownTopic);
            if let Some(sup) = self.unknown_gate.allow() {
                tracing::warn!(%topic, suppressed = sup, "mqtt message on a topic no subscription maps; ignored");
            }
            return true;
        };
        let sub = &mut self.subs[i];
        let counters = &self.status.subscriptions[i].counters;
        counters.messages.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let m = sub.pattern.matches(&topic).unwrap_or_default();
        let mut batch = Vec::new();
        let res = sub.decoder.decode(m, payload, now, &mut batch);
        counters.add(&sub.decoder.take_tally());
        self.outbox.extend(sub.decoder.take_outgoing());
        match res {
            Ok(n) => {
                counters.readings.fetch_add(n as u64, Ordering::Relaxed);
                if n > 0 && self.tx.send(batch).await.is_err() {
                    counters.reject(RejectReason::Dropped);
                    return false;
                }
            }
            Err(e) => {
                counters.reject(e.reason);
                if let Some(sup) = sub.log_gate.allow() {
                    tracing::warn!(
                        subscription = %self.status.subscriptions[i].topic,
                        %topic,
                        reason = e.reason.as_str(),
                        error = %e,
                        suppressed = sup,
                        "rejected mqtt payload"
                    );
                }
            }
        }
        true
    }
}

/// A running MQTT source.
pub struct MqttSource {
    /// Shared live status.
    pub status: Arc<SourceStatus>,
    /// The client task.
    pub task: JoinHandle<()>,
}

impl MqttSource {
    /// Starts the client task. Readings go to `tx` (bounded: back-pressure, never drops).
    pub fn spawn(cfg: &MqttConfig, tx: mpsc::Sender<Batch>) -> Result<Self, MqttSetupError> {
        let statuses = cfg.subscriptions.iter().map(|s| {
            SubscriptionStatus::new(
                &s.topic,
                SubWatch::new(s.expected_interval_s, s.silence_factor),
            )
        });
        let status = Arc::new(SourceStatus {
            subscriptions: statuses.collect(),
            ..Default::default()
        });
        Self::spawn_with(cfg, tx, status)
    }

    /// Starts the client task with an existing `status` (a restart after a panic keeps the
    /// counters); `status` must have been made for `cfg` ([`MqttSource::spawn`]).
    pub fn spawn_with(
        cfg: &MqttConfig,
        tx: mpsc::Sender<Batch>,
        status: Arc<SourceStatus>,
    ) -> Result<Self, MqttSetupError> {
        let mut subs = Vec::with_capacity(cfg.subscriptions.len());
        for s in &cfg.subscriptions {
            subs.push(Sub {
                pattern: TopicPattern::parse(&s.topic)?,
                decoder: Decoder::new(s.format, s.decode_defaults()),
                log_gate: LogGate {
                    last: None,
                    suppressed: 0,
                },
            });
        }
        status.connected.store(false, Ordering::Relaxed);
        let conn = cfg.connection();
        let router = Router {
            subs,
            status: status.clone(),
            unknown_gate: LogGate {
                last: None,
                suppressed: 0,
            },
            tx,
            outbox: Vec::new(),
        };
        let cfg = cfg.clone();
        let task = match cfg.protocol {
            MqttProtocol::V311 => {
                let mut opts = conn.v4_options()?;
                opts.set_clean_session(cfg.clean_session).set_inflight(100);
                tokio::spawn(run_v311(cfg, opts.into_inner(), router))
            }
            MqttProtocol::V5 => {
                let mut opts = conn.v5_options()?;
                opts.set_clean_start(cfg.clean_session);
                if !cfg.clean_session {
                    // Keep the session (and queued QoS 1 messages) for an hour of disconnection.
                    opts.set_session_expiry_interval(Some(3600));
                }
                tokio::spawn(run_v5(cfg, opts.into_inner(), router))
            }
        };
        Ok(Self { status, task })
    }
}

fn qos_v311(q: u8) -> rumqttc::QoS {
    if q == 0 {
        rumqttc::QoS::AtMostOnce
    } else {
        rumqttc::QoS::AtLeastOnce
    }
}

fn on_error(
    status: &SourceStatus,
    err: &dyn std::fmt::Display,
    host: &str,
    port: u16,
    delay: Duration,
) {
    let was = status.connected.swap(false, Ordering::Relaxed);
    status.connection_errors.fetch_add(1, Ordering::Relaxed);
    let text = err.to_string();
    let hint = millwright_mqtt::connect_error_hint(&text).unwrap_or("");
    if let Ok(mut g) = status.last_error.lock() {
        *g = Some(if hint.is_empty() {
            text
        } else {
            format!("{text} ({hint})")
        });
    }
    if was {
        tracing::warn!(broker = %format!("{host}:{port}"), error = %err, hint, "mqtt connection lost; reconnecting");
    } else {
        tracing::warn!(broker = %format!("{host}:{port}"), error = %err, hint, retry_in_ms = delay.as_millis() as u64, "mqtt connect failed");
    }
}

async fn run_v311(cfg: MqttConfig, opts: rumqttc::MqttOptions, mut router: Router) {
    use rumqttc::{AsyncClient, Event, Packet, SubscribeFilter};
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let filters: Vec<SubscribeFilter> = cfg
        .subscriptions
        .iter()
        .filter_map(|s| {
            TopicPattern::parse(&s.topic)
                .ok()
                .map(|p| SubscribeFilter::new(p.filter(), qos_v311(s.qos)))
        })
        .collect();
    let tracker = watch::Tracker::default();
    let sub = {
        let (c, f, t) = (client.clone(), filters.clone(), tracker.clone());
        move |i: usize| {
            watch::subscribe_with(&t, i, || match f.get(i) {
                Some(f) => c
                    .try_subscribe(f.path.clone(), f.qos)
                    .map_err(|e| e.to_string()),
                None => Err("no such subscription".into()),
            })
        }
    };
    let c = client.clone();
    let _watch = watch::spawn(
        router.status.clone(),
        tracker.clone(),
        watch::Actions {
            disconnect: Box::new(move || c.try_disconnect().is_ok()),
            subscribe: Box::new(sub.clone()),
        },
    );
    let mut backoff = Backoff::new(&cfg.connection());
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !router.handle(p.topic.as_bytes(), &p.payload).await {
                    return;
                }
                for o in router.outbox.drain(..) {
                    if let Err(e) =
                        client.try_publish(&o.topic, rumqttc::QoS::AtLeastOnce, false, o.payload)
                    {
                        tracing::warn!(topic = %o.topic, error = %e, "could not queue a sparkplug rebirth request");
                    } else {
                        tracing::info!(topic = %o.topic, "sparkplug rebirth requested");
                    }
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                router.status.connected.store(true, Ordering::Relaxed);
                router.status.connections.fetch_add(1, Ordering::Relaxed);
                backoff.reset();
                tracing::info!(broker = %format!("{}:{}", cfg.host, cfg.port), session_present = ack.session_present, "mqtt connected; subscribing");
                if let Ok(mut t) = tracker.lock() {
                    t.connected(ack.session_present);
                }
                for i in 0..filters.len() {
                    sub(i);
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Subscribe(pkid))) => {
                if let Ok(mut t) = tracker.lock() {
                    t.outgoing(pkid);
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|rc| matches!(rc, rumqttc::SubscribeReasonCode::Failure));
                if let Ok(mut t) = tracker.lock() {
                    t.suback(
                        ack.pkid,
                        refused.then(|| "Failure (0x80)".to_string()),
                        &router.status,
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                let d = backoff.next_delay();
                on_error(&router.status, &e, &cfg.host, cfg.port, d);
                tokio::time::sleep(d).await;
            }
        }
    }
}

async fn run_v5(cfg: MqttConfig, opts: rumqttc::v5::MqttOptions, mut router: Router) {
    use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event};
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let filters: Vec<Filter> = cfg
        .subscriptions
        .iter()
        .filter_map(|s| {
            TopicPattern::parse(&s.topic).ok().map(|p| {
                Filter::new(
                    p.filter(),
                    if s.qos == 0 {
                        QoS::AtMostOnce
                    } else {
                        QoS::AtLeastOnce
                    },
                )
            })
        })
        .collect();
    let tracker = watch::Tracker::default();
    let sub = {
        let (c, f, t) = (client.clone(), filters.clone(), tracker.clone());
        move |i: usize| {
            watch::subscribe_with(&t, i, || match f.get(i) {
                Some(f) => c
                    .try_subscribe(f.path.clone(), f.qos)
                    .map_err(|e| e.to_string()),
                None => Err("no such subscription".into()),
            })
        }
    };
    let c = client.clone();
    let _watch = watch::spawn(
        router.status.clone(),
        tracker.clone(),
        watch::Actions {
            disconnect: Box::new(move || c.try_disconnect().is_ok()),
            subscribe: Box::new(sub.clone()),
        },
    );
    let mut backoff = Backoff::new(&cfg.connection());
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !router.handle(&p.topic, &p.payload).await {
                    return;
                }
                for o in router.outbox.drain(..) {
                    if let Err(e) =
                        client.try_publish(o.topic.clone(), QoS::AtLeastOnce, false, o.payload)
                    {
                        tracing::warn!(topic = %o.topic, error = %e, "could not queue a sparkplug rebirth request");
                    } else {
                        tracing::info!(topic = %o.topic, "sparkplug rebirth requested");
                    }
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                router.status.connected.store(true, Ordering::Relaxed);
                router.status.connections.fetch_add(1, Ordering::Relaxed);
                backoff.reset();
                tracing::info!(broker = %format!("{}:{}", cfg.host, cfg.port), session_present = ack.session_present, "mqtt 5 connected; subscribing");
                if let Ok(mut t) = tracker.lock() {
                    t.connected(ack.session_present);
                }
                for i in 0..filters.len() {
                    sub(i);
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Subscribe(pkid))) => {
                if let Ok(mut t) = tracker.lock() {
                    t.outgoing(pkid);
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                // MQTT 5: reason codes from 0x80 up are failures.
                let refused = ack.return_codes.iter().find(|rc| {
                    !matches!(
                        rc,
                        rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                    )
                });
                let why = refused.map(|rc| format!("{rc:?}"));
                if let Ok(mut t) = tracker.lock() {
                    t.suback(ack.pkid, why, &router.status);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let d = backoff.next_delay();
                on_error(&router.status, &e, &cfg.host, cfg.port, d);
                tokio::time::sleep(d).await;
            }
        }
    }
}
