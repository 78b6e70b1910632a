//! `[influxdb.outbox]`: where the disk outbox lives, its budget and what happens when it is full.
//!
//! Plain data and checks only; the outbox itself is in `store.rs`.

use millwright_core::ValidationError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the outbox does when its byte budget is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxPolicy {
    /// Stop taking data: the writer's inbox fills, the pipeline waits, the MQTT source stops
    /// reading, and the broker (QoS 1) and TCP hold the data. Nothing is dropped.
    #[default]
    BlockIngest,
    /// Drop the oldest batches (counted and logged) to make room for new ones.
    DropOldest,
}

/// The durable on-disk outbox between the pipeline and InfluxDB (`[influxdb.outbox]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Folder of the segment files. Relative paths are relative to the config file's folder;
    /// unset: `$STATE_DIRECTORY/outbox` (systemd) or `/var/lib/millwright/outbox`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Most bytes of undelivered data kept on disk.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Undelivered data older than this is dropped (counted), in seconds.
    #[serde(default = "default_max_age_s")]
    pub max_age_s: u64,
    /// What to do when `max_bytes` is reached.
    #[serde(default)]
    pub policy: OutboxPolicy,
    /// Replay rate after an outage, in points per second (live data goes first and is not
    /// limited). 0: unlimited.
    #[serde(default = "default_replay_points_per_s")]
    pub replay_points_per_s: u64,
    /// Size at which a segment file is closed and a new one started, in bytes.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
}

fn default_max_bytes() -> u64 {
    1 << 30
}
fn default_max_age_s() -> u64 {
    7 * 24 * 3600
}
fn default_replay_points_per_s() -> u64 {
    100_000
}
fn default_segment_bytes() -> u64 {
    64 << 20
}

impl OutboxConfig {
    /// Defaults in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            max_bytes: default_max_bytes(),
            max_age_s: default_max_age_s(),
            policy: OutboxPolicy::default(),
            replay_points_per_s: default_replay_points_per_s(),
            segment_bytes: default_segment_bytes(),
        }
    }

    /// Every problem in this section.
    pub fn validate(&self, prefix: &str) -> Vec<ValidationError> {
        let mut e = Vec::new();
        let p = |k: &str| format!("{prefix}.{k}");
        if self.max_bytes < 64 * 1024 {
            e.push(ValidationError::new(p("max_bytes"), "must be ≥ 65536"));
        }
        if self.max_age_s == 0 {
            e.push(ValidationError::new(p("max_age_s"), "must be > 0"));
        }
        if !(4096..=1 << 30).contains(&self.segment_bytes) {
            e.push(ValidationError::new(
                p("segment_bytes"),
                "must be 4096–1073741824",
            ));
        }
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            e.push(ValidationError::new(p("dir"), "is empty"));
        }
        e
    }

    /// The folder to use: `dir` resolved against `base` (the config file's folder), or the
    /// default (`state_dir`/outbox, else `/var/lib/millwright/outbox`).
    pub fn resolve_dir(&self, base: &std::path::Path, state_dir: Option<PathBuf>) -> PathBuf {
        match &self.dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => base.join(d),
            None => state_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/millwright"))
                .join("outbox"),
        }
    }
}
