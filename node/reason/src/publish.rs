//! How cards and reports leave the node, as pure data: the JSON payload for MQTT
//! (`alerts/<asset>`, `reports/<asset>`) and the tags and fields of the InfluxDB event
//! (measurement `millwright_anomaly` / `millwright_report`, for Grafana annotations).
//!
//! The sinks (`millwright-sinks`) do the writing; nothing here does I/O.

use millwright_core::schema::influx;
use millwright_core::{ExplanationCard, MaintenanceReport};

/// A field value of an InfluxDB point.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// Float.
    F64(f64),
    /// Integer.
    I64(i64),
    /// String.
    Str(String),
}

/// One InfluxDB point: measurement, tags, fields, time.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Measurement.
    pub measurement: &'static str,
    /// Tags (the sink adds `site`).
    pub tags: Vec<(&'static str, String)>,
    /// Fields.
    pub fields: Vec<(&'static str, FieldValue)>,
    /// Time in ns.
    pub ts_ns: i64,
}

fn esc_tag(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
        .replace(' ', "\\ ")
        .replace('\n', "\\n")
}

fn esc_str(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Point {
    /// InfluxDB line protocol, tags in the given order.
    pub fn to_line(&self) -> String {
        let mut l = self.measurement.to_string();
        for (k, v) in &self.tags {
            if !v.is_empty() {
                l.push_str(&format!(",{k}={}", esc_tag(v)));
            }
        }
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| match v {
                FieldValue::F64(x) => format!("{k}={x}"),
                FieldValue::I64(x) => format!("{k}={x}i"),
                FieldValue::Str(s) => format!("{k}=\"{}\"", esc_str(s)),
            })
            .collect();
        l.push(' ');
        l.push_str(&fields.join(","));
        l.push_str(&format!(" {}", self.ts_ns));
        l
    }
}

/// The card as JSON for MQTT `alerts/<asset>`.
pub fn card_json(card: &ExplanationCard) -> Result<String, serde_json::Error> {
    serde_json::to_string(card)
}

/// The card as an InfluxDB event: tags asset, signal, kind, phase, source; fields score,
/// text, title, evidence, causes, actions, model, id, since_ns, duration_s; time = the time of
/// the reading that produced the phase (Grafana: annotation region `since_ns` … time).
pub fn card_point(card: &ExplanationCard) -> Point {
    let causes = card.likely_causes.join("; ");
    let actions: Vec<String> = card
        .actions
        .iter()
        .map(|a| format!("[{}] {}", a.urgency.as_str(), a.text))
        .collect();
    Point {
        measurement: influx::MEASUREMENT_ANOMALY,
        tags: vec![
            (influx::TAG_ASSET, card.asset.clone()),
            ("signal", card.signal.clone()),
            ("kind", card.kind.as_str().to_string()),
            ("phase", format!("{:?}", card.phase).to_lowercase()),
            ("source", card.source.as_str().to_string()),
        ],
        fields: vec![
            ("score", FieldValue::F64(card.score)),
            ("text", FieldValue::Str(card.text.clone())),
            (
                "title",
                FieldValue::Str(format!(
                    "{} {} {}",
                    card.asset,
                    card.signal,
                    card.kind.describe()
                )),
            ),
            ("evidence", FieldValue::Str(card.evidence.clone())),
            ("causes", FieldValue::Str(causes)),
            ("actions", FieldValue::Str(actions.join("; "))),
            ("model", FieldValue::Str(card.model.clone())),
            ("id", FieldValue::Str(card.id.clone())),
            ("since_ns", FieldValue::I64(card.since_ns)),
            (
                "duration_s",
                FieldValue::F64(((card.ts_ns - card.since_ns) as f64 / 1e9).max(0.0)),
            ),
        ],
        ts_ns: card.ts_ns,
    }
}

/// A report as an InfluxDB point: tags asset, status; fields anomalies, actions, markdown.
pub fn report_point(r: &MaintenanceReport, markdown: &str, ts_ns: i64) -> Point {
    Point {
        measurement: influx::MEASUREMENT_REPORT,
        tags: vec![
            (influx::TAG_ASSET, r.asset.clone()),
            ("status", r.status.replace(' ', "_")),
        ],
        fields: vec![
            ("anomalies", FieldValue::I64(r.anomalies.len() as i64)),
            ("actions", FieldValue::I64(r.actions.len() as i64)),
            ("markdown", FieldValue::Str(markdown.to_string())),
        ],
        ts_ns,
    }
}
