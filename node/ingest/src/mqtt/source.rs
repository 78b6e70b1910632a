//! The MQTT client task: connects, subscribes, decodes, and hands batches to the reading bus.
//!
//! The task drives rumqttc's event loop itself and never blocks it: subscriptions are queued
//! with `try_subscribe_many`, and the only await besides the network is the bounded reading
//! bus (back-pressure: when the node cannot keep up, the broker buffers, nothing is dropped).
//! After any connection failure it waits with exponential back-off and reconnects; every new
//! connection re-subscribes, so ingest resumes after a broker restart without a node restart.

use super::codec::{DecodeDefaults, Decoder};
use super::config::{MqttConfig, MqttProtocol, SubscriptionConfig};
use super::topic::TopicPattern;
use crate::metrics::{RejectReason, SourceCounters};
use millwright_core::Batch;
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
    /// A TLS file could not be read.
    #[error("mqtt.tls: cannot read {path}: {source}")]
    TlsFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Live state of one subscription.
#[derive(Debug)]
pub struct SubscriptionStatus {
    /// The configured topic pattern.
    pub topic: String,
    /// Counters (messages, readings, rejects by reason).
    pub counters: SourceCounters,
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
}

impl Router {
    /// Handles one publish. Returns false when the reading bus is closed.
    async fn handle(&mut self, topic: &[u8], payload: &[u8]) -> bool {
        let now = crate::time::now_ns();
        let topic = String::from_utf8_lossy(topic);
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
        match sub.decoder.decode(m, payload, now, &mut batch) {
            Ok(n) => {
                counters.readings.fetch_add(n as u64, Ordering::Relaxed);
                if self.tx.send(batch).await.is_err() {
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
        let mut subs = Vec::with_capacity(cfg.subscriptions.len());
        let mut statuses = Vec::with_capacity(cfg.subscriptions.len());
        for s in &cfg.subscriptions {
            subs.push(Sub {
                pattern: TopicPattern::parse(&s.topic)?,
                decoder: Decoder::new(s.format, defaults(s)),
                log_gate: LogGate {
                    last: None,
                    suppressed: 0,
                },
            });
            statuses.push(SubscriptionStatus {
                topic: s.topic.clone(),
                counters: SourceCounters::default(),
            });
        }
        let status = Arc::new(SourceStatus {
            subscriptions: statuses,
            ..Default::default()
        });
        let tls = load_tls(cfg)?;
        let router = Router {
            subs,
            status: status.clone(),
            unknown_gate: LogGate {
                last: None,
                suppressed: 0,
            },
            tx,
        };
        let cfg = cfg.clone();
        let task = match cfg.protocol {
            MqttProtocol::V311 => tokio::spawn(run_v311(cfg, tls, router)),
            MqttProtocol::V5 => tokio::spawn(run_v5(cfg, tls, router)),
        };
        Ok(Self { status, task })
    }
}

fn defaults(s: &SubscriptionConfig) -> DecodeDefaults {
    DecodeDefaults {
        asset: s.asset.clone(),
        signal: s.signal.clone(),
        unit: s.unit.clone(),
        precision: s.precision,
        max_payload_bytes: s.max_payload_bytes,
    }
}

fn load_tls(cfg: &MqttConfig) -> Result<Option<rumqttc::TlsConfiguration>, MqttSetupError> {
    let Some(t) = &cfg.tls else { return Ok(None) };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| MqttSetupError::TlsFile {
            path: p.display().to_string(),
            source,
        })
    };
    let ca = read(&t.ca_file)?;
    let client_auth = match (&t.client_cert_file, &t.client_key_file) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        _ => None,
    };
    crate::install_crypto_provider();
    Ok(Some(rumqttc::TlsConfiguration::Simple {
        ca,
        alpn: None,
        client_auth,
    }))
}

/// MQTT 3.1.1 client options for another client of the node (alerts, reports, CLI) on the
/// configured broker: same host, port, keep-alive, credentials and TLS as the ingest client.
pub fn client_options(
    cfg: &MqttConfig,
    client_id: String,
) -> Result<rumqttc::MqttOptions, MqttSetupError> {
    let mut opts = rumqttc::MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s))
        .set_max_packet_size(cfg.max_packet_bytes, cfg.max_packet_bytes);
    if let Some(u) = &cfg.username {
        opts.set_credentials(u.clone(), password(cfg));
    }
    if let Some(t) = load_tls(cfg)? {
        opts.set_transport(rumqttc::Transport::tls_with_config(t));
    }
    Ok(opts)
}

fn password(cfg: &MqttConfig) -> String {
    cfg.password
        .as_ref()
        .map(|p| p.expose().to_string())
        .unwrap_or_default()
}

fn qos_v311(q: u8) -> rumqttc::QoS {
    if q == 0 {
        rumqttc::QoS::AtMostOnce
    } else {
        rumqttc::QoS::AtLeastOnce
    }
}

struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    fn new(cfg: &MqttConfig) -> Self {
        let min = Duration::from_millis(cfg.reconnect_min_ms.max(1));
        Self {
            min,
            max: Duration::from_millis(cfg.reconnect_max_ms.max(cfg.reconnect_min_ms.max(1))),
            cur: min,
        }
    }
    fn reset(&mut self) {
        self.cur = self.min;
    }
    fn next(&mut self) -> Duration {
        let d = self.cur;
        self.cur = (self.cur * 2).min(self.max);
        d
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
    if let Ok(mut g) = status.last_error.lock() {
        *g = Some(err.to_string());
    }
    if was {
        tracing::warn!(broker = %format!("{host}:{port}"), error = %err, "mqtt connection lost; reconnecting");
    } else {
        tracing::warn!(broker = %format!("{host}:{port}"), error = %err, retry_in_ms = delay.as_millis() as u64, "mqtt connect failed");
    }
}

async fn run_v311(cfg: MqttConfig, tls: Option<rumqttc::TlsConfiguration>, mut router: Router) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, SubscribeFilter, Transport};
    let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s))
        .set_clean_session(cfg.clean_session)
        .set_max_packet_size(cfg.max_packet_bytes, cfg.max_packet_bytes)
        .set_inflight(100);
    if let Some(u) = &cfg.username {
        opts.set_credentials(u.clone(), password(&cfg));
    }
    if let Some(t) = tls {
        opts.set_transport(Transport::tls_with_config(t));
    }
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
    let mut backoff = Backoff::new(&cfg);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !router.handle(p.topic.as_bytes(), &p.payload).await {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                router.status.connected.store(true, Ordering::Relaxed);
                router.status.connections.fetch_add(1, Ordering::Relaxed);
                backoff.reset();
                tracing::info!(broker = %format!("{}:{}", cfg.host, cfg.port), session_present = ack.session_present, "mqtt connected; subscribing");
                if !filters.is_empty() {
                    if let Err(e) = client.try_subscribe_many(filters.clone()) {
                        tracing::error!(error = %e, "mqtt subscribe could not be queued");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                for (i, rc) in ack.return_codes.iter().enumerate() {
                    if matches!(rc, rumqttc::SubscribeReasonCode::Failure) {
                        tracing::error!(filter = ?filters.get(i).map(|f| &f.path), "broker refused the subscription");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let d = backoff.next();
                on_error(&router.status, &e, &cfg.host, cfg.port, d);
                tokio::time::sleep(d).await;
            }
        }
    }
}

async fn run_v5(cfg: MqttConfig, tls: Option<rumqttc::TlsConfiguration>, mut router: Router) {
    use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    let max_packet = u32::try_from(cfg.max_packet_bytes).unwrap_or(u32::MAX);
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s))
        .set_clean_start(cfg.clean_session)
        .set_max_packet_size(Some(max_packet));
    if !cfg.clean_session {
        // Keep the session (and queued QoS 1 messages) for an hour of disconnection.
        opts.set_session_expiry_interval(Some(3600));
    }
    if let Some(u) = &cfg.username {
        opts.set_credentials(u.clone(), password(&cfg));
    }
    if let Some(t) = tls {
        opts.set_transport(rumqttc::Transport::tls_with_config(t));
    }
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
    let mut backoff = Backoff::new(&cfg);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !router.handle(&p.topic, &p.payload).await {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                router.status.connected.store(true, Ordering::Relaxed);
                router.status.connections.fetch_add(1, Ordering::Relaxed);
                backoff.reset();
                tracing::info!(broker = %format!("{}:{}", cfg.host, cfg.port), session_present = ack.session_present, "mqtt 5 connected; subscribing");
                if !filters.is_empty() {
                    if let Err(e) = client.try_subscribe_many(filters.clone()) {
                        tracing::error!(error = %e, "mqtt subscribe could not be queued");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let d = backoff.next();
                on_error(&router.status, &e, &cfg.host, cfg.port, d);
                tokio::time::sleep(d).await;
            }
        }
    }
}
