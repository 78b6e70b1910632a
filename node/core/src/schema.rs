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

    // Anomaly events and explanation cards (measurement `millwright_anomaly`):
    // `millwright_anomaly,asset=…,signal=…,kind=…,phase=…[,source=…] score=…,… <ts_ns>`.
    // A card's point carries `source` and the text fields; an event's point the numbers.

    /// Tag: signal name of an anomaly event or card.
    pub const TAG_SIGNAL: &str = "signal";
    /// Tag: main anomaly kind (`level_shift`, `spike`, …).
    pub const TAG_KIND: &str = "kind";
    /// Tag: event phase (`opened`, `updated`, `closed`).
    pub const TAG_PHASE: &str = "phase";
    /// Tag: where a card's text came from (`model`, `fallback`).
    pub const TAG_SOURCE: &str = "source";
    /// Field: anomaly score in `[0, 1]`.
    pub const FIELD_SCORE: &str = "score";
    /// Field: highest score of the event so far.
    pub const FIELD_PEAK_SCORE: &str = "peak_score";
    /// Field: the explanation text of a card.
    pub const FIELD_TEXT: &str = "text";
    /// Field: a card's one-line title (`<asset> <signal> <kind>`), for annotations.
    pub const FIELD_TITLE: &str = "title";
    /// Field: the encoded facts of a card.
    pub const FIELD_EVIDENCE: &str = "evidence";
    /// Field: a card's likely causes, `; `-separated.
    pub const FIELD_CAUSES: &str = "causes";
    /// Field: recommended actions — on a card `[urgency] text; …`, on a report their count.
    pub const FIELD_ACTIONS: &str = "actions";
    /// Field: the model that wrote a card's text (`template` for the fallback).
    pub const FIELD_MODEL: &str = "model";
    /// Field: the anomaly event id.
    pub const FIELD_ID: &str = "id";
    /// Field: event start, ns since the epoch (annotation region start).
    pub const FIELD_SINCE_NS: &str = "since_ns";
    /// Field: event duration so far, seconds.
    pub const FIELD_DURATION_S: &str = "duration_s";
    /// Field: an anomaly event's latest value of the sensor.
    pub const FIELD_EVENT_VALUE: &str = "value";
    /// Field: an anomaly event's learned baseline.
    pub const FIELD_BASELINE: &str = "baseline";
    /// Field: an anomaly event's deviation in spreads (σ).
    pub const FIELD_Z: &str = "z";

    // Incidents (measurement `millwright_incident`):
    // `millwright_incident,asset=…,phase=…,severity=…[,diagnosis=…][,resolution=…] id="…",
    //  opened_ns=…i,duration_s=…,symptoms=…i,open_symptoms=…i,peak_score=…,confidence=…,
    //  events_merged=…i,events_suppressed=…i[,runner_up="…"] <updated_ns>`.

    /// Measurement for incidents (one fault of one asset: its events grouped).
    pub const MEASUREMENT_INCIDENT: &str = "millwright_incident";
    /// Tag: an incident's severity (`watch`, `warning`, `critical`).
    pub const TAG_SEVERITY: &str = "severity";
    /// Tag: an incident's top diagnosis (failure mode id; absent when none matches).
    pub const TAG_DIAGNOSIS: &str = "diagnosis";
    /// Tag: how a closed incident ended (`normal`, `new_normal`).
    pub const TAG_RESOLUTION: &str = "resolution";
    /// Field: an incident's open time, ns since the epoch.
    pub const FIELD_OPENED_NS: &str = "opened_ns";
    /// Field: number of an incident's symptoms (events).
    pub const FIELD_SYMPTOMS: &str = "symptoms";
    /// Field: number of an incident's open symptoms.
    pub const FIELD_OPEN_SYMPTOMS: &str = "open_symptoms";
    /// Field: confidence of an incident's top diagnosis in `[0, 1]`.
    pub const FIELD_CONFIDENCE: &str = "confidence";
    /// Field: the close runner-up failure mode of an incident.
    pub const FIELD_RUNNER_UP: &str = "runner_up";
    /// Field: events merged into an incident after its first.
    pub const FIELD_EVENTS_MERGED: &str = "events_merged";
    /// Field: event phases an incident suppressed.
    pub const FIELD_EVENTS_SUPPRESSED: &str = "events_suppressed";

    // Normal ranges and limits of the profiles (measurement `millwright_limits`), written with
    // the node metrics so dashboards draw them as lines next to each signal:
    // `millwright_limits,asset=…,signal=…[,unit=…] normal_low=…,normal_high=…,limit_min=…,limit_max=… <ts_ns>`
    // (only the values the profile has).

    /// Measurement for each profiled signal's normal range and hard limits.
    pub const MEASUREMENT_LIMITS: &str = "millwright_limits";
    /// Field: lower end of the normal operating range.
    pub const FIELD_NORMAL_LOW: &str = "normal_low";
    /// Field: upper end of the normal operating range.
    pub const FIELD_NORMAL_HIGH: &str = "normal_high";
    /// Field: low hard limit (alarm / trip).
    pub const FIELD_LIMIT_MIN: &str = "limit_min";
    /// Field: high hard limit (alarm / trip).
    pub const FIELD_LIMIT_MAX: &str = "limit_max";

    // Maintenance reports (measurement `millwright_report`):
    // `millwright_report,asset=…,status=… anomalies=<n>i,actions=<n>i,markdown="…" <ts_ns>`.

    /// Tag: a report's overall status (`ok`, `watch`, `action_required`; spaces become `_`).
    pub const TAG_STATUS: &str = "status";
    /// Field: number of anomalies in a report.
    pub const FIELD_ANOMALIES: &str = "anomalies";
    /// Field: a report as Markdown.
    pub const FIELD_MARKDOWN: &str = "markdown";
}

/// MQTT topics published by the node, relative to `<root>/<site>/`.
pub mod topics {
    /// Retained status with last will (`online` / `offline`).
    pub const STATUS: &str = "status";
    /// Alerts: `alerts/<asset>` (an incident's explanation card when it opens, then the
    /// incident's JSON on each update and on its close).
    pub const ALERTS: &str = "alerts";
    /// Maintenance reports: `reports/<asset>`.
    pub const REPORTS: &str = "reports";
    /// Operator questions in.
    pub const ASK: &str = "ask";
    /// Answers out: `answers/<request id>`.
    pub const ANSWERS: &str = "answers";
}

pub mod describe;
pub mod node_metrics;
