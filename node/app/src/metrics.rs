//! Prometheus text metrics and a health answer on a local HTTP port (`[node] metrics_listen`).
//!
//! A deliberately tiny HTTP/1.1 responder ([`server`]): `GET /metrics` (Prometheus text
//! format) and `GET /health` (JSON per part, [`health`]). It binds only where the config says
//! (loopback unless `metrics_public`) and never connects anywhere. The same values go to InfluxDB as
//! `millwright_node` records every `[node] metrics_interval_s` ([`write_every`]). Every name
//! comes from the one list in `millwright_core::schema::node_metrics`; the model's figures
//! are counted in [`model`].

use crate::node::Node;
use millwright_core::schema::node_metrics::{self as nm, NodeMetric};
use millwright_core::{NodeMetricsPoint, Record};
use millwright_ingest::modbus::DeviceMetrics;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub mod health;
pub mod model;
pub mod server;

pub use server::serve;

/// Reads one value of a Modbus device's counters.
type DeviceValue = fn(&DeviceMetrics) -> f64;

/// One label set of a family: label values (in the family's label order) and the value.
pub type Row = (Vec<(&'static str, String)>, f64);

/// The node's metrics now: every family of [`nm::ALL`] that applies, with its rows.
pub fn collect(node: &NodeMetrics) -> Vec<(NodeMetric, Vec<Row>)> {
    let mut out: Vec<(NodeMetric, Vec<Row>)> = Vec::new();
    let mut one = |m: NodeMetric, v: f64| out.push((m, vec![(Vec::new(), v)]));
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    one(nm::READINGS_TOTAL, ld(&node.readings));
    if let Some(g) = &node.egress {
        one(
            nm::EGRESS_ALLOW_PUBLIC_ENDPOINTS,
            f64::from(u8::from(g.allow_public())),
        );
        one(nm::EGRESS_REFUSED_TOTAL, g.refused_total() as f64);
    }
    if let Some(b) = &node.budgets {
        one(nm::MEMORY_BUDGET_BYTES, b.caps.budget_bytes as f64);
        one(nm::MQTT_MAX_PACKET_BYTES, b.caps.mqtt_packet_bytes as f64);
        let per = |f: fn(&millwright_core::budget::ByteBudget) -> f64| -> Vec<Row> {
            b.all()
                .iter()
                .map(|q| (vec![(nm::LABEL_QUEUE, q.name().to_string())], f(q)))
                .collect()
        };
        out.push((nm::MEMORY_QUEUE_CAP_BYTES, per(|q| q.cap_bytes() as f64)));
        out.push((nm::MEMORY_QUEUE_BYTES, per(|q| q.queued_bytes() as f64)));
        out.push((nm::MEMORY_QUEUE_PEAK_BYTES, per(|q| q.peak_bytes() as f64)));
        out.push((nm::MEMORY_QUEUE_FULL_TOTAL, per(|q| q.hits() as f64)));
    }
    if let Some(Ok(st)) = node.store.as_ref().map(|s| s.lock()) {
        let (n, max, rej) = (st.series_count(), st.max_series(), st.rejected_sensors());
        drop(st);
        out.push((nm::STORE_SERIES, vec![(Vec::new(), n as f64)]));
        out.push((nm::STORE_MAX_SERIES, vec![(Vec::new(), max as f64)]));
        out.push((
            nm::STORE_REJECTED_READINGS_TOTAL,
            vec![(Vec::new(), rej as f64)],
        ));
    }
    let mut one = |m: NodeMetric, v: f64| out.push((m, vec![(Vec::new(), v)]));
    one(nm::TASK_PANICS_TOTAL, ld(&node.tasks.panics));
    one(nm::TASK_RESTARTS_TOTAL, ld(&node.tasks.restarts));
    let mut fams: Vec<(NodeMetric, Vec<Row>)> = Vec::new();
    if let Some(m) = &node.mqtt {
        one(
            nm::MQTT_CONNECTED,
            f64::from(u8::from(m.connected.load(Ordering::Relaxed))),
        );
        one(nm::MQTT_CONNECTIONS_TOTAL, ld(&m.connections));
        one(nm::MQTT_CONNECTION_ERRORS_TOTAL, ld(&m.connection_errors));
        let (mut msgs, mut rds, mut rej) = (Vec::new(), Vec::new(), Vec::new());
        let (mut skip, mut gaps, mut rebirths) = (Vec::new(), Vec::new(), Vec::new());
        let (mut silent, mut silences, mut refusals) = (Vec::new(), Vec::new(), Vec::new());
        let mut subscribed = Vec::new();
        for s in &m.subscriptions {
            let l = vec![(nm::LABEL_SUBSCRIPTION, s.topic.clone())];
            let w = &s.watch;
            subscribed.push((
                l.clone(),
                f64::from(u8::from(w.subscribed.load(Ordering::Relaxed))),
            ));
            silent.push((
                l.clone(),
                f64::from(u8::from(w.silent.load(Ordering::Relaxed))),
            ));
            silences.push((l.clone(), ld(&w.silences)));
            refusals.push((l.clone(), ld(&w.suback_failures)));
            msgs.push((l.clone(), ld(&s.counters.messages)));
            rds.push((l.clone(), ld(&s.counters.readings)));
            gaps.push((l.clone(), ld(&s.counters.sequence_gaps)));
            rebirths.push((l, ld(&s.counters.rebirth_requests)));
            // Parts of accepted messages skipped (Sparkplug B metrics), per reason.
            for r in millwright_ingest::metrics::SkipReason::ALL {
                skip.push((
                    vec![
                        (nm::LABEL_SUBSCRIPTION, s.topic.clone()),
                        (nm::LABEL_REASON, r.as_str().to_string()),
                    ],
                    s.counters.skipped(r) as f64,
                ));
            }
            for r in millwright_ingest::metrics::RejectReason::ALL {
                rej.push((
                    vec![
                        (nm::LABEL_SUBSCRIPTION, s.topic.clone()),
                        (nm::LABEL_REASON, r.as_str().to_string()),
                    ],
                    s.counters.rejected(r) as f64,
                ));
            }
        }
        rej.push((
            vec![
                (nm::LABEL_SUBSCRIPTION, String::new()),
                (nm::LABEL_REASON, "unknown_topic".to_string()),
            ],
            m.unknown_topic.rejected_total() as f64,
        ));
        fams.push((nm::MQTT_MESSAGES_TOTAL, msgs));
        fams.push((nm::MQTT_READINGS_TOTAL, rds));
        fams.push((nm::MQTT_REJECTED_TOTAL, rej));
        fams.push((nm::MQTT_SKIPPED_TOTAL, skip));
        fams.push((nm::MQTT_SPARKPLUG_SEQUENCE_GAPS_TOTAL, gaps));
        fams.push((nm::MQTT_SPARKPLUG_REBIRTH_REQUESTS_TOTAL, rebirths));
        fams.push((nm::MQTT_SUBSCRIBED, subscribed));
        fams.push((nm::MQTT_SUBSCRIPTION_SILENT, silent));
        fams.push((nm::MQTT_SUBSCRIPTION_SILENCES_TOTAL, silences));
        fams.push((nm::MQTT_SUBACK_FAILURES_TOTAL, refusals));
    }
    if let Some(mb) = &node.modbus {
        let per: [(NodeMetric, DeviceValue); 10] = [
            (nm::MODBUS_DEVICE_ONLINE, |d| {
                f64::from(u8::from(!d.is_offline()))
            }),
            (nm::MODBUS_REQUESTS_TOTAL, |d| {
                d.requests.load(Ordering::Relaxed) as f64
            }),
            (nm::MODBUS_EXCEPTIONS_TOTAL, |d| {
                d.exceptions.load(Ordering::Relaxed) as f64
            }),
            (nm::MODBUS_TIMEOUTS_TOTAL, |d| {
                d.timeouts.load(Ordering::Relaxed) as f64
            }),
            (nm::MODBUS_TRANSPORT_ERRORS_TOTAL, |d| {
                d.transport_errors.load(Ordering::Relaxed) as f64
            }),
            (nm::MODBUS_OFFLINE_EVENTS_TOTAL, |d| {
                d.offline_events.load(Ordering::Relaxed) as f64
            }),
            (nm::MODBUS_READINGS_GOOD_TOTAL, |d| {
                d.readings_good.load(Ordering::Relaxed) as f64
            }),
            (nm::MODBUS_CYCLES_TOTAL, |d| {
                d.cycles.load(Ordering::Relaxed) as f64
            }),
            (nm::MODBUS_POLL_CYCLE_SECONDS, |d| {
                d.last_cycle_us.load(Ordering::Relaxed) as f64 / 1e6
            }),
            (nm::MODBUS_DROPPED_BATCHES_TOTAL, |d| {
                d.dropped_batches.load(Ordering::Relaxed) as f64
            }),
        ];
        for (m, f) in per {
            let rows = mb
                .devices
                .iter()
                .map(|d| (vec![(nm::LABEL_DEVICE, d.device.clone())], f(d)))
                .collect();
            fams.push((m, rows));
        }
    }
    if let Some(i) = &node.influx {
        one(nm::INFLUX_WRITTEN_POINTS_TOTAL, ld(&i.written_points));
        one(nm::INFLUX_FAILED_REQUESTS_TOTAL, ld(&i.failed_requests));
        one(nm::INFLUX_DROPPED_POINTS_TOTAL, ld(&i.dropped_points));
        one(nm::INFLUX_REJECTED_POINTS_TOTAL, ld(&i.rejected_points));
        one(nm::INFLUX_BACKLOG_POINTS, ld(&i.backlog_points));
        one(
            nm::INFLUX_CONFIG_ERROR,
            f64::from(u8::from(i.errors.config_error.load(Ordering::Relaxed))),
        );
        let snap = i.errors.snapshot();
        let by_kind = |pick: fn(&(&'static str, u64, u64)) -> u64| -> Vec<Row> {
            snap.iter()
                .map(|e| (vec![(nm::LABEL_KIND, e.0.to_string())], pick(e) as f64))
                .collect()
        };
        fams.push((nm::INFLUX_WRITE_ERRORS_TOTAL, by_kind(|e| e.1)));
        fams.push((nm::INFLUX_ERROR_POINTS_TOTAL, by_kind(|e| e.2)));
        if i.outbox_enabled.load(Ordering::Relaxed) {
            one(nm::OUTBOX_BYTES, ld(&i.outbox_bytes));
            one(nm::OUTBOX_DISK_BYTES, ld(&i.outbox_disk_bytes));
            let oldest = ld(&i.outbox_oldest_ms);
            let now_ms = (millwright_core::time::now_ns() / 1_000_000) as f64;
            let age = if oldest > 0.0 {
                ((now_ms - oldest) / 1000.0).max(0.0)
            } else {
                0.0
            };
            one(nm::OUTBOX_OLDEST_AGE_SECONDS, age);
            one(
                nm::OUTBOX_BLOCKING,
                f64::from(u8::from(i.outbox_blocking.load(Ordering::Relaxed))),
            );
            one(nm::OUTBOX_TORN_RECORDS_TOTAL, ld(&i.outbox_torn_records));
            one(nm::OUTBOX_IO_ERRORS_TOTAL, ld(&i.outbox_io_errors));
        }
    }
    if let Some(a) = &node.analytics {
        one(nm::ANOMALIES_TOTAL, a.machine(|c| &c.anomalies) as f64);
        one(nm::ALERTS_PUBLISHED_TOTAL, ld(&a.alerts_published));
        one(
            nm::EXPLANATIONS_MODEL_TOTAL,
            a.machine(|c| &c.explanations_model) as f64,
        );
        one(
            nm::EXPLANATIONS_FALLBACK_TOTAL,
            a.machine(|c| &c.explanations_fallback) as f64,
        );
        one(
            nm::EXPLANATIONS_QUEUE_FULL_TOTAL,
            ld(&a.explanations_queue_full),
        );
        one(nm::REPORTS_TOTAL, a.machine(|c| &c.reports) as f64);
        one(nm::ANALYTICS_DROPPED_BATCHES_TOTAL, ld(&a.dropped_batches));
        one(nm::INCIDENTS_TOTAL, a.machine(|c| &c.incidents) as f64);
        one(
            nm::INCIDENT_UPDATES_TOTAL,
            a.machine(|c| &c.incident_updates) as f64,
        );
        one(
            nm::INCIDENT_EVENTS_SUPPRESSED_TOTAL,
            a.machine(|c| &c.events_suppressed) as f64,
        );
        if let Some(p) = a.publisher.get() {
            one(nm::MQTT_PUBLISHED_TOTAL, ld(&p.published));
            one(nm::MQTT_PUBLISH_QUEUE_FULL_TOTAL, ld(&p.queue_full));
            one(nm::MQTT_PUBLISH_DROPPED_TOTAL, ld(&p.dropped));
        }
        if let Some(c) = a.explain.get() {
            let st = c.snapshot();
            one(nm::GROUNDING_CHECKS_TOTAL, st.checks as f64);
            one(nm::GROUNDING_FAILURES_TOTAL, st.check_failures as f64);
            one(nm::MODEL_ERRORS_TOTAL, st.model_errors as f64);
            one(nm::VOCABULARY_VIOLATIONS_TOTAL, st.vocab_violations as f64);
            one(nm::CLAIM_MISMATCHES_TOTAL, st.claim_mismatches as f64);
            one(nm::EXPLANATIONS_FROM_MODEL_TOTAL, st.from_model() as f64);
        }
        let m = &a.model;
        let us = |x: &AtomicU64| ld(x) / 1e6;
        one(nm::MODEL_GENERATIONS_TOTAL, ld(&m.generations));
        one(nm::MODEL_PROMPT_TOKENS_TOTAL, ld(&m.prompt_tokens));
        one(nm::MODEL_GENERATED_TOKENS_TOTAL, ld(&m.generated_tokens));
        one(nm::MODEL_PROMPT_SECONDS_TOTAL, us(&m.prompt_us));
        one(nm::MODEL_DECODE_SECONDS_TOTAL, us(&m.decode_us));
        one(nm::MODEL_CPU_SECONDS_TOTAL, us(&m.cpu_us));
        one(nm::MODEL_TIME_TO_FIRST_TOKEN_SECONDS, m.last_ttft_s.get());
        one(nm::MODEL_PROMPT_TOKENS_PER_SECOND, m.last_prompt_tps.get());
        one(nm::MODEL_DECODE_TOKENS_PER_SECOND, m.last_decode_tps.get());
        one(
            nm::MODEL_CPU_SECONDS_PER_TOKEN,
            m.last_cpu_per_token_s.get(),
        );
        one(nm::MODEL_QUEUE_DEPTH, ld(&m.queue_depth));
        one(nm::MODEL_JOBS_TOTAL, ld(&m.jobs));
        one(nm::MODEL_QUEUE_WAIT_SECONDS_TOTAL, us(&m.queue_wait_us));
        one(nm::MODEL_RESIDENT_MEMORY_BYTES, ld(&m.resident_bytes));
        if let Some(q) = a.ask.get() {
            one(nm::ASK_QUESTIONS_TOTAL, ld(&q.questions));
            one(nm::ASK_OPEN_QUESTIONS, ld(&q.open));
            one(nm::ASK_MODEL_TIMEOUTS_TOTAL, ld(&q.model_timeouts));
            let reasons = crate::ask::Reason::ALL
                .iter()
                .map(|r| {
                    let l = vec![(nm::LABEL_REASON, r.as_str().to_string())];
                    (l, q.rejected(*r) as f64)
                })
                .collect();
            fams.push((nm::ASK_REJECTED_TOTAL, reasons));
            let sources = crate::ask::SOURCES
                .iter()
                .map(|s| {
                    let l = vec![(nm::LABEL_SOURCE, crate::ask::source_str(*s).to_string())];
                    (l, q.answers(*s) as f64)
                })
                .collect();
            fams.push((nm::ASK_ANSWERS_TOTAL, sources));
        }
    }
    if let Some(rss) = crate::procinfo::rss_mb() {
        one(nm::PROCESS_RESIDENT_MEMORY_BYTES, rss * 1024.0 * 1024.0);
    }
    out.extend(fams);
    // The schema's order, so `/metrics` reads the same on every scrape.
    out.sort_by_key(|(m, _)| nm::ALL.iter().position(|x| x.name == m.name));
    out
}

/// Renders every metric of the node in Prometheus text format.
pub fn render(node: &NodeMetrics) -> String {
    let mut o = String::new();
    for (m, rows) in collect(node) {
        let _ = writeln!(
            o,
            "# HELP {name} {help}\n# TYPE {name} {kind}",
            name = m.name,
            help = m.help,
            kind = m.kind.as_str()
        );
        for (labels, v) in rows {
            o.push_str(m.name);
            if !labels.is_empty() {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
                    .collect();
                let _ = write!(o, "{{{}}}", l.join(","));
            }
            let _ = writeln!(o, " {v}");
        }
    }
    o
}

/// The node's metrics now as `millwright_node` records, one per label set (the unlabelled
/// metrics share one record). Field names: [`nm::influx_field`].
pub fn records(node: &NodeMetrics, ts_ns: i64) -> Vec<Record> {
    let mut by_labels: Vec<NodeMetricsPoint> = Vec::new();
    for (m, rows) in collect(node) {
        for (labels, v) in rows {
            let field = (nm::influx_field(m.name), v);
            match by_labels.iter_mut().find(|p| p.tags == labels) {
                Some(p) => p.fields.push(field),
                None => by_labels.push(NodeMetricsPoint {
                    tags: labels,
                    fields: vec![field],
                    ts_ns,
                }),
            }
        }
    }
    by_labels
        .into_iter()
        .map(|p| Record::NodeMetrics(Box::new(p)))
        .collect()
}

/// The normal ranges and limits of every profiled signal, as `millwright_limits` records.
pub fn limit_records(
    profiles: &[(String, millwright_profile::Profile)],
    ts_ns: i64,
) -> Vec<Record> {
    profiles
        .iter()
        .flat_map(|(asset, p)| {
            p.signals.iter().map(move |s| {
                Record::Limits(Box::new(millwright_core::SignalLimits {
                    sensor: millwright_core::SensorId::new(asset.as_str(), s.name.as_str()),
                    unit: s.unit.clone(),
                    normal: s.normal,
                    limits: s.limits,
                    ts_ns,
                }))
            })
        })
        .collect()
}

/// Writes the node's metrics, and the profiled signals' normal ranges and limits (so
/// dashboards can draw them in any time range), through `writer` every `every` until the task
/// is aborted.
pub async fn write_every(
    m: std::sync::Arc<NodeMetrics>,
    profiles: Vec<(String, millwright_profile::Profile)>,
    writer: millwright_sinks::InfluxWriter,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = crate::time_ns();
        let mut recs = records(&m, now);
        recs.extend(limit_records(&profiles, now));
        if writer.write_records(recs).await.is_err() {
            tracing::warn!("influxdb writer stopped; node metrics are no longer written");
            return;
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The parts of a node the metrics read (cheap clones of shared counters).
pub struct NodeMetrics {
    /// Pipeline readings.
    pub readings: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// MQTT status.
    pub mqtt: Option<std::sync::Arc<millwright_ingest::mqtt::SourceStatus>>,
    /// InfluxDB status.
    pub influx: Option<std::sync::Arc<millwright_sinks::SinkStatus>>,
    /// Modbus device counters.
    pub modbus: Option<std::sync::Arc<millwright_ingest::modbus::ModbusMetrics>>,
    /// Analytics counters.
    pub analytics: Option<std::sync::Arc<crate::analytics::AnalyticsStatus>>,
    /// The egress policy and its refusals.
    pub egress: Option<std::sync::Arc<crate::egress::EgressGuard>>,
    /// Panics, restarts and fatal failures of the node's tasks.
    pub tasks: std::sync::Arc<crate::node::TaskHealth>,
    /// The byte budgets of the node's queues.
    pub budgets: Option<crate::memory::Budgets>,
    /// The local store (its series count and cap).
    pub store: Option<std::sync::Arc<std::sync::Mutex<millwright_store::Store>>>,
}

impl NodeMetrics {
    /// Takes the shared counters of a node.
    pub fn of(node: &Node) -> Self {
        Self {
            readings: node.readings.clone(),
            mqtt: node.mqtt.clone(),
            influx: node.influx.clone(),
            modbus: node.modbus.as_ref().map(|m| m.metrics.clone()),
            analytics: None,
            egress: Some(node.egress.clone()),
            tasks: node.tasks.clone(),
            budgets: Some(node.budgets.clone()),
            store: Some(node.store.clone()),
        }
    }
}
