//! Watching the MQTT subscriptions: silence while connected, and refused subscriptions.
//!
//! * **Silence.** A subscription with `expected_interval_s` that brings no message for
//!   `silence_factor` × that interval while the client is connected is marked silent
//!   ([`SubWatch::silent`]), counted ([`SubWatch::silences`]), logged, and the client is made to
//!   reconnect (DISCONNECT; the source's loop reconnects and re-subscribes on the new CONNACK).
//!   A subscription that stays silent backs off: each further reconnect for it waits twice as
//!   long (at most 16 × the window), so a dead publisher does not make the node flap.
//! * **Refused subscriptions.** Each filter goes out in a SUBSCRIBE of its own; the
//!   [`SubTracker`] maps packet ids back to subscriptions, so a SUBACK failure (MQTT 3.1.1 return
//!   code 0x80, MQTT 5 reason code ≥ 0x80) is pinned on its subscription: marked refused,
//!   counted, logged and re-subscribed with back-off (1 s doubling to 5 min) until accepted.
//!
//! The watchdog is its own task ([`spawn`]) that reads the source's counters every
//! [`TICK`]; it never touches the message path. Nothing here decodes or routes messages.

use super::source::SourceStatus;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the watchdog looks at the counters.
pub const TICK: Duration = Duration::from_millis(250);
/// First re-subscribe delay after a refused subscription.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// First re-subscribe delay after a SUBSCRIBE could not be queued to the client.
const QUEUE_RETRY: Duration = Duration::from_millis(250);
/// Longest re-subscribe delay.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Largest back-off multiplier of the silence window.
const SILENCE_BACKOFF_MAX: u32 = 16;

/// Live watch state of one subscription (part of the source's `SubscriptionStatus`).
#[derive(Debug, Default)]
pub struct SubWatch {
    /// Silence window in ms (`expected_interval_s` × `silence_factor`); 0: not watched.
    pub window_ms: u64,
    /// Wall-clock time (Unix ms) of the last message seen; 0: none since start.
    pub last_message_unix_ms: AtomicI64,
    /// True while the subscription is silent beyond its window (until a message arrives).
    pub silent: AtomicBool,
    /// Times the subscription was found silent (each forced a reconnect).
    pub silences: AtomicU64,
    /// True once the broker accepted the subscription on the current connection (SUBACK);
    /// false while disconnected and until then: messages published now may not reach the node.
    pub subscribed: AtomicBool,
    /// SUBACKs that refused the subscription.
    pub suback_failures: AtomicU64,
    /// True while the broker's last answer to this subscription was a refusal.
    pub refused: AtomicBool,
    /// The broker's last refusal (reason code), for the status view.
    pub last_refusal: Mutex<Option<String>>,
}

impl SubWatch {
    /// Watch state for a subscription expected every `expected_interval_s` (None: unwatched),
    /// silent after `silence_factor` intervals.
    pub fn new(expected_interval_s: Option<f64>, silence_factor: u32) -> Self {
        let window_ms = match expected_interval_s {
            Some(s) if s.is_finite() && s > 0.0 => {
                (s * 1000.0 * f64::from(silence_factor.max(1))).min(u64::MAX as f64) as u64
            }
            _ => 0,
        };
        Self {
            window_ms,
            ..Default::default()
        }
    }

    /// Seconds since the last message (None: none since the node started).
    pub fn last_message_age_s(&self, now_unix_ms: i64) -> Option<f64> {
        match self.last_message_unix_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some((now_unix_ms - t).max(0) as f64 / 1000.0),
        }
    }

    /// The last refusal, if the subscription is refused now.
    pub fn refusal(&self) -> Option<String> {
        if !self.refused.load(Ordering::Relaxed) {
            return None;
        }
        self.last_refusal.lock().ok().and_then(|g| g.clone())
    }
}

/// Maps SUBSCRIBE packet ids to subscriptions and schedules re-subscribes after refusals.
#[derive(Debug, Default)]
pub struct SubTracker {
    /// Subscriptions queued to the client, in order, whose SUBSCRIBE has not gone out yet.
    queued: VecDeque<usize>,
    /// Packet id → subscription, for SUBSCRIBEs sent and not yet answered.
    sent: HashMap<u16, usize>,
    /// Per refused subscription: when to try again and the delay after that.
    retry: HashMap<usize, (Instant, Duration)>,
}

/// Shared tracker of a source.
pub type Tracker = Arc<Mutex<SubTracker>>;

impl SubTracker {
    /// A new connection: without a session, the client dropped what it had not sent.
    pub fn connected(&mut self, session_present: bool) {
        if !session_present {
            self.queued.clear();
        }
        self.sent.clear();
    }

    /// Subscription `i` was queued to the client.
    pub fn queued(&mut self, i: usize) {
        self.queued.push_back(i);
    }

    /// A SUBSCRIBE with packet id `pkid` went out (the client sends them in queue order).
    pub fn outgoing(&mut self, pkid: u16) {
        if let Some(i) = self.queued.pop_front() {
            self.sent.insert(pkid, i);
        }
    }

    /// The broker answered SUBSCRIBE `pkid`: `refusal` is None when accepted, else the reason.
    pub fn suback(&mut self, pkid: u16, refusal: Option<String>, status: &SourceStatus) {
        let Some(i) = self.sent.remove(&pkid) else {
            if let Some(why) = refusal {
                tracing::error!(pkid, reason = %why, "broker refused a subscription the node cannot place");
            }
            return;
        };
        let Some(sub) = status.subscriptions.get(i) else {
            return;
        };
        match refusal {
            None => {
                sub.watch.subscribed.store(true, Ordering::Relaxed);
                if sub.watch.refused.swap(false, Ordering::Relaxed) {
                    tracing::info!(subscription = %sub.topic, "broker accepted the subscription");
                }
                self.retry.remove(&i);
            }
            Some(why) => {
                sub.watch.subscribed.store(false, Ordering::Relaxed);
                sub.watch.suback_failures.fetch_add(1, Ordering::Relaxed);
                sub.watch.refused.store(true, Ordering::Relaxed);
                let delay = self.retry.get(&i).map_or(RETRY_MIN, |(_, d)| *d);
                self.retry
                    .insert(i, (Instant::now() + delay, (delay * 2).min(RETRY_MAX)));
                tracing::error!(
                    subscription = %sub.topic,
                    reason = %why,
                    failures = sub.watch.suback_failures.load(Ordering::Relaxed),
                    retry_in_ms = delay.as_millis() as u64,
                    "broker refused the subscription (SUBACK failure); retrying"
                );
                if let Ok(mut g) = sub.watch.last_refusal.lock() {
                    *g = Some(why);
                }
            }
        }
    }

    /// Refused subscriptions due for another SUBSCRIBE at `now`.
    fn due(&mut self, now: Instant) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for (i, (at, _)) in self.retry.iter_mut() {
            if *at <= now {
                out.push(*i);
                // Not again before the SUBACK re-schedules it (or a minute, if none comes).
                *at = now + Duration::from_secs(60);
            }
        }
        out.sort_unstable();
        out
    }
}

/// What the watchdog may ask of the client (the protocol version's client behind closures).
pub struct Actions {
    /// Sends DISCONNECT, so the source's loop reconnects. False when it could not be queued.
    pub disconnect: Box<dyn Fn() -> bool + Send + Sync>,
    /// Queues the SUBSCRIBE of subscription `i` (and records it in the tracker).
    pub subscribe: Box<dyn Fn(usize) -> bool + Send + Sync>,
}

/// Queues the SUBSCRIBE of subscription `i` with `send` and records it in `tracker` (under
/// the tracker's lock, so the client cannot report it sent before it is recorded).
pub fn subscribe_with(
    tracker: &Tracker,
    i: usize,
    send: impl FnOnce() -> Result<(), String>,
) -> bool {
    let Ok(mut t) = tracker.lock() else {
        return false;
    };
    t.queued(i);
    match send() {
        Ok(()) => true,
        Err(e) => {
            t.queued.pop_back();
            // E.g. the client's request queue full of acknowledgements held over a reconnect:
            // the watchdog tries again (it must; without a session nothing else subscribes).
            let delay = t.retry.get(&i).map_or(QUEUE_RETRY, |(_, d)| *d);
            t.retry
                .insert(i, (Instant::now() + delay, (delay * 2).min(RETRY_MAX)));
            tracing::error!(subscription = i, error = %e, retry_in_ms = delay.as_millis() as u64, "mqtt subscribe could not be queued; retrying");
            false
        }
    }
}

/// Aborts the watchdog task when the source task ends (dropped with its future).
pub struct WatchGuard(tokio::task::JoinHandle<()>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the watchdog of a source; it runs until the guard is dropped.
pub fn spawn(status: Arc<SourceStatus>, tracker: Tracker, actions: Actions) -> WatchGuard {
    WatchGuard(tokio::spawn(run(status, tracker, actions)))
}

/// Per subscription, what the watchdog remembers between ticks.
#[derive(Clone, Copy)]
struct Seen {
    messages: u64,
    since: Instant,
    strikes: u32,
}

async fn run(status: Arc<SourceStatus>, tracker: Tracker, actions: Actions) {
    let start = Instant::now();
    let mut seen: Vec<Seen> = status
        .subscriptions
        .iter()
        .map(|s| Seen {
            messages: s.counters.messages.load(Ordering::Relaxed),
            since: start,
            strikes: 0,
        })
        .collect();
    let mut conns = status.connections.load(Ordering::Relaxed);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let now_unix = millwright_core::time::now_ns() / 1_000_000;
        let connected = status.connected.load(Ordering::Relaxed);
        let c = status.connections.load(Ordering::Relaxed);
        if c != conns {
            // A new connection: every window starts again.
            conns = c;
            for s in &mut seen {
                s.since = now;
            }
        }
        let mut reconnect = false;
        for (sub, s) in status.subscriptions.iter().zip(seen.iter_mut()) {
            let m = sub.counters.messages.load(Ordering::Relaxed);
            if m != s.messages {
                s.messages = m;
                s.since = now;
                s.strikes = 0;
                sub.watch
                    .last_message_unix_ms
                    .store(now_unix, Ordering::Relaxed);
                if sub.watch.silent.swap(false, Ordering::Relaxed) {
                    tracing::info!(subscription = %sub.topic, "mqtt subscription has messages again");
                }
                continue;
            }
            if sub.watch.window_ms == 0 || !connected {
                continue;
            }
            let window = Duration::from_millis(sub.watch.window_ms)
                * (1u32 << s.strikes.min(4)).min(SILENCE_BACKOFF_MAX);
            if now.duration_since(s.since) >= window {
                s.strikes = s.strikes.saturating_add(1);
                s.since = now;
                sub.watch.silent.store(true, Ordering::Relaxed);
                let n = sub.watch.silences.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    subscription = %sub.topic,
                    silent_for_ms = window.as_millis() as u64,
                    silences = n,
                    "mqtt subscription silent while connected; reconnecting and re-subscribing"
                );
                reconnect = true;
            }
        }
        if reconnect && !(actions.disconnect)() {
            tracing::error!("mqtt reconnect after a silent subscription could not be queued");
        }
        if connected {
            let due = tracker.lock().map(|mut t| t.due(now)).unwrap_or_default();
            for i in due {
                // A failure is logged and re-scheduled by `subscribe_with`.
                let _ = (actions.subscribe)(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_interval_times_factor_and_unwatched_without_an_interval() {
        assert_eq!(SubWatch::new(Some(2.0), 5).window_ms, 10_000);
        assert_eq!(SubWatch::new(Some(0.5), 3).window_ms, 1_500);
        assert_eq!(SubWatch::new(None, 5).window_ms, 0);
        assert_eq!(SubWatch::new(Some(f64::NAN), 5).window_ms, 0);
    }

    #[test]
    fn a_subscribe_that_could_not_be_queued_is_retried() {
        let t: Tracker = Arc::default();
        t.lock().unwrap().connected(false);
        assert!(!subscribe_with(&t, 0, || Err("request queue full".into())));
        let now = Instant::now();
        assert!(t.lock().unwrap().due(now).is_empty());
        assert_eq!(t.lock().unwrap().due(now + QUEUE_RETRY), vec![0]);
        // Queued on the retry and accepted: nothing more scheduled.
        assert!(subscribe_with(&t, 0, || Ok(())));
        let status = SourceStatus {
            subscriptions: vec![super::super::source::SubscriptionStatus::new(
                "a/#",
                SubWatch::default(),
            )],
            ..Default::default()
        };
        let mut g = t.lock().unwrap();
        g.outgoing(3);
        g.suback(3, None, &status);
        assert!(g.due(now + RETRY_MAX * 2).is_empty());
    }

    #[test]
    fn tracker_pins_a_refusal_on_its_subscription_and_schedules_a_retry() {
        let status = SourceStatus {
            subscriptions: vec![
                super::super::source::SubscriptionStatus::new("a/#", SubWatch::default()),
                super::super::source::SubscriptionStatus::new("b/#", SubWatch::default()),
            ],
            ..Default::default()
        };
        let mut t = SubTracker::default();
        t.connected(false);
        t.queued(0);
        t.queued(1);
        t.outgoing(7);
        t.outgoing(8);
        let a = &status.subscriptions[0].watch;
        let b = &status.subscriptions[1].watch;
        assert!(
            !a.subscribed.load(Ordering::Relaxed),
            "not before its SUBACK"
        );
        t.suback(7, None, &status);
        t.suback(8, Some("NotAuthorized (0x87)".into()), &status);
        assert!(a.subscribed.load(Ordering::Relaxed));
        assert!(!b.subscribed.load(Ordering::Relaxed), "refused");
        assert_eq!(b.suback_failures.load(Ordering::Relaxed), 1);
        assert_eq!(b.refusal().as_deref(), Some("NotAuthorized (0x87)"));
        assert!(status.subscriptions[0].watch.refusal().is_none());
        assert!(t.due(Instant::now()).is_empty());
        assert_eq!(t.due(Instant::now() + RETRY_MIN), vec![1]);
        // Accepted on the retry: no longer refused, nothing more scheduled.
        t.queued(1);
        t.outgoing(9);
        t.suback(9, None, &status);
        assert!(b.refusal().is_none());
        assert!(b.subscribed.load(Ordering::Relaxed));
        assert!(t.due(Instant::now() + RETRY_MAX * 2).is_empty());
    }
}
