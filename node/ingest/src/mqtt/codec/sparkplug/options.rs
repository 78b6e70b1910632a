//! `[mqtt.subscriptions.sparkplug]`: how a Sparkplug B subscription names assets and signals,
//! and how it asks for rebirths. Shape, defaults and validation only.

use serde::{Deserialize, Serialize};

/// Where readings of a Sparkplug B subscription get their asset and signal
/// (`[mqtt.subscriptions.sparkplug]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SparkplugOptions {
    /// `device` (default: a device's metrics belong to the device id, the edge node's own to
    /// the edge node id), `edge_node_device` (`<edge node>/<device>`), or `metric_folder` (the
    /// first `folder_levels` levels of a folder-style metric name, `Pump/Bearing/Temp` →
    /// asset `Pump`, signal `Bearing/Temp`; shorter names fall back to `device`).
    #[serde(default)]
    pub asset: AssetFrom,
    /// Metric-name levels that form the asset with `asset = "metric_folder"` (≥ 1).
    #[serde(default = "default_folder_levels")]
    pub folder_levels: usize,
    /// Answer a sequence gap or DATA before BIRTH with `NCMD` `Node Control/Rebirth`.
    #[serde(default = "default_true")]
    pub request_rebirth: bool,
    /// At most one rebirth request per edge node in this many seconds.
    #[serde(default = "default_rebirth_interval_s")]
    pub rebirth_min_interval_s: u64,
}

/// See [`SparkplugOptions::asset`].
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AssetFrom {
    /// Device id (edge node id for the node's own metrics).
    #[default]
    Device,
    /// `<edge node>/<device>` (edge node id for the node's own metrics).
    EdgeNodeDevice,
    /// The leading levels of the metric name.
    MetricFolder,
}

fn default_folder_levels() -> usize {
    1
}
fn default_true() -> bool {
    true
}
fn default_rebirth_interval_s() -> u64 {
    10
}

impl Default for SparkplugOptions {
    fn default() -> Self {
        Self {
            asset: AssetFrom::default(),
            folder_levels: default_folder_levels(),
            request_rebirth: true,
            rebirth_min_interval_s: default_rebirth_interval_s(),
        }
    }
}

impl SparkplugOptions {
    /// Problems of this section, paths under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<millwright_core::ValidationError> {
        let mut e = Vec::new();
        if self.asset == AssetFrom::MetricFolder && self.folder_levels == 0 {
            e.push(millwright_core::ValidationError::new(
                format!("{prefix}.folder_levels"),
                "must be ≥ 1 with asset = \"metric_folder\"",
            ));
        }
        if self.rebirth_min_interval_s > 86_400 {
            e.push(millwright_core::ValidationError::new(
                format!("{prefix}.rebirth_min_interval_s"),
                "must be 0–86400 (seconds)",
            ));
        }
        e
    }
}
