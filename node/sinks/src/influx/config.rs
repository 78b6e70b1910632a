//! The `[influxdb]` section: endpoint, batching, retry and backlog bounds, and their validation.
//!
//! Plain data and checks only; the writer that uses it is in `writer.rs`.

use millwright_core::{Secret, ValidationError};
use serde::{Deserialize, Serialize};

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
    /// The durable disk outbox (`[influxdb.outbox]`); without it the backlog is memory only
    /// and MQTT messages are acknowledged on receipt.
    #[serde(default)]
    pub outbox: Option<super::outbox::OutboxConfig>,
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
            outbox: None,
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
        if let Some(o) = &self.outbox {
            e.extend(o.validate(&p("outbox")));
        }
        e
    }
}
