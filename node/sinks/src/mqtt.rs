//! The node's MQTT publisher: one client (rumqttc) for everything the node publishes under
//! `<root>/<site>/` — alerts, reports, answers — with the retained `status` topic (`online` on
//! every connection, `offline` as the last will and on a clean close), and the request topics
//! it subscribes to, whose payloads are forwarded to a channel.
//!
//! [`MqttPublisher::publish`] never blocks: it queues the message for the client's event-loop
//! task. A message that cannot be queued (queue full while the broker is away, invalid topic,
//! publisher closed) is counted in [`PublisherStatus`] and logged, rate-limited — never
//! silently dropped.
//!
//! The connection options come in already built (`rumqttc::MqttOptions`); this module neither
//! reads the node's config nor decides what to publish.

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Retained payload of the status topic while the node is connected.
pub const STATUS_ONLINE: &str = "online";
/// Retained payload of the status topic after the node went away (last will, clean close).
pub const STATUS_OFFLINE: &str = "offline";
/// Topic (relative to the prefix) of the node's retained health document (JSON per part,
/// built by the app), next to the `online`/`offline` status topic.
pub const STATUS_HEALTH_SUFFIX: &str = "status/health";

/// Counters of the publisher (for `/metrics`).
#[derive(Debug, Default)]
pub struct PublisherStatus {
    /// Messages handed to the client for sending (QoS 1).
    pub published: AtomicU64,
    /// Messages the broker acknowledged.
    pub acked: AtomicU64,
    /// Messages not queued because the client's queue was full (broker away or slow).
    pub queue_full: AtomicU64,
    /// Messages not queued for another reason (invalid topic, publisher closed).
    pub dropped: AtomicU64,
    /// Request payloads forwarded to the request channel.
    pub requests: AtomicU64,
    /// Request payloads dropped because the request channel was full or gone.
    pub requests_dropped: AtomicU64,
    /// Request payloads dropped because requests came faster than [`REQUEST_RATE_PER_S`]
    /// (after a burst of [`REQUEST_BURST`]).
    pub requests_rate_limited: AtomicU64,
    /// Request payloads dropped because they were larger than [`MAX_REQUEST_BYTES`].
    pub requests_too_large: AtomicU64,
    /// Connections made (ConnAck received).
    pub connections: AtomicU64,
    /// True while connected.
    pub connected: AtomicBool,
}

/// Requests (all request topics together) accepted per second on average ...
pub const REQUEST_RATE_PER_S: f64 = 1.0;
/// ... and in a burst: a publisher flooding `reports/request` or `ask` costs the node at most
/// this, the rest is counted in `requests_rate_limited`.
pub const REQUEST_BURST: f64 = 10.0;
/// Largest request payload forwarded, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A token bucket: `take` is true while tokens are left; they refill at `rate` per second.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            tokens: burst,
            rate,
            burst,
            at: Instant::now(),
        }
    }
    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A payload that arrived on one of the request topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttRequest {
    /// The topic relative to the prefix, e.g. `reports/request`.
    pub topic_suffix: String,
    /// The payload as text (invalid UTF-8 replaced), untrimmed.
    pub payload: String,
}

/// Settings of a publisher besides the connection options.
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    /// Topic prefix `<root>/<site>/` (a missing trailing `/` is added).
    pub prefix: String,
    /// Topics (relative to the prefix) whose messages are forwarded as [`MqttRequest`]s, e.g.
    /// `reports/request`, `ask`.
    pub request_topics: Vec<String>,
    /// Messages the client queues while the broker is away (≥ 1).
    pub queue: usize,
}

/// Handle to the publisher (cheap to clone; every clone publishes on the same client).
#[derive(Clone)]
pub struct MqttPublisher {
    client: AsyncClient,
    prefix: Arc<str>,
    status: Arc<PublisherStatus>,
    shared: Arc<Shared>,
}

struct Shared {
    closed: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
    log: RateLimitedLog,
}

impl MqttPublisher {
    /// Starts the client's event-loop task (needs a tokio runtime). `opts` gets the status
    /// topic as its retained last will (`offline`); request payloads go to `requests` (a full
    /// channel drops them, counted).
    pub fn spawn(
        mut opts: MqttOptions,
        cfg: PublisherConfig,
        requests: Option<std_mpsc::SyncSender<MqttRequest>>,
    ) -> MqttPublisher {
        let mut prefix = cfg.prefix;
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let status_topic = format!("{prefix}{}", millwright_core::schema::topics::STATUS);
        opts.set_last_will(LastWill::new(
            status_topic.clone(),
            STATUS_OFFLINE,
            QoS::AtLeastOnce,
            true,
        ));
        let (client, el) = AsyncClient::new(opts, cfg.queue.max(1));
        let status = Arc::new(PublisherStatus::default());
        let shared = Arc::new(Shared {
            closed: AtomicBool::new(false),
            task: Mutex::new(None),
            log: RateLimitedLog::new(Duration::from_secs(10)),
        });
        let task = tokio::spawn(event_loop(
            el,
            client.clone(),
            prefix.clone(),
            status_topic,
            cfg.request_topics,
            requests,
            status.clone(),
        ));
        if let Ok(mut t) = shared.task.lock() {
            *t = Some(task);
        }
        MqttPublisher {
            client,
            prefix: prefix.into(),
            status,
            shared,
        }
    }

    /// The shared counters.
    pub fn status(&self) -> &Arc<PublisherStatus> {
        &self.status
    }

    /// False once the client's event-loop task has ended (closed, aborted or panicked).
    pub fn is_running(&self) -> bool {
        self.shared
            .task
            .lock()
            .ok()
            .is_some_and(|t| t.as_ref().is_some_and(|h| !h.is_finished()))
    }

    /// The topic prefix `<root>/<site>/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Queues `payload` for `<prefix><topic_suffix>` (QoS 1, not retained) without waiting.
    /// Returns whether it was queued; when not, it is counted (`queue_full` or `dropped`) and
    /// logged, rate-limited.
    pub fn publish(&self, topic_suffix: &str, payload: impl Into<Vec<u8>>) -> bool {
        self.publish_with(topic_suffix, payload, false)
    }

    /// Like [`MqttPublisher::publish`], retained.
    pub fn publish_retained(&self, topic_suffix: &str, payload: impl Into<Vec<u8>>) -> bool {
        self.publish_with(topic_suffix, payload, true)
    }

    fn publish_with(&self, topic_suffix: &str, payload: impl Into<Vec<u8>>, retain: bool) -> bool {
        let topic = format!("{}{topic_suffix}", self.prefix);
        let why = if self.shared.closed.load(Ordering::Relaxed) {
            Some("publisher closed")
        } else if !valid_topic(&topic) {
            Some("invalid topic")
        } else {
            match self
                .client
                .try_publish(topic.as_str(), QoS::AtLeastOnce, retain, payload)
            {
                Ok(()) => {
                    self.status.published.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                // The topic is valid and the publisher open: the queue is full (or, after a
                // crash of the event loop, gone — counted as full either way).
                Err(_) => None,
            }
        };
        match why {
            None => {
                self.status.queue_full.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.shared.log.allow() {
                    tracing::error!(%topic, suppressed, queue_full = self.status.queue_full.load(Ordering::Relaxed), "MQTT publish queue full (broker away?): message dropped");
                }
            }
            Some(reason) => {
                self.status.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.shared.log.allow() {
                    tracing::error!(%topic, reason, suppressed, "MQTT message dropped");
                }
            }
        }
        false
    }

    /// Clean stop: publishes the retained `offline` status, disconnects (so the broker does not
    /// send the last will on top) and waits for the event loop to end, at most `timeout`.
    /// Later publishes are dropped (counted).
    pub async fn close(&self, timeout: Duration) {
        if self.shared.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        let status_topic = format!("{}{}", self.prefix, millwright_core::schema::topics::STATUS);
        let _ = self
            .client
            .try_publish(status_topic, QoS::AtLeastOnce, true, STATUS_OFFLINE);
        let _ = self.client.try_disconnect();
        let task = self.shared.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task {
            if tokio::time::timeout(timeout, &mut task).await.is_err() {
                tracing::warn!("MQTT publisher did not disconnect in time; stopping it");
                task.abort();
            }
        }
    }

    /// Stops the event loop at once, without a DISCONNECT: the broker publishes the last will
    /// (`offline`), as after a crash.
    pub fn abort(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        if let Some(t) = self.shared.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

/// A topic the node may publish on: not empty, no wildcards, no NUL.
fn valid_topic(t: &str) -> bool {
    !t.is_empty() && !t.contains(['+', '#', '\0'])
}

async fn event_loop(
    mut el: rumqttc::EventLoop,
    client: AsyncClient,
    prefix: String,
    status_topic: String,
    request_topics: Vec<String>,
    requests: Option<std_mpsc::SyncSender<MqttRequest>>,
    status: Arc<PublisherStatus>,
) {
    let log = RateLimitedLog::new(Duration::from_secs(10));
    let mut bucket = Bucket::new(REQUEST_RATE_PER_S, REQUEST_BURST);
    let (host, port) = el.mqtt_options.broker_address();
    let mut connecting = true;
    // Connection attempts since the last success (which checked address to try).
    let mut attempt = 0usize;
    loop {
        // Every (re)connect passes the node's egress check first; a refusal opens no socket.
        if connecting {
            match millwright_mqtt::check_egress_async(&host, port).await {
                Ok(a) => {
                    // Connect to what was checked (rumqttc would resolve the name again).
                    let tls = !matches!(el.mqtt_options.transport(), rumqttc::Transport::Tcp);
                    let h = millwright_mqtt::connect_host(&host, &a, attempt, tls);
                    attempt += 1;
                    if el.mqtt_options.broker_address().0 != h {
                        el.mqtt_options = millwright_mqtt::v4_with_host(&el.mqtt_options, &h);
                    }
                }
                Err(why) => {
                    status.connected.store(false, Ordering::Relaxed);
                    if let Some(suppressed) = log.allow() {
                        tracing::error!(reason = %why, suppressed, "MQTT publisher: egress refused; retrying");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            connecting = false;
        }
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                attempt = 0;
                status.connected.store(true, Ordering::Relaxed);
                status.connections.fetch_add(1, Ordering::Relaxed);
                if let Err(e) =
                    client.try_publish(status_topic.as_str(), QoS::AtLeastOnce, true, STATUS_ONLINE)
                {
                    status.queue_full.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "MQTT status `online` could not be queued");
                }
                for t in &request_topics {
                    if let Err(e) = client.try_subscribe(format!("{prefix}{t}"), QoS::AtLeastOnce) {
                        tracing::error!(topic = %t, error = %e, "MQTT request topic not subscribed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                status.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some(suffix) = p.topic.strip_prefix(prefix.as_str()) else {
                    continue;
                };
                if !request_topics.iter().any(|t| t == suffix) {
                    continue;
                }
                if p.payload.len() > MAX_REQUEST_BYTES {
                    status.requests_too_large.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = log.allow() {
                        tracing::warn!(topic = %p.topic, bytes = p.payload.len(), suppressed, "MQTT request dropped: larger than {MAX_REQUEST_BYTES} bytes");
                    }
                    continue;
                }
                if !bucket.take(Instant::now()) {
                    status.requests_rate_limited.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = log.allow() {
                        tracing::warn!(topic = %p.topic, suppressed, "MQTT request dropped: more than {REQUEST_RATE_PER_S}/s");
                    }
                    continue;
                }
                let req = MqttRequest {
                    topic_suffix: suffix.to_string(),
                    payload: String::from_utf8_lossy(&p.payload).into_owned(),
                };
                let sent = requests.as_ref().is_some_and(|tx| tx.try_send(req).is_ok());
                if sent {
                    status.requests.fetch_add(1, Ordering::Relaxed);
                } else {
                    status.requests_dropped.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = log.allow() {
                        tracing::error!(topic = %p.topic, suppressed, "MQTT request dropped: request channel full or gone");
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                status.connected.store(false, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                connecting = true;
                status.connected.store(false, Ordering::Relaxed);
                tracing::debug!(error = %e, "MQTT publisher: connection failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    #[test]
    fn the_request_bucket_allows_a_burst_then_the_rate() {
        let mut b = Bucket::new(2.0, 3.0);
        let t = b.at;
        assert_eq!((0..5).filter(|_| b.take(t)).count(), 3);
        assert!(b.take(t + Duration::from_millis(500)));
        assert!(!b.take(t + Duration::from_millis(600)));
        assert_eq!(
            (0..10)
                .filter(|_| b.take(t + Duration::from_secs(100)))
                .count(),
            3
        );
    }
}

/// At most one log line per `every`; tells how many were held back in between.
#[derive(Debug)]
struct RateLimitedLog {
    every: Duration,
    base: Instant,
    /// ms since `base` of the last line + 1 (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    fn new(every: Duration) -> Self {
        Self {
            every,
            base: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    fn allow(&self) -> Option<u64> {
        self.allow_at(self.base.elapsed())
    }

    fn allow_at(&self, now: Duration) -> Option<u64> {
        let now_ms = now.as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now_ms >= last + self.every.as_millis() as u64;
        if due
            && self
                .last
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_log_lets_one_line_through_per_period_and_counts_the_rest() {
        let l = RateLimitedLog::new(Duration::from_secs(10));
        assert_eq!(l.allow_at(Duration::from_secs(0)), Some(0));
        assert_eq!(l.allow_at(Duration::from_secs(1)), None);
        assert_eq!(l.allow_at(Duration::from_secs(9)), None);
        assert_eq!(l.allow_at(Duration::from_secs(10)), Some(2));
        assert_eq!(l.allow_at(Duration::from_secs(11)), None);
    }

    #[test]
    fn topics_with_wildcards_are_invalid() {
        assert!(valid_topic("millwright/plant-1/alerts/P-101"));
        assert!(!valid_topic("millwright/plant-1/alerts/#"));
        assert!(!valid_topic("a/+/b"));
        assert!(!valid_topic(""));
    }
}
