//! The InfluxDB writer task: a thin async driver around the pure [`Backlog`]. It receives
//! readings and records, encodes them (`crate::line`), seals a batch every flush interval,
//! hands the backlog's next batch to `http.rs` (which writes it, splitting on 400/413) and
//! feeds the result back. Counters go to [`SinkStatus`].
//!
//! The task keeps receiving while a write is failing, so ingest, detection and the local store
//! never stall on the database. With `[influxdb.outbox]` the loop is `outbox/driver.rs`'s
//! instead (disk outbox, acknowledgements after storage, back-pressure under `block_ingest`);
//! both send through [`post`]. On [`InfluxWriter::close`] (or when every handle is gone) it
//! stops taking new data, writes what it holds — within the given deadline — and ends.
//! Batching, retry and drop rules live in `backlog.rs`, not here.

use super::answer::{Delivery, WriteErrors};
use super::backlog::{Backlog, BacklogLimits, Outcome, Request};
use super::config::InfluxConfig;
use super::http::HttpWriter;
use crate::line::{write_reading, write_record};
use millwright_core::{Reading, Record};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Counters of the writer, shared with health reporting.
#[derive(Debug, Default)]
pub struct SinkStatus {
    /// Points the database accepted.
    pub written_points: AtomicU64,
    /// Successful write requests.
    pub write_requests: AtomicU64,
    /// Failed write requests (each is retried).
    pub failed_requests: AtomicU64,
    /// Points dropped because the backlog was full (or left when a drain ran out of time).
    pub dropped_points: AtomicU64,
    /// Points rejected by the database as malformed (HTTP 400; not retried).
    pub rejected_points: AtomicU64,
    /// Points waiting to be written.
    pub backlog_points: AtomicU64,
    /// True while the last write succeeded.
    pub healthy: AtomicBool,
    /// Last write error.
    pub last_error: Mutex<Option<String>>,
    /// True when the disk outbox is on (the fields below are then live).
    pub outbox_enabled: AtomicBool,
    /// Bytes of undelivered records in the outbox.
    pub outbox_bytes: AtomicU64,
    /// Bytes of outbox segment files on disk.
    pub outbox_disk_bytes: AtomicU64,
    /// Append time (Unix ms) of the oldest undelivered record; 0 when empty.
    pub outbox_oldest_ms: AtomicU64,
    /// Torn records cut off when the outbox was opened (after a crash).
    pub outbox_torn_records: AtomicU64,
    /// Points recovered from the outbox at start.
    pub outbox_recovered_points: AtomicU64,
    /// Points replayed (throttled) after an outage.
    pub outbox_replayed_points: AtomicU64,
    /// Of `dropped_points`, those dropped for age (`max_age_s`).
    pub outbox_dropped_age_points: AtomicU64,
    /// True while the outbox is full under `block_ingest` (the node stops reading).
    pub outbox_blocking: AtomicBool,
    /// Times the outbox began blocking ingest.
    pub outbox_block_events: AtomicU64,
    /// Disk errors (append or sync failed; the data stays in memory, unacknowledged).
    pub outbox_io_errors: AtomicU64,
    /// Failed requests and rejected points by kind, and the `config_error` flag (`answer.rs`).
    pub errors: WriteErrors,
}

/// Called once the items it came with are durable in the outbox (or, without an outbox, on
/// receipt): the MQTT source acknowledges the message then.
pub type AckFn = Box<dyn FnOnce() + Send + 'static>;

/// What the writer task is sent.
pub enum SinkItem {
    /// Readings to write with the readings schema (the hot path: no conversion to records).
    Readings(Vec<Reading>),
    /// Readings whose source waits for them to be stored: `ack` runs once they are durable in
    /// the outbox (without an outbox: on receipt).
    ReadingsAcked(Vec<Reading>, AckFn),
    /// Anything else that leaves the node (anomaly events, cards, reports; readings too).
    Records(Vec<Record>),
    /// Stop taking data, write what is held within `deadline`, then end.
    Close {
        /// Longest time to spend writing the backlog.
        deadline: Duration,
    },
}

impl millwright_core::budget::ByteSize for SinkItem {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                Self::Readings(r) | Self::ReadingsAcked(r, _) => r.byte_size(),
                // Records are few (events, cards, reports): their size plus a guess of their text.
                Self::Records(r) => r.len() * (std::mem::size_of::<Record>() + 512),
                Self::Close { .. } => 0,
            }
    }
}

/// Default byte cap of the writer's inbox when none is given ([`InfluxWriter::spawn`]).
pub const DEFAULT_INBOX_BYTES: usize = 64 * 1024 * 1024;

impl std::fmt::Debug for SinkItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Readings(r) => write!(f, "Readings({})", r.len()),
            Self::ReadingsAcked(r, _) => write!(f, "ReadingsAcked({})", r.len()),
            Self::Records(r) => write!(f, "Records({})", r.len()),
            Self::Close { deadline } => write!(f, "Close({deadline:?})"),
        }
    }
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct InfluxWriter {
    tx: millwright_core::budget::Sender<SinkItem>,
    /// Shared counters.
    pub status: Arc<SinkStatus>,
}

/// Why the writer could not start, or could not take data.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The config is invalid.
    #[error("influxdb config: {0}")]
    Config(String),
    /// The writer task has stopped (or is closing).
    #[error("influxdb writer stopped")]
    Closed,
    /// The disk outbox could not be opened.
    #[error("influxdb outbox: {0}")]
    Outbox(String),
}

/// One batch being written.
type WriteFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Delivery> + Send>>;

impl InfluxWriter {
    /// Starts the writer task with an inbox of at most [`DEFAULT_INBOX_BYTES`]. `site` goes
    /// into every reading's `site` tag.
    pub fn spawn(cfg: InfluxConfig, site: String) -> Result<(Self, JoinHandle<()>), SinkError> {
        Self::spawn_with_inbox(
            cfg,
            site,
            millwright_core::budget::ByteBudget::new("writer_inbox", DEFAULT_INBOX_BYTES),
        )
    }

    /// Starts the writer task; its inbox holds at most 1024 items and `inbox`'s bytes (a full
    /// inbox makes writers wait).
    pub fn spawn_with_inbox(
        cfg: InfluxConfig,
        site: String,
        inbox: Arc<millwright_core::budget::ByteBudget>,
    ) -> Result<(Self, JoinHandle<()>), SinkError> {
        let errs = cfg.validate("influxdb");
        if let Some(e) = errs.first() {
            return Err(SinkError::Config(e.to_string()));
        }
        let client = HttpWriter::new(&cfg).map_err(SinkError::Config)?;
        for w in cfg.warnings("influxdb") {
            tracing::warn!("{w}");
        }
        let (tx, rx) = millwright_core::budget::channel(1024, inbox);
        let status = Arc::new(SinkStatus::default());
        let task = match &cfg.outbox {
            Some(oc) => {
                let dir = oc.resolve_dir(std::path::Path::new("."), None);
                let ob = super::outbox::Outbox::open(&dir, oc.clone())
                    .map_err(|e| SinkError::Outbox(e.to_string()))?;
                tracing::info!(dir = %dir.display(), pending_points = ob.pending_points(), torn_records = ob.counters().torn_records, "influxdb outbox open");
                status.outbox_enabled.store(true, Ordering::Relaxed);
                // What was recovered is visible before the task's first turn.
                let c = ob.counters();
                status
                    .backlog_points
                    .store(ob.pending_points(), Ordering::Relaxed);
                status
                    .outbox_bytes
                    .store(ob.pending_bytes(), Ordering::Relaxed);
                status
                    .outbox_recovered_points
                    .store(c.recovered_points, Ordering::Relaxed);
                status
                    .outbox_torn_records
                    .store(c.torn_records, Ordering::Relaxed);
                tokio::spawn(super::outbox::driver::run(
                    cfg,
                    site,
                    client,
                    rx,
                    status.clone(),
                    ob,
                ))
            }
            None => tokio::spawn(run(cfg, site, client, rx, status.clone())),
        };
        Ok((Self { tx, status }, task))
    }

    /// Queues readings (waits only if the task's small inbox is full).
    pub async fn write(&self, readings: Vec<Reading>) -> Result<(), SinkError> {
        self.send(SinkItem::Readings(readings)).await
    }

    /// Queues readings; `ack` runs once they are durable in the outbox (without an outbox: on
    /// receipt). Waits while the inbox is full (back-pressure under `block_ingest`).
    pub async fn write_acked(&self, readings: Vec<Reading>, ack: AckFn) -> Result<(), SinkError> {
        self.send(SinkItem::ReadingsAcked(readings, ack)).await
    }

    /// Queues records (anomaly events, cards, reports, readings).
    pub async fn write_records(&self, records: Vec<Record>) -> Result<(), SinkError> {
        self.send(SinkItem::Records(records)).await
    }

    /// Queues one record.
    pub async fn write_record(&self, record: Record) -> Result<(), SinkError> {
        self.send(SinkItem::Records(vec![record])).await
    }

    /// Queues one record without waiting (for threads outside the runtime); fails when the
    /// inbox is full or the writer is gone.
    pub fn try_write_record(&self, record: Record) -> Result<(), SinkError> {
        self.tx
            .try_send(SinkItem::Records(vec![record]))
            .map_err(|_| SinkError::Closed)
    }

    /// Asks the task to stop taking data and write what it holds within `deadline`. Data
    /// queued before this call is written first; later writes fail with [`SinkError::Closed`].
    /// Await the task's `JoinHandle` to know when it is done.
    pub async fn close(&self, deadline: Duration) -> Result<(), SinkError> {
        self.send(SinkItem::Close { deadline }).await
    }

    async fn send(&self, item: SinkItem) -> Result<(), SinkError> {
        self.tx.send(item).await.map_err(|_| SinkError::Closed)
    }
}

/// Copies the backlog's counters to the shared status (this task is their only writer).
fn publish(status: &SinkStatus, b: &Backlog) {
    let c = b.counters();
    status
        .written_points
        .store(c.written_points, Ordering::Relaxed);
    status
        .write_requests
        .store(c.write_requests, Ordering::Relaxed);
    status
        .failed_requests
        .store(c.failed_requests, Ordering::Relaxed);
    status
        .dropped_points
        .store(c.dropped_points, Ordering::Relaxed);
    status
        .rejected_points
        .store(c.rejected_points, Ordering::Relaxed);
    status
        .backlog_points
        .store(b.pending_points() as u64, Ordering::Relaxed);
}

async fn run(
    cfg: InfluxConfig,
    site: String,
    client: HttpWriter,
    mut rx: millwright_core::budget::Receiver<SinkItem>,
    status: Arc<SinkStatus>,
) {
    let mut backlog = Backlog::new(BacklogLimits {
        batch_size: cfg.batch_size,
        max_points: cfg.max_backlog_points,
        retry_min: Duration::from_millis(cfg.retry_min_ms),
        retry_max: Duration::from_millis(cfg.retry_max_ms),
    });
    let mut flush_tick = tokio::time::interval(Duration::from_millis(cfg.flush_interval_ms));
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    // Set by `Close`: when the drain must end.
    let mut drain_until: Option<Instant> = None;
    let mut drain_from = 0u64;
    let mut in_flight: Option<WriteFuture> = None;

    loop {
        let dropped = backlog.counters().dropped_points;
        publish(&status, &backlog);
        if in_flight.is_none() {
            if let Some(Request { body, .. }) = backlog.next_request(Instant::now().into_std()) {
                let (c, st) = (client.clone(), status.clone());
                in_flight = Some(Box::pin(async move { c.deliver(&body, &st.errors).await }));
            } else if !open && backlog.is_empty() {
                if drain_until.is_some() {
                    let written = backlog.counters().written_points - drain_from;
                    tracing::info!(written_points = written, "influxdb writer drained");
                }
                return;
            }
        }
        let retry_at = backlog.retry_at().map(Instant::from_std);
        // While writes succeed, a backlog 3/4 full stops taking from the inbox: the database
        // is up but slower than ingest, so the senders wait (the bus fills, MQTT stops reading,
        // the broker keeps the messages) instead of the oldest points being dropped. While
        // writes fail, the inbox is taken and the oldest points go (memory only, counted).
        let failing =
            backlog.counters().failed_requests > 0 && !status.healthy.load(Ordering::Relaxed);
        let room = failing || backlog.pending_points() < cfg.max_backlog_points / 4 * 3;
        tokio::select! {
            res = async { match in_flight.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => {
                in_flight = None;
                let now = Instant::now().into_std();
                let result = res.write_result();
                let outcome = backlog.on_result(result, now);
                match res {
                    Delivery::Done { rejected, .. } => {
                        status.errors.config_error.store(false, Ordering::Relaxed);
                        if !status.healthy.swap(true, Ordering::Relaxed) {
                            tracing::info!(url = %cfg.url, "influxdb writes succeeding");
                        }
                        if let Some(first) = rejected.first() {
                            let msg = format!("influxdb rejected {} point(s): {}", rejected.len(), first.reason);
                            tracing::error!(points = rejected.len(), reason = %first.reason, "influxdb rejected points; the rest of the batch was written");
                            if let Ok(mut g) = status.last_error.lock() {
                                *g = Some(msg);
                            }
                        }
                    }
                    Delivery::Failed { kind, message, .. } => {
                        if let Ok(mut g) = status.last_error.lock() {
                            *g = Some(message.clone());
                        }
                        let was = status.healthy.swap(false, Ordering::Relaxed);
                        let wait = match outcome {
                            Outcome::RetryIn(w) => w.as_millis() as u64,
                            _ => 0,
                        };
                        if kind.is_config() {
                            status.errors.config_error.store(true, Ordering::Relaxed);
                            tracing::error!(url = %cfg.url, kind = kind.as_str(), error = %message, retry_in_ms = wait, backlog_points = backlog.pending_points(), "influxdb refuses the node's writes until its configuration is fixed (token, org, bucket, certificate or url); the data waits");
                        } else {
                            tracing::warn!(url = %cfg.url, kind = kind.as_str(), error = %message, retry_in_ms = wait, backlog_points = backlog.pending_points(), first_failure = was, "influxdb write failed; will retry");
                        }
                    }
                }
            }
            item = rx.recv(), if open && room => match item {
                Some(SinkItem::Readings(rs)) => {
                    for r in &rs {
                        backlog.push_with(1, |b| usize::from(write_reading(b, &site, r)));
                    }
                }
                Some(SinkItem::ReadingsAcked(rs, ack)) => {
                    // No outbox: memory only, acknowledged on receipt.
                    for r in &rs {
                        backlog.push_with(1, |b| usize::from(write_reading(b, &site, r)));
                    }
                    ack();
                }
                Some(SinkItem::Records(recs)) => {
                    for r in &recs {
                        backlog.push_with(1, |b| usize::from(write_record(b, &site, r)));
                    }
                }
                Some(SinkItem::Close { deadline }) => {
                    // Take what was queued before the close, refuse anything later.
                    rx.close();
                    drain_until = Some(Instant::now() + deadline);
                    drain_from = backlog.counters().written_points;
                    tracing::info!(backlog_points = backlog.pending_points(), deadline_ms = deadline.as_millis() as u64, "influxdb writer closing: writing the backlog");
                }
                None => {
                    open = false;
                    backlog.flush();
                }
            },
            _ = flush_tick.tick() => {
                backlog.flush();
            }
            _ = async { match retry_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } }, if in_flight.is_none() => {}
            _ = async { match drain_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                let written = backlog.counters().written_points - drain_from;
                let left = backlog.abandon();
                publish(&status, &backlog);
                tracing::error!(written_points = written, lost_points = left, url = %cfg.url, "influxdb writer: drain deadline passed; points not written are lost");
                return;
            }
        }
        let now_dropped = backlog.counters().dropped_points;
        if now_dropped > dropped {
            tracing::error!(
                points = now_dropped - dropped,
                max_backlog_points = cfg.max_backlog_points,
                "influxdb unreachable and backlog full: dropped oldest points"
            );
        }
    }
}
