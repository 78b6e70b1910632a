//! A machine-readable description of everything the node writes to InfluxDB: every
//! measurement with its tags and fields (type and unit), built from the schema constants.
//!
//! `millwright schema` prints it as JSON; the dashboard tests check every Flux query against
//! it. Keep it in step with the encoder in `millwright-sinks` (`line.rs`): the sinks' tests
//! compare written lines with this description. No I/O here.

use super::influx as s;
use super::node_metrics;
use serde::Serialize;

/// Type of a field value in line protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// 64-bit float.
    Float,
    /// 64-bit signed integer (`…i`).
    Integer,
    /// Quoted string.
    String,
}

/// A tag of a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tag {
    /// Tag key.
    pub name: &'static str,
    /// What it holds.
    pub doc: &'static str,
}

/// A field of a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Field key.
    pub name: &'static str,
    /// Value type.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Unit (`""` for none; `from the unit tag` for readings).
    pub unit: &'static str,
    /// What it holds.
    pub doc: &'static str,
}

/// A measurement the node writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Measurement {
    /// Name; `{signal}` for readings (one measurement per signal).
    pub name: &'static str,
    /// What a point of it is.
    pub doc: &'static str,
    /// Tags (a tag with an empty value is left out of a point).
    pub tags: Vec<Tag>,
    /// Fields.
    pub fields: Vec<Field>,
}

/// Measurement name pattern of readings: one measurement per signal.
pub const READING_MEASUREMENT: &str = "{signal}";

const fn tag(name: &'static str, doc: &'static str) -> Tag {
    Tag { name, doc }
}

const fn field(name: &'static str, ty: FieldType, unit: &'static str, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        unit,
        doc,
    }
}

/// Every measurement the node writes, with its tags and fields.
pub fn measurements() -> Vec<Measurement> {
    use FieldType::{Float, Integer, String};
    let card_and_event_tags = vec![
        tag(s::TAG_ASSET, "asset of the signal"),
        tag(s::TAG_SIGNAL, "signal of the event"),
        tag(s::TAG_KIND, "main anomaly kind (level_shift, spike, …)"),
        tag(s::TAG_PHASE, "event phase (opened, updated, closed)"),
        tag(
            s::TAG_SOURCE,
            "cards only: where the text came from (model, fallback)",
        ),
    ];
    let mut node_tags = vec![tag(s::TAG_SITE, "the site name from the config")];
    for m in node_metrics::ALL {
        for l in m.labels {
            if !node_tags.iter().any(|t| t.name == *l) {
                node_tags.push(tag(l, "label of the Prometheus metric of the same name"));
            }
        }
    }
    vec![
        Measurement {
            name: READING_MEASUREMENT,
            doc: "a reading: one measurement per signal name (VictoriaMetrics: <signal>_value)",
            tags: vec![
                tag(s::TAG_SITE, "the site name from the config"),
                tag(s::TAG_ASSET, "the asset"),
                tag(s::TAG_UNIT, "engineering unit symbol (left out when empty)"),
                tag(s::TAG_QUALITY, "good, uncertain or bad"),
            ],
            fields: vec![field(
                s::FIELD_VALUE,
                Float,
                "from the unit tag",
                "the reading's value",
            )],
        },
        Measurement {
            name: s::MEASUREMENT_ANOMALY,
            doc: "an anomaly event phase (numbers) or its explanation card (text, source tag)",
            tags: card_and_event_tags,
            fields: vec![
                field(s::FIELD_SCORE, Float, "", "anomaly score in [0, 1]"),
                field(
                    s::FIELD_PEAK_SCORE,
                    Float,
                    "",
                    "events: highest score so far",
                ),
                field(
                    s::FIELD_EVENT_VALUE,
                    Float,
                    "signal unit",
                    "events: latest value",
                ),
                field(
                    s::FIELD_BASELINE,
                    Float,
                    "signal unit",
                    "events: learned baseline",
                ),
                field(s::FIELD_Z, Float, "σ", "events: deviation in spreads"),
                field(s::FIELD_TEXT, String, "", "cards: explanation text"),
                field(
                    s::FIELD_TITLE,
                    String,
                    "",
                    "cards: `<asset> <signal> <kind>`",
                ),
                field(s::FIELD_EVIDENCE, String, "", "cards: encoded facts"),
                field(
                    s::FIELD_CAUSES,
                    String,
                    "",
                    "cards: likely causes, `; `-separated",
                ),
                field(s::FIELD_ACTIONS, String, "", "cards: `[urgency] text; …`"),
                field(
                    s::FIELD_MODEL,
                    String,
                    "",
                    "cards: model name or `template`",
                ),
                field(s::FIELD_ID, String, "", "event id"),
                field(
                    s::FIELD_SINCE_NS,
                    Integer,
                    "ns",
                    "event start since the epoch",
                ),
                field(
                    s::FIELD_DURATION_S,
                    Float,
                    "seconds",
                    "event duration so far",
                ),
            ],
        },
        Measurement {
            name: s::MEASUREMENT_REPORT,
            doc: "a maintenance report of one asset",
            tags: vec![
                tag(s::TAG_ASSET, "the asset"),
                tag(s::TAG_STATUS, "ok, watch or action_required"),
            ],
            fields: vec![
                field(
                    s::FIELD_ANOMALIES,
                    Integer,
                    "anomalies",
                    "anomalies in the report",
                ),
                field(s::FIELD_ACTIONS, Integer, "actions", "recommended actions"),
                field(s::FIELD_MARKDOWN, String, "", "the report as Markdown"),
            ],
        },
        Measurement {
            name: s::MEASUREMENT_INCIDENT,
            doc: "an incident phase: one fault of one asset, its anomaly events grouped",
            tags: vec![
                tag(s::TAG_ASSET, "the asset"),
                tag(s::TAG_PHASE, "opened, updated or closed"),
                tag(s::TAG_SEVERITY, "watch, warning or critical"),
                tag(
                    s::TAG_DIAGNOSIS,
                    "top failure mode id (left out when none matches)",
                ),
                tag(s::TAG_RESOLUTION, "closed: normal or new_normal"),
            ],
            fields: vec![
                field(s::FIELD_ID, String, "", "incident id `<asset>#<opened_ns>`"),
                field(
                    s::FIELD_OPENED_NS,
                    Integer,
                    "ns",
                    "open time since the epoch",
                ),
                field(s::FIELD_DURATION_S, Float, "seconds", "duration so far"),
                field(s::FIELD_SYMPTOMS, Integer, "events", "symptoms (events)"),
                field(s::FIELD_OPEN_SYMPTOMS, Integer, "events", "open symptoms"),
                field(s::FIELD_PEAK_SCORE, Float, "", "highest symptom score"),
                field(
                    s::FIELD_CONFIDENCE,
                    Float,
                    "",
                    "confidence of the top diagnosis in [0, 1]",
                ),
                field(
                    s::FIELD_EVENTS_MERGED,
                    Integer,
                    "events",
                    "events merged after the first",
                ),
                field(
                    s::FIELD_EVENTS_SUPPRESSED,
                    Integer,
                    "events",
                    "event phases taken without telling",
                ),
                field(
                    s::FIELD_RUNNER_UP,
                    String,
                    "",
                    "close runner-up failure mode id",
                ),
            ],
        },
        Measurement {
            name: s::MEASUREMENT_LIMITS,
            doc: "a profiled signal's normal range and hard limits (written with the node metrics)",
            tags: vec![
                tag(s::TAG_SITE, "the site name from the config"),
                tag(s::TAG_ASSET, "the asset"),
                tag(s::TAG_SIGNAL, "the signal"),
                tag(s::TAG_UNIT, "engineering unit symbol (left out when empty)"),
            ],
            fields: vec![
                field(
                    s::FIELD_NORMAL_LOW,
                    Float,
                    "signal unit",
                    "normal range, low end",
                ),
                field(
                    s::FIELD_NORMAL_HIGH,
                    Float,
                    "signal unit",
                    "normal range, high end",
                ),
                field(s::FIELD_LIMIT_MIN, Float, "signal unit", "low hard limit"),
                field(s::FIELD_LIMIT_MAX, Float, "signal unit", "high hard limit"),
            ],
        },
        Measurement {
            name: s::MEASUREMENT_NODE_METRICS,
            doc: "the node's own metrics (field = Prometheus name without `millwright_`; \
                  VictoriaMetrics: millwright_node_<field>)",
            tags: node_tags,
            fields: node_metrics::ALL
                .iter()
                .map(|m| Field {
                    name: node_metrics::influx_field(m.name),
                    ty: Float,
                    unit: m.unit,
                    doc: m.help,
                })
                .collect(),
        },
    ]
}

/// The whole description: measurements and node metrics (for `millwright schema`).
#[derive(Clone, Debug, Serialize)]
pub struct Schema {
    /// Version of this description's shape.
    pub schema_version: u32,
    /// Every measurement.
    pub measurements: Vec<Measurement>,
    /// The node's metrics as served on `/metrics`.
    pub node_metrics: &'static [node_metrics::NodeMetric],
    /// Signals the node itself emits as readings (measurements of the `{signal}` kind).
    pub node_signals: &'static [&'static str],
}

/// The description of everything the node writes.
pub fn schema() -> Schema {
    Schema {
        schema_version: 1,
        measurements: measurements(),
        node_metrics: node_metrics::ALL,
        node_signals: &[super::DEVICE_ONLINE_SIGNAL],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_measurement_has_fields_and_unique_names() {
        let ms = measurements();
        // readings, anomaly events and cards, reports, incidents, limits, node metrics.
        assert_eq!(ms.len(), 6);
        for name in [s::MEASUREMENT_INCIDENT, s::MEASUREMENT_LIMITS] {
            assert!(ms.iter().any(|m| m.name == name), "{name} missing");
        }
        for m in &ms {
            assert!(!m.fields.is_empty(), "{}", m.name);
            let mut f: Vec<_> = m.fields.iter().map(|f| f.name).collect();
            f.sort_unstable();
            f.dedup();
            assert_eq!(f.len(), m.fields.len(), "{}: duplicate field", m.name);
        }
        let node = ms
            .iter()
            .find(|m| m.name == s::MEASUREMENT_NODE_METRICS)
            .unwrap();
        assert!(node.fields.iter().any(|f| f.name == "readings_total"));
        assert!(node.tags.iter().any(|t| t.name == "device"));
        let json = serde_json::to_string(&schema()).unwrap();
        assert!(json.contains("\"millwright_report\""));
    }
}
