//! InfluxDB 2 writer: batches readings (and pre-formatted lines from other components) into
//! line-protocol bodies and writes them with the influxdb2 client (gzip, rustls).
//!
//! The writer task keeps receiving while a write is failing: failed batches wait in a bounded
//! backlog and are retried oldest first with exponential back-off, so ingest, detection and the
//! local store never stall on the database. Only when the backlog exceeds `max_backlog_points`
//! are the oldest batches dropped — counted in `dropped_points` and logged as an error.
//! (Store-and-forward to disk lifts that limit; see the outbox in `millwright-store`.)

use crate::line::write_reading;
use futures::stream;
use millwright_core::{Reading, Secret, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// InfluxDB 2 connection and batching (`[influxdb]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086` (https for TLS).
    pub url: String,
    /// Organisation name.
    pub org: String,
    /// Bucket to write into.
    pub bucket: String,
    /// API token (never logged). Empty for servers without auth.
    #[serde(default)]
    pub token: Secret,
    /// Points per write request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest time a point waits before its batch is written, in ms.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Compress request bodies with gzip.
    #[serde(default = "default_true")]
    pub gzip: bool,
    /// Timeout of one write request, in ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// First retry delay after a failed write, in ms (doubles up to `retry_max_ms`).
    #[serde(default = "default_retry_min_ms")]
    pub retry_min_ms: u64,
    /// Longest retry delay, in ms.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Most points held in memory while the database is unreachable.
    #[serde(default = "default_max_backlog_points")]
    pub max_backlog_points: usize,
}

fn default_batch_size() -> usize {
    5_000
}
fn default_flush_interval_ms() -> u64 {
    1_000
}
fn default_true() -> bool {
    true
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_retry_min_ms() -> u64 {
    500
}
fn default_retry_max_ms() -> u64 {
    30_000
}
fn default_max_backlog_points() -> usize {
    1_000_000
}

impl InfluxConfig {
    /// A config with defaults for everything but the endpoint.
    pub fn new(url: &str, org: &str, bucket: &str, token: &str) -> Self {
        Self {
            url: url.into(),
            org: org.into(),
            bucket: bucket.into(),
            token: Secret::new(token),
            batch_size: default_batch_size(),
            flush_interval_ms: default_flush_interval_ms(),
            gzip: true,
            timeout_ms: default_timeout_ms(),
            retry_min_ms: default_retry_min_ms(),
            retry_max_ms: default_retry_max_ms(),
            max_backlog_points: default_max_backlog_points(),
        }
    }

    /// Every problem in this section.
    pub fn validate(&self, prefix: &str) -> Vec<ValidationError> {
        let mut e = Vec::new();
        let p = |k: &str| format!("{prefix}.{k}");
        match url::Url::parse(&self.url) {
            Err(err) => e.push(ValidationError::new(
                p("url"),
                format!("`{}` is not a URL: {err}", self.url),
            )),
            Ok(u) => {
                if !matches!(u.scheme(), "http" | "https") {
                    e.push(ValidationError::new(
                        p("url"),
                        format!("scheme `{}` is not http or https", u.scheme()),
                    ));
                }
                if u.host_str().is_none_or(str::is_empty) {
                    e.push(ValidationError::new(p("url"), "has no host"));
                }
            }
        }
        if self.org.trim().is_empty() {
            e.push(ValidationError::new(p("org"), "is empty"));
        }
        if self.bucket.trim().is_empty() {
            e.push(ValidationError::new(p("bucket"), "is empty"));
        }
        if !(1..=1_000_000).contains(&self.batch_size) {
            e.push(ValidationError::new(p("batch_size"), "must be 1–1000000"));
        }
        if self.flush_interval_ms == 0 {
            e.push(ValidationError::new(p("flush_interval_ms"), "must be > 0"));
        }
        if self.timeout_ms == 0 {
            e.push(ValidationError::new(p("timeout_ms"), "must be > 0"));
        }
        if self.retry_min_ms == 0 || self.retry_min_ms > self.retry_max_ms {
            e.push(ValidationError::new(
                p("retry_min_ms"),
                "must be > 0 and ≤ retry_max_ms",
            ));
        }
        if self.max_backlog_points < self.batch_size {
            e.push(ValidationError::new(
                p("max_backlog_points"),
                "must be ≥ batch_size",
            ));
        }
        e
    }
}

/// Counters of the writer, shared with health reporting.
#[derive(Debug, Default)]
pub struct SinkStatus {
    /// Points the database accepted.
    pub written_points: AtomicU64,
    /// Successful write requests.
    pub write_requests: AtomicU64,
    /// Failed write requests (each is retried).
    pub failed_requests: AtomicU64,
    /// Points dropped because the backlog was full.
    pub dropped_points: AtomicU64,
    /// Points rejected by the database as malformed (HTTP 400; not retried).
    pub rejected_points: AtomicU64,
    /// Points waiting to be written.
    pub backlog_points: AtomicU64,
    /// True while the last write succeeded.
    pub healthy: AtomicBool,
    /// Last write error.
    pub last_error: Mutex<Option<String>>,
}

/// What the writer task is sent.
#[derive(Debug)]
pub enum SinkItem {
    /// Readings to format with the readings schema.
    Readings(Vec<Reading>),
    /// Ready line protocol (ending in `\n`) and the number of points in it.
    Lines(String, usize),
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct InfluxWriter {
    tx: mpsc::Sender<SinkItem>,
    /// Shared counters.
    pub status: Arc<SinkStatus>,
}

/// Why the writer could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The config is invalid.
    #[error("influxdb config: {0}")]
    Config(String),
    /// The writer task has stopped.
    #[error("influxdb writer stopped")]
    Closed,
}

/// Pre-formatted line protocol as one "data point" for the influxdb2 client's streaming,
/// gzip-compressing write.
struct Body(Chunk);

/// Shared body bytes (cheap to clone for retries).
type Chunk = Arc<String>;

/// One write request in flight.
type WriteFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), influxdb2::RequestError>> + Send>,
>;

impl influxdb2::models::WriteDataPoint for Body {
    fn write_data_point_to<W: io::Write>(&self, mut w: W) -> io::Result<()> {
        w.write_all(self.0.as_bytes())
    }
}

impl InfluxWriter {
    /// Starts the writer task. `site` goes into every reading's `site` tag.
    pub fn spawn(cfg: InfluxConfig, site: String) -> Result<(Self, JoinHandle<()>), SinkError> {
        let errs = cfg.validate("influxdb");
        if let Some(e) = errs.first() {
            return Err(SinkError::Config(e.to_string()));
        }
        let http = influxdb2::ClientBuilder::with_builder(
            reqwest_builder(cfg.timeout_ms),
            cfg.url.clone(),
            cfg.org.clone(),
            cfg.token.expose(),
        );
        let http = if cfg.gzip { http.gzip(true) } else { http };
        let client = http
            .build()
            .map_err(|e| SinkError::Config(format!("influxdb client: {e}")))?;
        let (tx, rx) = mpsc::channel(1024);
        let status = Arc::new(SinkStatus::default());
        let task = tokio::spawn(run(cfg, site, client, rx, status.clone()));
        Ok((Self { tx, status }, task))
    }

    /// Queues readings (waits only if the task's small inbox is full).
    pub async fn write(&self, readings: Vec<Reading>) -> Result<(), SinkError> {
        self.tx
            .send(SinkItem::Readings(readings))
            .await
            .map_err(|_| SinkError::Closed)
    }

    /// Queues pre-formatted line protocol holding `points` points.
    pub async fn write_lines(&self, lines: String, points: usize) -> Result<(), SinkError> {
        self.tx
            .send(SinkItem::Lines(lines, points))
            .await
            .map_err(|_| SinkError::Closed)
    }
}

fn reqwest_builder(timeout_ms: u64) -> reqwest::ClientBuilder {
    reqwest::ClientBuilder::new()
        .timeout(Duration::from_millis(timeout_ms))
        .no_proxy()
}

async fn run(
    cfg: InfluxConfig,
    site: String,
    client: influxdb2::Client,
    mut rx: mpsc::Receiver<SinkItem>,
    status: Arc<SinkStatus>,
) {
    let mut buf = String::with_capacity(cfg.batch_size * 96);
    let mut buf_points = 0usize;
    let mut backlog: VecDeque<(Chunk, usize)> = VecDeque::new();
    let mut backlog_points = 0usize;
    let flush_every = Duration::from_millis(cfg.flush_interval_ms);
    let mut flush_tick = tokio::time::interval(flush_every);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let retry_min = Duration::from_millis(cfg.retry_min_ms);
    let mut retry_delay = retry_min;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut open = true;
    let mut in_flight: Option<WriteFuture> = None;

    loop {
        // Move a full buffer to the backlog.
        let seal = |buf: &mut String,
                    buf_points: &mut usize,
                    backlog: &mut VecDeque<(Chunk, usize)>,
                    backlog_points: &mut usize| {
            if *buf_points > 0 {
                let body = std::mem::replace(buf, String::with_capacity(cfg.batch_size * 96));
                backlog.push_back((Arc::new(body), *buf_points));
                *backlog_points += *buf_points;
                *buf_points = 0;
            }
        };
        if buf_points >= cfg.batch_size {
            seal(&mut buf, &mut buf_points, &mut backlog, &mut backlog_points);
        }
        while backlog_points > cfg.max_backlog_points && backlog.len() > 1 {
            if let Some((_, n)) = backlog.pop_front() {
                backlog_points -= n;
                status.dropped_points.fetch_add(n as u64, Ordering::Relaxed);
                tracing::error!(
                    points = n,
                    max_backlog_points = cfg.max_backlog_points,
                    "influxdb unreachable and backlog full: dropped oldest points"
                );
            }
        }
        status
            .backlog_points
            .store((backlog_points + buf_points) as u64, Ordering::Relaxed);
        let can_send = retry_at.is_none_or(|t| tokio::time::Instant::now() >= t);
        if in_flight.is_none() && can_send {
            if let Some((body, _)) = backlog.front() {
                let c = client.clone();
                let bucket = cfg.bucket.clone();
                let body = body.clone();
                in_flight = Some(Box::pin(async move {
                    c.write(&bucket, stream::iter([Body(body)])).await
                }));
            } else if !open {
                return;
            }
        }
        tokio::select! {
            res = async { match in_flight.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => {
                in_flight = None;
                match res {
                    Ok(()) => {
                        if let Some((_, n)) = backlog.pop_front() {
                            backlog_points -= n;
                            status.written_points.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        status.write_requests.fetch_add(1, Ordering::Relaxed);
                        if !status.healthy.swap(true, Ordering::Relaxed) {
                            tracing::info!(url = %cfg.url, "influxdb writes succeeding");
                        }
                        retry_delay = retry_min;
                        retry_at = None;
                    }
                    Err(e) => {
                        status.failed_requests.fetch_add(1, Ordering::Relaxed);
                        let msg = e.to_string();
                        if let Ok(mut g) = status.last_error.lock() { *g = Some(msg.clone()); }
                        let client_error = matches!(&e, influxdb2::RequestError::Http { status, .. } if status.as_u16() == 400);
                        if client_error {
                            // The server says the data is malformed: retrying cannot help.
                            if let Some((_, n)) = backlog.pop_front() {
                                backlog_points -= n;
                                status.rejected_points.fetch_add(n as u64, Ordering::Relaxed);
                            }
                            tracing::error!(error = %msg, "influxdb rejected a batch as malformed");
                        } else {
                            let was = status.healthy.swap(false, Ordering::Relaxed);
                            tracing::warn!(url = %cfg.url, error = %msg, retry_in_ms = retry_delay.as_millis() as u64, backlog_points, first_failure = was, "influxdb write failed; will retry");
                            retry_at = Some(tokio::time::Instant::now() + retry_delay);
                            retry_delay = (retry_delay * 2).min(Duration::from_millis(cfg.retry_max_ms));
                        }
                    }
                }
            }
            item = rx.recv(), if open => {
                match item {
                    Some(SinkItem::Readings(rs)) => {
                        for r in &rs {
                            if write_reading(&mut buf, &site, r) {
                                buf_points += 1;
                            }
                        }
                    }
                    Some(SinkItem::Lines(l, n)) => {
                        buf.push_str(&l);
                        if !l.ends_with('\n') { buf.push('\n'); }
                        buf_points += n;
                    }
                    None => {
                        open = false;
                        seal(&mut buf, &mut buf_points, &mut backlog, &mut backlog_points);
                    }
                }
            }
            _ = flush_tick.tick() => {
                seal(&mut buf, &mut buf_points, &mut backlog, &mut backlog_points);
            }
            _ = async { match retry_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } }, if in_flight.is_none() => {
                retry_at = None;
            }
        }
    }
}
