//! The MQTT client task: connects, subscribes, decodes, and hands batches to the reading bus.
//!
//! The task drives rumqttc's event loop itself and never blocks it: subscriptions are queued
//! with `try_subscribe_many`, and the only await besides the network is the bounded reading
//! bus (back-pressure: when the node cannot keep up, the broker buffers, nothing is dropped).
//! After any connection failure it waits with exponential back-off and reconnects; every new
//! connection re-subscribes, so ingest resumes after a broker restart without a node restart.
//!
//! Acknowledgements ([`AckMode`]): by default rumqttc acknowledges a QoS 1 message on receipt.
//! With [`AckMode::AfterStorage`] (the node's disk outbox is on) acks are manual: a message
//! whose readings go on the bus carries an [`Ack`] token in its [`Delivery`], and is
//! acknowledged only once the token is fired (its readings are durable); a message rejected as
//! bad (counted) or with no readings is complete at once. Acks go out in the order the messages
//! came. With MQTT 3.1.1 the client loop writes the acks of everything stored so far in one
//! socket write (`acks.rs`); with MQTT 5 (rumqttc keeps that connection private) a small task
//! per connection waits on the tokens' watermark and acks through the client, one at a time.

use super::acks::{self, AckQueue};
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
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio::task::JoinHandle;

/// When QoS 1 messages are acknowledged to the broker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckMode {
    /// On receipt (rumqttc's automatic acks): a crash loses what the node held in memory.
    #[default]
    OnReceipt,
    /// Once the message's readings are stored ([`Ack::done`]); the broker keeps (and, with a
    /// persistent session, redelivers) what is unacknowledged.
    AfterStorage,
}

/// A batch on the reading bus, with the acknowledgement its message waits for.
#[derive(Debug)]
pub struct Delivery {
    /// The readings.
    pub batch: Batch,
    /// Fire once the readings are stored (only with [`AckMode::AfterStorage`]).
    pub ack: Option<Ack>,
}

impl millwright_core::budget::ByteSize for Delivery {
    fn byte_size(&self) -> usize {
        self.batch.byte_size() + std::mem::size_of::<Self>()
    }
}

/// The sending end of the reading bus: bounded in batches and in bytes (`[node]
/// memory_budget_mb`); a full bus makes the source wait, so the broker keeps the messages.
pub type BusSender = millwright_core::budget::Sender<Delivery>;

/// The acknowledgement of one MQTT message: [`Ack::done`] once its readings are stored.
/// Tokens fire in bus order; dropping one unfired leaves the message unacknowledged (the broker
/// redelivers it on the next session).
#[derive(Debug)]
pub struct Ack {
    seq: u64,
    watermark: Arc<tokio_watch::Sender<u64>>,
}

impl Ack {
    /// The readings are stored: the message (and every earlier one) may be acknowledged.
    pub fn done(self) {
        self.watermark.send_if_modified(|w| {
            let moved = self.seq > *w;
            if moved {
                *w = self.seq;
            }
            moved
        });
    }
}

/// Numbers the messages whose readings go on the bus; their tokens move the watermark.
struct AckTracker {
    next: u64,
    watermark: Arc<tokio_watch::Sender<u64>>,
}

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
    /// Acknowledgements sent after storage (MQTT 3.1.1).
    pub acks_sent: AtomicU64,
    /// Socket writes that carried them (many acks per write under load).
    pub ack_writes: AtomicU64,
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

/// A pending delivery goes on the bus once it holds this many readings, even while more
/// messages are ready (rumqttc reads up to 10 packets per network read).
const COALESCE_READINGS: usize = 2048;

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
    tx: BusSender,
    /// Set with [`AckMode::AfterStorage`].
    acks: Option<AckTracker>,
    /// Sequence number of the last message routed with a token (0: none, ack at once).
    last_seq: u64,
    /// Readings of messages handled since the last [`Router::flush`]: the messages of one
    /// network read go on the bus as one delivery (one token, one store insert, one outbox
    /// record), so a stream of one-reading messages does not pay the per-batch costs per
    /// message.
    pending: Vec<millwright_core::Reading>,
    /// Messages the decoders asked to publish (Sparkplug B rebirth requests).
    outbox: Vec<Outgoing>,
}

impl Router {
    /// Puts the readings gathered since the last flush on the bus as one delivery, with the
    /// token every one of their messages waits for. Returns false when the bus is closed.
    async fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let mut batch = std::mem::take(&mut self.pending);
        // The bus counts what a batch holds; give back what growing it left unused.
        batch.shrink_to_fit();
        let ack = self.acks.as_mut().map(|t| {
            t.next += 1;
            Ack {
                seq: t.next,
                watermark: t.watermark.clone(),
            }
        });
        self.tx.send(Delivery { batch, ack }).await.is_ok()
    }

    /// True when readings wait for [`Router::flush`].
    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Handles one publish: its readings join the pending delivery (flushed here once it
    /// holds [`COALESCE_READINGS`]; the client loop flushes it before it waits for the
    /// network). Returns false when the reading bus is closed.
    async fn handle(&mut self, topic: &[u8], payload: &[u8]) -> bool {
        self.last_seq = 0;
        let now = millwright_core::time::now_ns();
        let topic = String::from_utf8_lossy(topic);
        #[cfg(feature = "fault-inject")]
        crate::fault::mqtt_message(&topic);
        let Some((i, m)) = self
            .subs
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.pattern.matches(&topic).map(|m| (i, m)))
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
        let start = self.pending.len();
        let res = sub.decoder.decode(m, payload, now, &mut self.pending);
        counters.add(&sub.decoder.take_tally());
        self.outbox.extend(sub.decoder.take_outgoing());
        match res {
            Ok(n) => {
                counters.readings.fetch_add(n as u64, Ordering::Relaxed);
                if n > 0 {
                    // The pending delivery's token: the next sequence number.
                    if let Some(t) = &self.acks {
                        self.last_seq = t.next + 1;
                    }
                }
            }
            Err(e) => {
                self.pending.truncate(start);
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
        if self.pending.len() >= COALESCE_READINGS && !self.flush().await {
            if let Some(s) = self.status.subscriptions.get(i) {
                s.counters.reject(RejectReason::Dropped);
            }
            return false;
        }
        true
    }
}

impl Router {
    /// With [`AckMode::AfterStorage`]: starts the task that acknowledges messages in order,
    /// each once the watermark reached its sequence number (0: at once), and returns its inbox.
    fn acker<C, P, F, Fut>(&self, client: C, ack: F) -> Option<mpsc::UnboundedSender<(u64, P)>>
    where
        C: Clone + Send + 'static,
        P: Send + 'static,
        F: Fn(C, P) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        let t = self.acks.as_ref()?;
        let mut wm = t.watermark.subscribe();
        // Unbounded, but holds at most the broker's in-flight window (payloads stripped).
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, P)>();
        tokio::spawn(async move {
            while let Some((seq, p)) = rx.recv().await {
                if seq > 0 && wm.wait_for(|w| *w >= seq).await.is_err() {
                    return;
                }
                if !ack(client.clone(), p).await {
                    return;
                }
            }
        });
        Some(tx)
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
    /// Starts the client task. Readings go to `tx` (bounded in batches and bytes:
    /// back-pressure, never drops);
    /// `acks` says when QoS 1 messages are acknowledged.
    pub fn spawn(cfg: &MqttConfig, tx: BusSender, acks: AckMode) -> Result<Self, MqttSetupError> {
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
        Self::spawn_with(cfg, tx, acks, status)
    }

    /// Starts the client task with an existing `status` (a restart after a panic keeps the
    /// counters); `status` must have been made for `cfg` ([`MqttSource::spawn`]).
    pub fn spawn_with(
        cfg: &MqttConfig,
        tx: BusSender,
        acks: AckMode,
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
            acks: (acks == AckMode::AfterStorage).then(|| AckTracker {
                next: 0,
                watermark: Arc::new(tokio_watch::channel(0).0),
            }),
            last_seq: 0,
            pending: Vec::new(),
            outbox: Vec::new(),
        };
        let manual = acks == AckMode::AfterStorage;
        let cfg = cfg.clone();
        let task = match cfg.protocol {
            MqttProtocol::V311 => {
                let mut opts = conn.v4_options()?;
                opts.set_clean_session(cfg.clean_session)
                    .set_inflight(100)
                    .set_manual_acks(manual);
                tokio::spawn(run_v311(cfg, opts.into_inner(), router))
            }
            MqttProtocol::V5 => {
                let opts = v5_options(&cfg, &cfg.host, manual)?;
                tokio::spawn(run_v5(cfg, opts, router))
            }
        };
        Ok(Self { status, task })
    }
}

/// The MQTT 5 client options of `cfg` with the broker host `host`.
fn v5_options(
    cfg: &MqttConfig,
    host: &str,
    manual: bool,
) -> Result<rumqttc::v5::MqttOptions, MqttSetupError> {
    let mut conn = cfg.connection();
    conn.host = host.to_string();
    let mut opts = conn.v5_options()?;
    opts.set_clean_start(cfg.clean_session)
        .set_manual_acks(manual);
    if !cfg.clean_session {
        // Keep the session (and queued QoS 1 messages) for an hour of disconnection.
        opts.set_session_expiry_interval(Some(3600));
    }
    Ok(opts.into_inner())
}

fn ack_qos(d: acks::Due) -> rumqttc::QoS {
    if d.exactly_once {
        rumqttc::QoS::ExactlyOnce
    } else {
        rumqttc::QoS::AtLeastOnce
    }
}

/// Aborts the task when dropped (the waker ends with its client loop).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes PUBACKs (PUBRECs for QoS 2) into the connection's buffer and flushes them with one
/// write; false without a connection (nothing to do: the broker redelivers on the next one).
async fn write_acks(el: &mut rumqttc::EventLoop, due: &[acks::Due]) -> Result<bool, String> {
    let timeout = Duration::from_secs(el.network_options.connection_timeout().max(1));
    let Some(n) = el.network.as_mut() else {
        return Ok(false);
    };
    for d in due {
        let p = if d.exactly_once {
            rumqttc::Packet::PubRec(rumqttc::PubRec::new(d.pkid))
        } else {
            rumqttc::Packet::PubAck(rumqttc::PubAck::new(d.pkid))
        };
        n.write(p).await.map_err(|e| e.to_string())?;
    }
    match tokio::time::timeout(timeout, n.flush()).await {
        Ok(r) => r.map(|()| true).map_err(|e| e.to_string()),
        Err(_) => Err("flush timed out".into()),
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
    for s in &status.subscriptions {
        s.watch.subscribed.store(false, Ordering::Relaxed);
    }
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

/// The egress check before a (re)connect (`millwright_mqtt::check_egress`): the host to give
/// the client (the checked address over plain TCP, `millwright_mqtt::connect_host`), or `None`
/// (after the back-off delay) when the broker is refused; no socket is opened then.
async fn egress_ok(
    status: &SourceStatus,
    cfg: &MqttConfig,
    backoff: &mut Backoff,
    attempt: usize,
) -> Option<String> {
    match millwright_mqtt::check_egress_async(&cfg.host, cfg.port).await {
        Ok(a) => Some(millwright_mqtt::connect_host(
            &cfg.host,
            &a,
            attempt,
            cfg.tls.is_some(),
        )),
        Err(why) => {
            let d = backoff.next_delay();
            on_error(
                status,
                &format!("egress refused: {why}"),
                &cfg.host,
                cfg.port,
                d,
            );
            tokio::time::sleep(d).await;
            None
        }
    }
}

async fn run_v311(cfg: MqttConfig, opts: rumqttc::MqttOptions, mut router: Router) {
    use rumqttc::{AsyncClient, Event, Packet, SubscribeFilter};
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    // Acks after storage, written in bunches by this loop (`acks.rs`).
    let ackq = router.acks.as_ref().map(|t| {
        let q = acks::Shared::default();
        let c = client.clone();
        let waker = acks::spawn_waker(q.clone(), t.watermark.subscribe(), move |d| {
            let mut p = rumqttc::Publish::new("", ack_qos(d), Vec::new());
            p.pkid = d.pkid;
            c.try_ack(&p).is_ok()
        });
        (q, t.watermark.clone(), AbortOnDrop(waker))
    });
    let mut due = Vec::new();
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
    let mut connecting = true;
    // Connection attempts since the last success (which checked address to try).
    let mut attempt = 0usize;
    loop {
        if connecting {
            let Some(host) = egress_ok(&router.status, &cfg, &mut backoff, attempt).await else {
                continue;
            };
            attempt += 1;
            // Connect to what was checked (rumqttc would resolve the name again).
            if eventloop.mqtt_options.broker_address().0 != host {
                eventloop.mqtt_options =
                    millwright_mqtt::v4_with_host(&eventloop.mqtt_options, &host);
            }
        }
        connecting = false;
        // Before waiting on the network (no event left from the last read), the readings of
        // the messages read so far go on the bus.
        let idle = eventloop.state.events.is_empty();
        if router.has_pending() && idle && !router.flush().await {
            return;
        }
        // Then the acks of what is stored by now, one write for all of them.
        if let (Some((q, wm, _)), true) = (&ackq, idle) {
            loop {
                due.clear();
                AckQueue::take_ready(q, || *wm.borrow(), true, &mut due);
                if due.is_empty() {
                    break;
                }
                match write_acks(&mut eventloop, &due).await {
                    Ok(true) => {
                        let st = &router.status;
                        st.acks_sent.fetch_add(due.len() as u64, Ordering::Relaxed);
                        st.ack_writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        // The connection is broken; the next poll finds out and reconnects.
                        tracing::debug!(error = %e, "writing mqtt acks failed");
                        AckQueue::reset(q);
                        break;
                    }
                }
            }
        }
        let polled = eventloop.poll().await;
        if let Some((q, _, _)) = &ackq {
            AckQueue::unpark(q);
        }
        match polled {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !router.handle(p.topic.as_bytes(), &p.payload).await {
                    return;
                }
                if let (Some((q, _, _)), true) = (&ackq, p.qos != rumqttc::QoS::AtMostOnce) {
                    AckQueue::push(
                        q,
                        router.last_seq,
                        p.pkid,
                        p.qos == rumqttc::QoS::ExactlyOnce,
                    );
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
                attempt = 0;
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
            Ok(Event::Outgoing(
                rumqttc::Outgoing::PubAck(pkid) | rumqttc::Outgoing::PubRec(pkid),
            )) => {
                if let Some((q, _, _)) = &ackq {
                    AckQueue::written_from_channel(q, pkid);
                    router.status.acks_sent.fetch_add(1, Ordering::Relaxed);
                    router.status.ack_writes.fetch_add(1, Ordering::Relaxed);
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
                if let Some((q, _, _)) = &ackq {
                    // The loop is unparked: the waker hands over nothing more. An ack it handed
                    // over after rumqttc's own clean-up (inside `poll`) is dropped here, so no
                    // ack of this connection reaches the next one (rumqttc drops queued acks).
                    eventloop.clean();
                    AckQueue::reset(q);
                }
                connecting = true;
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
    let acker =
        router.acker(
            client.clone(),
            |c: AsyncClient, p: rumqttc::v5::mqttbytes::v5::Publish| async move {
                c.ack(&p).await.is_ok()
            },
        );
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
    let mut connecting = true;
    // Connection attempts since the last success (which checked address to try).
    let mut attempt = 0usize;
    loop {
        if connecting {
            let Some(host) = egress_ok(&router.status, &cfg, &mut backoff, attempt).await else {
                continue;
            };
            attempt += 1;
            // Connect to what was checked (rumqttc would resolve the name again).
            if eventloop.options.broker_address().0 != host {
                match v5_options(&cfg, &host, router.acks.is_some()) {
                    Ok(o) => eventloop.options = o,
                    Err(e) => tracing::warn!(error = %e, "mqtt 5 options for the checked address"),
                }
            }
        }
        connecting = false;
        // Before waiting on the network (no event left from the last read), the readings of
        // the messages read so far go on the bus.
        if router.has_pending() && eventloop.state.events.is_empty() && !router.flush().await {
            return;
        }
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(mut p))) => {
                if !router.handle(&p.topic, &p.payload).await {
                    return;
                }
                if let (Some(a), true) = (&acker, p.qos != QoS::AtMostOnce) {
                    p.payload = Default::default();
                    let _ = a.send((router.last_seq, p));
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
                attempt = 0;
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
                connecting = true;
                let d = backoff.next_delay();
                on_error(&router.status, &e, &cfg.host, cfg.port, d);
                tokio::time::sleep(d).await;
            }
        }
    }
}
