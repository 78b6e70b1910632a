//! Names the node writes and reads: InfluxDB measurements, tags and fields, MQTT topic parts.
//!
//! Every dashboard query and every sink uses these constants; change them only together with
//! `dashboards/` and the README's schema section.

/// Signal of the device status reading a source emits per device: `1` online, `0` offline,
/// good quality, empty unit, on the device's asset (the Modbus pollers emit it on every
/// change and on the first cycle). It is a reading like any other, so it is stored and
/// written with them; the analytics leave it out of reports.
pub const DEVICE_ONLINE_SIGNAL: &str = "device_online";

/// InfluxDB schema for readings: one measurement per signal, one field, the asset as a tag.
///
/// Line protocol: `<signal>,site=<site>,asset=<asset>,unit=<unit>,quality=<q> value=<v> <ts_ns>`.
/// VictoriaMetrics names such a series `<signal>_value{asset=…,site=…}`.
pub mod influx {
    /// Tag: the site name from the config.
    pub const TAG_SITE: &str = "site";
    /// Tag: the asset.
    pub const TAG_ASSET: &str = "asset";
    /// Tag: engineering unit symbol.
    pub const TAG_UNIT: &str = "unit";
    /// Tag: reading quality (`good`, `uncertain`, `bad`).
    pub const TAG_QUALITY: &str = "quality";
    /// Field holding a reading's value.
    pub const FIELD_VALUE: &str = "value";
    /// Measurement for the node's own counters (ingest, sinks, model).
    pub const MEASUREMENT_NODE_METRICS: &str = "millwright_node";
    /// Measurement for anomaly events (Grafana annotations).
    pub const MEASUREMENT_ANOMALY: &str = "millwright_anomaly";
    /// Measurement for maintenance reports.
    pub const MEASUREMENT_REPORT: &str = "millwright_report";
    /// Measurement for device status (online/offline).
    pub const MEASUREMENT_DEVICE_STATUS: &str = "millwright_device";
}

/// MQTT topics published by the node, relative to `<root>/<site>/`.
pub mod topics {
    /// Retained status with last will (`online` / `offline`).
    pub const STATUS: &str = "status";
    /// Alerts: `alerts/<asset>`.
    pub const ALERTS: &str = "alerts";
    /// Maintenance reports: `reports/<asset>`.
    pub const REPORTS: &str = "reports";
    /// Operator questions in.
    pub const ASK: &str = "ask";
    /// Answers out: `answers/<request id>`.
    pub const ANSWERS: &str = "answers";
}
