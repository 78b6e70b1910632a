//! [`Record`]: what leaves the node — a reading, an anomaly event, an incident, an explanation
//! card or a maintenance report with its Markdown, or a sample of the node's own metrics.
//!
//! Plain data built from core's own types, so that every sink (the InfluxDB writer, the MQTT
//! publisher) takes one type. Nothing here encodes or writes: the line-protocol encoder lives in
//! `millwright-sinks` (`line.rs`), the names it writes in [`crate::schema`].

use crate::anomaly::{Anomaly, ExplanationCard, MaintenanceReport};
use crate::incident::Incident;
use crate::reading::Reading;

/// One thing the node writes out.
///
/// The large variants are boxed, so a `Vec<Record>` of readings stays compact.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A sensor reading.
    Reading(Reading),
    /// A phase of an anomaly event (opened, updated, closed).
    Anomaly(Box<Anomaly>),
    /// A phase of an incident (opened, updated, closed).
    Incident(Box<Incident>),
    /// The explanation card of an anomaly event or incident.
    Card(Box<ExplanationCard>),
    /// A maintenance report of one asset.
    Report(Box<ReportRecord>),
    /// One sample of the node's own metrics with one label set (measurement `millwright_node`).
    NodeMetrics(Box<NodeMetricsPoint>),
    /// A profiled signal's normal range and hard limits (measurement `millwright_limits`).
    Limits(Box<SignalLimits>),
}

/// A profiled signal's normal range and hard limits, as the profile states them.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalLimits {
    /// The sensor.
    pub sensor: crate::SensorId,
    /// Its unit symbol (may be empty).
    pub unit: String,
    /// Normal operating range `[low, high]`.
    pub normal: Option<[f64; 2]>,
    /// Hard limits.
    pub limits: crate::Limits,
    /// Sample time, ns since the epoch.
    pub ts_ns: i64,
}

/// A sample of the node's own metrics sharing one label set: the measurement is
/// [`crate::schema::influx::MEASUREMENT_NODE_METRICS`], the site tag is added by the writer,
/// field names come from [`crate::schema::node_metrics::influx_field`].
#[derive(Clone, Debug, PartialEq)]
pub struct NodeMetricsPoint {
    /// Labels as tags (`device`, `subscription`, `reason`); empty values are left out.
    pub tags: Vec<(&'static str, String)>,
    /// Field name and value.
    pub fields: Vec<(&'static str, f64)>,
    /// Sample time, ns since the epoch.
    pub ts_ns: i64,
}

/// A maintenance report as it leaves the node: the report, its Markdown and when it was made.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRecord {
    /// The report.
    pub report: MaintenanceReport,
    /// The report as Markdown (what people read).
    pub markdown: String,
    /// When the report was made, ns since the epoch (the report's own times are RFC 3339 text).
    pub ts_ns: i64,
}

impl Record {
    /// A report record.
    pub fn report(report: MaintenanceReport, markdown: String, ts_ns: i64) -> Self {
        Record::Report(Box::new(ReportRecord {
            report,
            markdown,
            ts_ns,
        }))
    }

    /// The record's time, ns since the epoch.
    pub fn ts_ns(&self) -> i64 {
        match self {
            Record::Reading(r) => r.ts_ns,
            Record::Anomaly(a) => a.ts_ns,
            Record::Incident(i) => i.updated_ns,
            Record::Card(c) => c.ts_ns,
            Record::Report(r) => r.ts_ns,
            Record::NodeMetrics(p) => p.ts_ns,
            Record::Limits(l) => l.ts_ns,
        }
    }

    /// The asset the record is about.
    pub fn asset(&self) -> &str {
        match self {
            Record::Reading(r) => &r.sensor.asset,
            Record::Anomaly(a) => &a.sensor.asset,
            Record::Incident(i) => &i.asset,
            Record::Card(c) => &c.asset,
            Record::Report(r) => &r.report.asset,
            Record::NodeMetrics(_) => "",
            Record::Limits(l) => &l.sensor.asset,
        }
    }

    /// What kind of record this is: `reading`, `anomaly`, `incident`, `card` or `report` (for
    /// logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Reading(_) => "reading",
            Record::Anomaly(_) => "anomaly",
            Record::Incident(_) => "incident",
            Record::Card(_) => "card",
            Record::Report(_) => "report",
            Record::NodeMetrics(_) => "node_metrics",
            Record::Limits(_) => "limits",
        }
    }
}

impl From<Reading> for Record {
    fn from(r: Reading) -> Self {
        Record::Reading(r)
    }
}

impl From<Anomaly> for Record {
    fn from(a: Anomaly) -> Self {
        Record::Anomaly(Box::new(a))
    }
}

impl From<Incident> for Record {
    fn from(i: Incident) -> Self {
        Record::Incident(Box::new(i))
    }
}

impl From<ExplanationCard> for Record {
    fn from(c: ExplanationCard) -> Self {
        Record::Card(Box::new(c))
    }
}

impl From<ReportRecord> for Record {
    fn from(r: ReportRecord) -> Self {
        Record::Report(Box::new(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{SensorId, Unit};

    #[test]
    fn readings_stay_small_and_know_their_time_and_asset() {
        let r = Reading::new(SensorId::new("P-101", "temp_c"), 42, 1.5, Unit::new("°C"));
        let rec = Record::from(r.clone());
        assert_eq!(
            (rec.ts_ns(), rec.asset(), rec.kind()),
            (42, "P-101", "reading")
        );
        assert_eq!(rec, Record::Reading(r));
        // Boxing the large variants keeps a record close to a reading's size.
        assert!(
            std::mem::size_of::<Record>() <= std::mem::size_of::<Reading>() + 8,
            "{} bytes",
            std::mem::size_of::<Record>()
        );
    }
}
