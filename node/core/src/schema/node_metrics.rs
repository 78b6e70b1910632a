//! The one list of the node's own metrics: Prometheus name, help, type, unit and labels.
//!
//! `/metrics` renders exactly these families, and the same values are written to InfluxDB as
//! the measurement `millwright_node` (see [`influx_field`] for the field names). Dashboards
//! and `millwright schema` read this list; nothing here counts or renders anything.
//!
//! Names follow the Prometheus conventions: base units (`_bytes`, `_seconds`), counters end in
//! `_total`, gauges do not.

use serde::Serialize;

/// Prometheus metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Only goes up (resets at restart).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    /// `counter` or `gauge`, as in the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One metric family of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NodeMetric {
    /// Prometheus name, e.g. `millwright_readings_total`.
    pub name: &'static str,
    /// One-line help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Unit of the value (`bytes`, `seconds`, or what is counted, e.g. `readings`).
    pub unit: &'static str,
    /// Label names (also InfluxDB tags of the `millwright_node` point).
    pub labels: &'static [&'static str],
}

/// Prefix every node metric's Prometheus name starts with.
pub const PREFIX: &str = "millwright_";

/// The InfluxDB field of a node metric in measurement `millwright_node`: its Prometheus name
/// without [`PREFIX`] (`millwright_readings_total` → field `readings_total`). VictoriaMetrics
/// names the written series `millwright_node_<field>`.
pub fn influx_field(name: &str) -> &str {
    name.strip_prefix(PREFIX).unwrap_or(name)
}

/// Label: the subscription's topic pattern.
pub const LABEL_SUBSCRIPTION: &str = "subscription";
/// Label: why a message was rejected.
pub const LABEL_REASON: &str = "reason";
/// Label: the Modbus device name.
pub const LABEL_DEVICE: &str = "device";
/// Label: where an answer came from (`model`, `template`, `refusal`, `error`).
pub const LABEL_SOURCE: &str = "source";
/// Label of the kind of a write error (`auth`, `not_found`, `bad_data`, `unreachable`, …).
pub const LABEL_KIND: &str = "kind";

const SUB: &[&str] = &[LABEL_SUBSCRIPTION];
const SUB_REASON: &[&str] = &[LABEL_SUBSCRIPTION, LABEL_REASON];
const DEV: &[&str] = &[LABEL_DEVICE];
const REASON: &[&str] = &[LABEL_REASON];
/// Label set of the InfluxDB write errors: the kind of answer (`answer.rs` in sinks).
const KIND: &[&str] = &[LABEL_KIND];
const SOURCE: &[&str] = &[LABEL_SOURCE];
/// Label: which in-memory queue (`bus`, `writer_inbox`, `analytics_tap`).
pub const LABEL_QUEUE: &str = "queue";
const QUEUE: &[&str] = &[LABEL_QUEUE];

macro_rules! metrics {
    ($( $id:ident = $name:literal, $kind:ident, $unit:literal, $labels:expr, $help:literal; )*) => {
        $(
            #[doc = $help]
            pub const $id: NodeMetric = NodeMetric {
                name: $name,
                help: $help,
                kind: Kind::$kind,
                unit: $unit,
                labels: $labels,
            };
        )*
        /// Every node metric, in the order `/metrics` renders them.
        pub const ALL: &[NodeMetric] = &[$($id),*];
    };
}

metrics! {
    READINGS_TOTAL = "millwright_readings_total", Counter, "readings", &[], "Readings that passed the pipeline.";
    MQTT_CONNECTED = "millwright_mqtt_connected", Gauge, "", &[], "1 while connected to the broker.";
    MQTT_CONNECTIONS_TOTAL = "millwright_mqtt_connections_total", Counter, "connections", &[], "Successful broker connections (reconnects add up).";
    MQTT_CONNECTION_ERRORS_TOTAL = "millwright_mqtt_connection_errors_total", Counter, "errors", &[], "Failed or lost broker connections.";
    EGRESS_ALLOW_PUBLIC_ENDPOINTS = "millwright_egress_allow_public_endpoints", Gauge, "", &[], "1 when `[node] allow_public_endpoints` lets the node connect to public addresses (default 0: on-site endpoints only).";
    EGRESS_REFUSED_TOTAL = "millwright_egress_refused_total", Counter, "refusals", &[], "Connections refused because the endpoint resolved to a public address (at start, at each connect or reconnect, or when resolved again).";
    MEMORY_BUDGET_BYTES = "millwright_memory_budget_bytes", Gauge, "bytes", &[], "`[node] memory_budget_mb`: the memory the node's data path is sized to.";
    MEMORY_QUEUE_CAP_BYTES = "millwright_memory_queue_cap_bytes", Gauge, "bytes", QUEUE, "Byte cap of an in-memory queue, derived from the memory budget.";
    MEMORY_QUEUE_BYTES = "millwright_memory_queue_bytes", Gauge, "bytes", QUEUE, "Bytes an in-memory queue holds now.";
    MEMORY_QUEUE_PEAK_BYTES = "millwright_memory_queue_peak_bytes", Gauge, "bytes", QUEUE, "Most bytes an in-memory queue held at once since start.";
    MEMORY_QUEUE_FULL_TOTAL = "millwright_memory_queue_full_total", Counter, "events", QUEUE, "Times a queue's byte cap was hit (bus, writer inbox: the sender waited; analytics tap: the batch skipped analytics).";
    MQTT_MAX_PACKET_BYTES = "millwright_mqtt_max_packet_bytes", Gauge, "bytes", &[], "Largest MQTT packet the node accepts (`mqtt.max_packet_bytes`, lowered to 1/64 of the memory budget).";
    STORE_SERIES = "millwright_store_series", Gauge, "series", &[], "Series (asset, signal) in the local store.";
    STORE_MAX_SERIES = "millwright_store_max_series", Gauge, "series", &[], "`store.max_sensors`: most series the local store keeps.";
    STORE_REJECTED_READINGS_TOTAL = "millwright_store_rejected_readings_total", Counter, "readings", &[], "Readings of new series the local store did not keep because it already holds `store.max_sensors` (still written to InfluxDB).";
    MQTT_MESSAGES_TOTAL = "millwright_mqtt_messages_total", Counter, "messages", SUB, "MQTT messages received per subscription.";
    MQTT_READINGS_TOTAL = "millwright_mqtt_readings_total", Counter, "readings", SUB, "Readings decoded per subscription.";
    MQTT_REJECTED_TOTAL = "millwright_mqtt_rejected_total", Counter, "messages", SUB_REASON, "Rejected MQTT messages per subscription and reason.";
    MQTT_SKIPPED_TOTAL = "millwright_mqtt_skipped_total", Counter, "metrics", SUB_REASON, "Parts of accepted MQTT messages that gave no reading (Sparkplug B metrics), per reason.";
    MQTT_SPARKPLUG_SEQUENCE_GAPS_TOTAL = "millwright_mqtt_sparkplug_sequence_gaps_total", Counter, "gaps", SUB, "Sparkplug B sequence gaps and DATA before BIRTH.";
    MQTT_SPARKPLUG_REBIRTH_REQUESTS_TOTAL = "millwright_mqtt_sparkplug_rebirth_requests_total", Counter, "requests", SUB, "Sparkplug B rebirth requests sent (NCMD Node Control/Rebirth).";
    MQTT_SUBSCRIBED = "millwright_mqtt_subscribed", Gauge, "", SUB, "1 once the broker accepted the subscription on the current connection (SUBACK); 0 while disconnected or refused.";
    MQTT_SUBSCRIPTION_SILENT = "millwright_mqtt_subscription_silent", Gauge, "", SUB, "1 while the subscription is silent beyond expected_interval_s × silence_factor while connected.";
    MQTT_SUBSCRIPTION_SILENCES_TOTAL = "millwright_mqtt_subscription_silences_total", Counter, "silences", SUB, "Times the subscription was found silent while connected (each forced a reconnect and re-subscribe).";
    MQTT_SUBACK_FAILURES_TOTAL = "millwright_mqtt_suback_failures_total", Counter, "refusals", SUB, "SUBACKs refusing the subscription (retried with back-off).";
    TASK_PANICS_TOTAL = "millwright_task_panics_total", Counter, "panics", &[], "Tasks of the node that ended by a panic.";
    TASK_RESTARTS_TOTAL = "millwright_task_restarts_total", Counter, "restarts", &[], "Tasks restarted after a panic.";
    MODBUS_DEVICE_ONLINE = "millwright_modbus_device_online", Gauge, "", DEV, "1 while the device answers.";
    MODBUS_REQUESTS_TOTAL = "millwright_modbus_requests_total", Counter, "requests", DEV, "Read requests sent.";
    MODBUS_EXCEPTIONS_TOTAL = "millwright_modbus_exceptions_total", Counter, "requests", DEV, "Requests answered with a Modbus exception.";
    MODBUS_TIMEOUTS_TOTAL = "millwright_modbus_timeouts_total", Counter, "requests", DEV, "Requests that timed out.";
    MODBUS_TRANSPORT_ERRORS_TOTAL = "millwright_modbus_transport_errors_total", Counter, "requests", DEV, "Requests that failed in transport.";
    MODBUS_OFFLINE_EVENTS_TOTAL = "millwright_modbus_offline_events_total", Counter, "events", DEV, "Times the device went offline.";
    MODBUS_READINGS_GOOD_TOTAL = "millwright_modbus_readings_good_total", Counter, "readings", DEV, "Good-quality readings the device's polls produced.";
    MODBUS_CYCLES_TOTAL = "millwright_modbus_cycles_total", Counter, "cycles", DEV, "Poll cycles completed.";
    MODBUS_POLL_CYCLE_SECONDS = "millwright_modbus_poll_cycle_seconds", Gauge, "seconds", DEV, "Duration of the device's last poll cycle.";
    MODBUS_DROPPED_BATCHES_TOTAL = "millwright_modbus_dropped_batches_total", Counter, "batches", DEV, "Batches dropped because the reading bus stayed full for a whole poll interval.";
    INFLUX_WRITTEN_POINTS_TOTAL = "millwright_influx_written_points_total", Counter, "points", &[], "Points the database accepted.";
    INFLUX_FAILED_REQUESTS_TOTAL = "millwright_influx_failed_requests_total", Counter, "requests", &[], "Failed write requests (retried).";
    INFLUX_DROPPED_POINTS_TOTAL = "millwright_influx_dropped_points_total", Counter, "points", &[], "Points dropped because the backlog was full.";
    INFLUX_REJECTED_POINTS_TOTAL = "millwright_influx_rejected_points_total", Counter, "points", &[], "Points the database rejected as malformed.";
    INFLUX_BACKLOG_POINTS = "millwright_influx_backlog_points", Gauge, "points", &[], "Points waiting to be written.";
    INFLUX_WRITE_ERRORS_TOTAL = "millwright_influx_write_errors_total", Counter, "requests", KIND, "Failed or partly rejected write requests, per kind of answer.";
    INFLUX_ERROR_POINTS_TOTAL = "millwright_influx_error_points_total", Counter, "points", KIND, "Points refused for good, per kind of answer.";
    INFLUX_CONFIG_ERROR = "millwright_influx_config_error", Gauge, "bool", &[], "1 while the database refuses the node's writes for its configuration (token, org, bucket, certificate, url).";
    OUTBOX_BYTES = "millwright_outbox_bytes", Gauge, "bytes", &[], "Bytes of undelivered records in the disk outbox.";
    OUTBOX_DISK_BYTES = "millwright_outbox_disk_bytes", Gauge, "bytes", &[], "Bytes of outbox segment files on disk.";
    OUTBOX_OLDEST_AGE_SECONDS = "millwright_outbox_oldest_age_seconds", Gauge, "seconds", &[], "Age of the oldest undelivered record in the outbox (0 when empty).";
    OUTBOX_BLOCKING = "millwright_outbox_blocking", Gauge, "bool", &[], "1 while a full outbox holds ingest back (block_ingest).";
    OUTBOX_TORN_RECORDS_TOTAL = "millwright_outbox_torn_records_total", Counter, "records", &[], "Torn records cut off the outbox's tail at start (after a crash).";
    OUTBOX_IO_ERRORS_TOTAL = "millwright_outbox_io_errors_total", Counter, "errors", &[], "Outbox append, sync or read failures (the data stays unacknowledged).";
    ANOMALIES_TOTAL = "millwright_anomalies_total", Counter, "events", &[], "Anomaly events opened.";
    INCIDENTS_TOTAL = "millwright_incidents_total", Counter, "incidents", &[], "Incidents opened (one per fault of an asset).";
    INCIDENT_UPDATES_TOTAL = "millwright_incident_updates_total", Counter, "updates", &[], "Incident updates told (a symptom added, severity up).";
    INCIDENT_EVENTS_SUPPRESSED_TOTAL = "millwright_incident_events_suppressed_total", Counter, "events", &[], "Anomaly event phases incidents took without telling (repeats, floods).";
    ALERTS_PUBLISHED_TOTAL = "millwright_alerts_published_total", Counter, "messages", &[], "Alerts published on MQTT.";
    EXPLANATIONS_MODEL_TOTAL = "millwright_explanations_model_total", Counter, "explanations", &[], "Explanations written by the model (grounded).";
    EXPLANATIONS_FALLBACK_TOTAL = "millwright_explanations_fallback_total", Counter, "explanations", &[], "Explanations from the rule-based template.";
    EXPLANATIONS_QUEUE_FULL_TOTAL = "millwright_explanations_queue_full_total", Counter, "explanations", &[], "Explanations the model queue could not take (busy: the template explained at once).";
    REPORTS_TOTAL = "millwright_reports_total", Counter, "reports", &[], "Maintenance reports written.";
    ANALYTICS_DROPPED_BATCHES_TOTAL = "millwright_analytics_dropped_batches_total", Counter, "batches", &[], "Reading batches the analytics tap dropped because it was behind (stored and written anyway).";
    MQTT_PUBLISHED_TOTAL = "millwright_mqtt_published_total", Counter, "messages", &[], "Messages (alerts, reports) handed to the node's MQTT publisher.";
    MQTT_PUBLISH_QUEUE_FULL_TOTAL = "millwright_mqtt_publish_queue_full_total", Counter, "messages", &[], "Messages not queued because the publisher's queue was full (broker away or slow).";
    MQTT_PUBLISH_DROPPED_TOTAL = "millwright_mqtt_publish_dropped_total", Counter, "messages", &[], "Messages not queued for another reason (invalid topic, publisher closed).";
    GROUNDING_CHECKS_TOTAL = "millwright_grounding_checks_total", Counter, "checks", &[], "Grounding checks of model text.";
    GROUNDING_FAILURES_TOTAL = "millwright_grounding_failures_total", Counter, "checks", &[], "Model texts that failed the grounding check (never published).";
    VOCABULARY_VIOLATIONS_TOTAL = "millwright_vocabulary_violations_total", Counter, "texts", &[], "Model texts with a word outside the request's vocabulary (never published; 0 with the vocabulary mask).";
    CLAIM_MISMATCHES_TOTAL = "millwright_claim_mismatches_total", Counter, "texts", &[], "Model texts with a cause or action the diagnosed failure modes do not state, or not naming the diagnosed mode (never published).";
    EXPLANATIONS_FROM_MODEL_TOTAL = "millwright_explanations_from_model_total", Counter, "explanations", &[], "Explanations whose published text came from the model (the rest from the template).";
    MODEL_ERRORS_TOTAL = "millwright_model_errors_total", Counter, "errors", &[], "Model calls that failed.";
    MODEL_GENERATIONS_TOTAL = "millwright_model_generations_total", Counter, "generations", &[], "Generations the model finished.";
    MODEL_PROMPT_TOKENS_TOTAL = "millwright_model_prompt_tokens_total", Counter, "tokens", &[], "Prompt tokens the model processed (cached prefix tokens left out).";
    MODEL_GENERATED_TOKENS_TOTAL = "millwright_model_generated_tokens_total", Counter, "tokens", &[], "Tokens the model generated.";
    MODEL_PROMPT_SECONDS_TOTAL = "millwright_model_prompt_seconds_total", Counter, "seconds", &[], "Time spent on prompts (until the first token).";
    MODEL_DECODE_SECONDS_TOTAL = "millwright_model_decode_seconds_total", Counter, "seconds", &[], "Time spent generating after the first token.";
    MODEL_CPU_SECONDS_TOTAL = "millwright_model_cpu_seconds_total", Counter, "seconds", &[], "Process CPU time used while the model generated (an upper bound of the model's own).";
    MODEL_TIME_TO_FIRST_TOKEN_SECONDS = "millwright_model_time_to_first_token_seconds", Gauge, "seconds", &[], "Time to first token of the last generation.";
    MODEL_PROMPT_TOKENS_PER_SECOND = "millwright_model_prompt_tokens_per_second", Gauge, "tokens/s", &[], "Prompt tokens per second of the last generation.";
    MODEL_DECODE_TOKENS_PER_SECOND = "millwright_model_decode_tokens_per_second", Gauge, "tokens/s", &[], "Generated tokens per second of the last generation (after the first token).";
    MODEL_CPU_SECONDS_PER_TOKEN = "millwright_model_cpu_seconds_per_token", Gauge, "seconds", &[], "Process CPU seconds per generated token of the last generation.";
    MODEL_QUEUE_DEPTH = "millwright_model_queue_depth", Gauge, "jobs", &[], "Explanations waiting for or running on the model.";
    MODEL_JOBS_TOTAL = "millwright_model_jobs_total", Counter, "jobs", &[], "Explanation jobs the model thread started.";
    MODEL_QUEUE_WAIT_SECONDS_TOTAL = "millwright_model_queue_wait_seconds_total", Counter, "seconds", &[], "Time explanation jobs waited in the model queue.";
    MODEL_RESIDENT_MEMORY_BYTES = "millwright_model_resident_memory_bytes", Gauge, "bytes", &[], "Resident memory the model added when it loaded.";
    ASK_QUESTIONS_TOTAL = "millwright_ask_questions_total", Counter, "messages", &[], "Messages received on the ask topics (operator questions, good or not).";
    ASK_REJECTED_TOTAL = "millwright_ask_rejected_total", Counter, "questions", REASON, "Questions answered with an error (or not answerable: no id), per reason.";
    ASK_ANSWERS_TOTAL = "millwright_ask_answers_total", Counter, "answers", SOURCE, "Answers published, per source (model, template, refusal, error).";
    ASK_OPEN_QUESTIONS = "millwright_ask_open_questions", Gauge, "questions", &[], "Questions received and not yet answered.";
    ASK_MODEL_TIMEOUTS_TOTAL = "millwright_ask_model_timeouts_total", Counter, "answers", &[], "Model answers not ready within the answer timeout (the template answered).";
    PROCESS_RESIDENT_MEMORY_BYTES = "millwright_process_resident_memory_bytes", Gauge, "bytes", &[], "Resident memory of the node.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_conventions_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for m in ALL {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.starts_with(PREFIX), "{}", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                m.name
            );
            for bad in ["_mb", "_kb", "_ms", "_us", "_minutes"] {
                assert!(!m.name.contains(bad), "{}: use base units", m.name);
            }
            if m.name.contains("_bytes") || m.name.contains("_seconds") {
                assert!(
                    m.unit == "bytes" || m.unit == "seconds" || m.unit == "tokens/s",
                    "{}",
                    m.name
                );
            }
        }
        assert_eq!(influx_field("millwright_readings_total"), "readings_total");
    }
}
