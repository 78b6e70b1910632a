//! The InfluxDB writer's loop when the disk outbox is on.
//!
//! Each round takes every item waiting in the inbox (up to [`ROUND_ITEMS`]), encodes it into
//! records of at most `batch_size` points, appends them, makes them durable with one fsync
//! (group commit) and only then runs the items' acknowledgements — so the MQTT source
//! acknowledges a message only once its readings are on disk. Sending runs beside it: one
//! request at a time, oldest first (after an outage: live data first, the backlog throttled;
//! see `store.rs`), retried with exponential back-off; a record leaves the outbox only when
//! the database accepted it (or rejected it as malformed, counted).
//!
//! Back-pressure: under `block_ingest`, while the outbox is full the loop stops taking from
//! its bounded inbox, so the pipeline waits and the MQTT source stops reading. A failed append
//! or fsync keeps the data and its acknowledgements in memory and stops intake until a retry
//! succeeds. Log lines (slow / rejecting / unreachable / full) are rate-limited.

use super::store::{OutRequest, Outbox};
use super::OutboxPolicy;
use crate::influx::answer::Delivery;
use crate::influx::backlog::BacklogCounters;
use crate::influx::config::InfluxConfig;
use crate::influx::http::HttpWriter;
use crate::influx::writer::{AckFn, SinkItem, SinkStatus};
use crate::line::{write_reading, write_record};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Most inbox items taken in one round (bounds the memory of one group commit).
pub const ROUND_ITEMS: usize = 4096;
const LOG_EVERY: Duration = Duration::from_secs(10);

type Send = Pin<Box<dyn Future<Output = Delivery> + std::marker::Send>>;

/// At most one line per [`LOG_EVERY`]; the suppressed ones are counted into the next.
#[derive(Default)]
struct Gate {
    last: Option<Instant>,
    suppressed: u64,
}

impl Gate {
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

fn now_ms() -> u64 {
    u64::try_from(millwright_core::time::now_ns() / 1_000_000).unwrap_or(0)
}

/// Items received but not yet durable: encoded chunks and their acknowledgements.
struct Intake {
    batch_size: usize,
    site: String,
    open: String,
    open_points: usize,
    chunks: VecDeque<(String, u32)>,
    acks: Vec<AckFn>,
}

impl Intake {
    fn seal(&mut self) {
        if self.open_points > 0 {
            let body = std::mem::take(&mut self.open);
            self.chunks
                .push_back((body, u32::try_from(self.open_points).unwrap_or(u32::MAX)));
            self.open_points = 0;
        }
    }

    fn add(&mut self, n: usize) {
        self.open_points += n;
        if self.open_points >= self.batch_size {
            self.seal();
        }
    }

    /// Encodes one item; returns false for `Close`.
    fn take(&mut self, item: SinkItem) -> Option<Duration> {
        match item {
            SinkItem::Readings(rs) => {
                for r in &rs {
                    let n = usize::from(write_reading(&mut self.open, &self.site, r));
                    self.add(n);
                }
            }
            SinkItem::ReadingsAcked(rs, ack) => {
                for r in &rs {
                    let n = usize::from(write_reading(&mut self.open, &self.site, r));
                    self.add(n);
                }
                self.acks.push(ack);
            }
            SinkItem::Records(recs) => {
                for r in &recs {
                    let n = usize::from(write_record(&mut self.open, &self.site, r));
                    self.add(n);
                }
            }
            SinkItem::Close { deadline } => return Some(deadline),
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.open_points == 0 && self.chunks.is_empty() && self.acks.is_empty()
    }

    /// Appends every chunk, syncs once, then runs the acknowledgements in order.
    fn commit(&mut self, ob: &mut Outbox) -> std::io::Result<()> {
        self.seal();
        let t = now_ms();
        while let Some((body, points)) = self.chunks.front() {
            ob.append(body.as_bytes(), *points, t)?;
            self.chunks.pop_front();
        }
        ob.sync()?;
        for a in self.acks.drain(..) {
            a();
        }
        Ok(())
    }
}

fn publish(status: &SinkStatus, ob: &Outbox, c: &BacklogCounters) {
    let oc = ob.counters();
    let r = Ordering::Relaxed;
    status.written_points.store(c.written_points, r);
    status.write_requests.store(c.write_requests, r);
    status.failed_requests.store(c.failed_requests, r);
    status.rejected_points.store(c.rejected_points, r);
    status.dropped_points.store(oc.dropped_points, r);
    status.backlog_points.store(ob.pending_points(), r);
    status.outbox_bytes.store(ob.pending_bytes(), r);
    status.outbox_disk_bytes.store(ob.disk_bytes(), r);
    status
        .outbox_oldest_ms
        .store(ob.oldest_ms().unwrap_or(0), r);
    status.outbox_torn_records.store(oc.torn_records, r);
    status.outbox_recovered_points.store(oc.recovered_points, r);
    status.outbox_replayed_points.store(oc.replayed_points, r);
    status
        .outbox_dropped_age_points
        .store(oc.dropped_age_points, r);
}

async fn sleep_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The writer task with the outbox (see the module doc).
pub(crate) async fn run(
    cfg: InfluxConfig,
    site: String,
    client: HttpWriter,
    mut rx: millwright_core::budget::Receiver<SinkItem>,
    status: Arc<SinkStatus>,
    mut ob: Outbox,
) {
    let retry_min = Duration::from_millis(cfg.retry_min_ms);
    let retry_max = Duration::from_millis(cfg.retry_max_ms);
    let mut retry_delay = retry_min;
    let mut retry_at: Option<Instant> = None;
    let mut counters = BacklogCounters::default();
    let mut intake = Intake {
        batch_size: cfg.batch_size,
        site,
        open: String::new(),
        open_points: 0,
        chunks: VecDeque::new(),
        acks: Vec::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.flush_interval_ms.min(1000)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    let mut drain_until: Option<Instant> = None;
    let mut in_flight: Option<(Send, OutRequest)> = None;
    let mut failing = false;
    let mut io_failed = false;
    let (mut g_fail, mut g_full, mut g_slow, mut g_io) = (
        Gate::default(),
        Gate::default(),
        Gate::default(),
        Gate::default(),
    );
    let mut last_pending = ob.pending_points();
    loop {
        publish(&status, &ob, &counters);
        let now = Instant::now();
        if in_flight.is_none() && retry_at.is_none_or(|t| now >= t) {
            retry_at = None;
            match ob.next_request(cfg.batch_size, now.into_std()) {
                Ok(Some(mut req)) => {
                    let body = std::mem::take(&mut req.body);
                    let (c, st) = (client.clone(), status.clone());
                    let fut: Send = Box::pin(async move { c.deliver(&body, &st.errors).await });
                    in_flight = Some((fut, req));
                }
                Ok(None) => {}
                Err(e) => {
                    status.outbox_io_errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(sup) = g_io.allow() {
                        tracing::error!(error = %e, suppressed = sup, "influxdb outbox: cannot read a batch back; retrying");
                    }
                    retry_at = Some(now + retry_max);
                }
            }
        }
        if !open && in_flight.is_none() && intake.is_empty() && ob.pending_points() == 0 {
            if drain_until.is_some() {
                tracing::info!(
                    written_points = counters.written_points,
                    "influxdb writer drained (outbox empty)"
                );
            }
            return;
        }
        let full = ob.policy() == OutboxPolicy::BlockIngest && ob.is_full();
        if full != status.outbox_blocking.swap(full, Ordering::Relaxed) && full {
            status.outbox_block_events.fetch_add(1, Ordering::Relaxed);
            if let Some(sup) = g_full.allow() {
                tracing::warn!(
                    outbox_bytes = ob.pending_bytes(),
                    max_bytes = cfg.outbox.as_ref().map_or(0, |o| o.max_bytes),
                    suppressed = sup,
                    "influxdb outbox full: blocking ingest (the broker holds the data)"
                );
            }
        }
        let accepting = open && !full && !io_failed;
        let replay_at = match (&in_flight, retry_at) {
            (None, None) => ob.replay_wait(cfg.batch_size).map(|d| now + d),
            _ => None,
        };
        tokio::select! {
            res = async { match in_flight.as_mut() { Some((f, _)) => f.await, None => std::future::pending().await } } => {
                let Some((_, req)) = in_flight.take() else { continue };
                match res {
                    Delivery::Done { rejected, .. } => {
                        // Written, apart from the points the database refused for good (isolated
                        // by splitting, counted by reason): the record leaves the outbox.
                        ob.on_ok(&req);
                        let bad = rejected.len().min(req.points);
                        counters.written_points += (req.points - bad) as u64;
                        counters.rejected_points += bad as u64;
                        counters.write_requests += 1;
                        retry_delay = retry_min;
                        status.errors.config_error.store(false, Ordering::Relaxed);
                        if let Some(first) = rejected.first() {
                            let msg = format!("influxdb rejected {} point(s): {}", rejected.len(), first.reason);
                            tracing::error!(points = rejected.len(), reason = %first.reason, "influxdb rejected points; the rest of the batch was written");
                            if let Ok(mut g) = status.last_error.lock() {
                                *g = Some(msg);
                            }
                        }
                        if failing {
                            failing = false;
                            ob.on_recovered();
                            tracing::info!(url = %cfg.url, outbox_points = ob.pending_points(), "influxdb writes succeeding again; replaying the outbox behind live data");
                        }
                        status.healthy.store(true, Ordering::Relaxed);
                    }
                    Delivery::Failed { kind, message, after } => {
                        ob.on_retry(&req);
                        counters.failed_requests += 1;
                        failing = true;
                        status.healthy.store(false, Ordering::Relaxed);
                        if let Ok(mut g) = status.last_error.lock() {
                            *g = Some(message.clone());
                        }
                        // The server's Retry-After is honoured as given; otherwise back off.
                        let wait = match after {
                            Some(d) => d,
                            None => {
                                let w = retry_delay;
                                retry_delay = (retry_delay * 2).min(retry_max);
                                w
                            }
                        };
                        retry_at = Some(Instant::now() + wait);
                        if kind.is_config() {
                            status.errors.config_error.store(true, Ordering::Relaxed);
                            if let Some(sup) = g_fail.allow() {
                                tracing::error!(url = %cfg.url, kind = kind.as_str(), error = %message, retry_in_ms = wait.as_millis() as u64, outbox_points = ob.pending_points(), suppressed = sup, "influxdb refuses the node's writes until its configuration is fixed (token, org, bucket, certificate or url); the data waits in the outbox");
                            }
                        } else if let Some(sup) = g_fail.allow() {
                            tracing::warn!(url = %cfg.url, kind = kind.as_str(), error = %message, retry_in_ms = wait.as_millis() as u64, outbox_points = ob.pending_points(), suppressed = sup, "influxdb write failed; data waits in the outbox");
                        }
                    }
                }
            }
            item = rx.recv(), if accepting => {
                let mut item = item;
                let mut n = 0;
                loop {
                    match item {
                        Some(it) => {
                            if let Some(deadline) = intake.take(it) {
                                rx.close();
                                drain_until = Some(Instant::now() + deadline);
                                tracing::info!(outbox_points = ob.pending_points(), deadline_ms = deadline.as_millis() as u64, "influxdb writer closing: writing the outbox");
                            }
                        }
                        None => {
                            open = false;
                            break;
                        }
                    }
                    n += 1;
                    if n >= ROUND_ITEMS {
                        break;
                    }
                    item = match rx.try_recv() {
                        Ok(it) => Some(it),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    };
                }
                if let Err(e) = intake.commit(&mut ob) {
                    io_failed = true;
                    status.outbox_io_errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(sup) = g_io.allow() {
                        tracing::error!(error = %e, suppressed = sup, "influxdb outbox: cannot store data; intake stopped, unacknowledged data waits (retrying)");
                    }
                }
                let dropped = ob.enforce(now_ms());
                if dropped > 0 {
                    if let Some(sup) = g_full.allow() {
                        tracing::error!(points = dropped, total_dropped = ob.counters().dropped_points, suppressed = sup, "influxdb outbox full (drop_oldest): dropped the oldest points");
                    }
                }
            }
            _ = tick.tick() => {
                if io_failed {
                    match intake.commit(&mut ob) {
                        Ok(()) => {
                            io_failed = false;
                            tracing::info!("influxdb outbox: storing data again");
                        }
                        Err(_) => {
                            status.outbox_io_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let dropped = ob.enforce(now_ms());
                if dropped > 0 {
                    tracing::error!(points = dropped, "influxdb outbox: dropped points older than max_age_s");
                }
                let pending = ob.pending_points();
                if !failing && pending > last_pending && pending > 2 * cfg.batch_size as u64 {
                    if let Some(sup) = g_slow.allow() {
                        tracing::warn!(outbox_points = pending, suppressed = sup, "influxdb slow: data arrives faster than the database takes it; the outbox absorbs it");
                    }
                }
                last_pending = pending;
            }
            _ = sleep_opt(retry_at), if in_flight.is_none() && retry_at.is_some() => {}
            _ = sleep_opt(replay_at), if replay_at.is_some() => {}
            _ = sleep_opt(drain_until), if drain_until.is_some() => {
                if let Err(e) = intake.commit(&mut ob) {
                    tracing::error!(error = %e, "influxdb outbox: could not store the last data at shutdown");
                }
                publish(&status, &ob, &counters);
                tracing::info!(outbox_points = ob.pending_points(), "influxdb writer: drain deadline passed; the rest stays in the outbox for the next start");
                return;
            }
        }
    }
}
