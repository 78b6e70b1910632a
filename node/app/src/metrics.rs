//! Prometheus text metrics and a health answer on a local HTTP port (`[node] metrics_listen`).
//!
//! A deliberately tiny HTTP/1.1 responder: `GET /metrics` (Prometheus text format) and
//! `GET /health` (`OK` or `DEGRADED` with reasons). It binds only where the config says
//! (loopback by default) and never connects anywhere.

use crate::node::Node;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Renders every counter of the node in Prometheus text format.
pub fn render(node: &NodeMetrics) -> String {
    let mut o = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, rows: &[(String, f64)]| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(o, "{name}{labels} {v}");
        }
    };
    metric(
        "millwright_readings_total",
        "Readings that passed the pipeline.",
        "counter",
        &[(String::new(), node.readings.load(Ordering::Relaxed) as f64)],
    );
    if let Some(m) = &node.mqtt {
        metric(
            "millwright_mqtt_connected",
            "1 while connected to the broker.",
            "gauge",
            &[(
                String::new(),
                m.connected.load(Ordering::Relaxed) as u8 as f64,
            )],
        );
        metric(
            "millwright_mqtt_connections_total",
            "Successful broker connections (reconnects add up).",
            "counter",
            &[(String::new(), m.connections.load(Ordering::Relaxed) as f64)],
        );
        metric(
            "millwright_mqtt_connection_errors_total",
            "Failed or lost broker connections.",
            "counter",
            &[(
                String::new(),
                m.connection_errors.load(Ordering::Relaxed) as f64,
            )],
        );
        let mut msgs = Vec::new();
        let mut rds = Vec::new();
        let mut rej = Vec::new();
        let (mut skip, mut gaps, mut rebirths) = (Vec::new(), Vec::new(), Vec::new());
        for s in &m.subscriptions {
            // Parts of accepted messages skipped (Sparkplug B metrics), and Sparkplug B events.
            for r in millwright_ingest::metrics::SkipReason::ALL {
                let l = format!(
                    "{{subscription=\"{}\",reason=\"{}\"}}",
                    esc(&s.topic),
                    r.as_str()
                );
                skip.push((l, s.counters.skipped(r) as f64));
            }
            let l = format!("{{subscription=\"{}\"}}", esc(&s.topic));
            gaps.push((
                l.clone(),
                s.counters.sequence_gaps.load(Ordering::Relaxed) as f64,
            ));
            rebirths.push((
                l,
                s.counters.rebirth_requests.load(Ordering::Relaxed) as f64,
            ));
            let l = format!("{{subscription=\"{}\"}}", esc(&s.topic));
            msgs.push((
                l.clone(),
                s.counters.messages.load(Ordering::Relaxed) as f64,
            ));
            rds.push((l, s.counters.readings.load(Ordering::Relaxed) as f64));
            for r in millwright_ingest::metrics::RejectReason::ALL {
                rej.push((
                    format!(
                        "{{subscription=\"{}\",reason=\"{}\"}}",
                        esc(&s.topic),
                        r.as_str()
                    ),
                    s.counters.rejected(r) as f64,
                ));
            }
        }
        rej.push((
            "{subscription=\"\",reason=\"unknown_topic\"}".into(),
            m.unknown_topic.rejected_total() as f64,
        ));
        metric(
            "millwright_mqtt_messages_total",
            "MQTT messages received per subscription.",
            "counter",
            &msgs,
        );
        metric(
            "millwright_mqtt_readings_total",
            "Readings decoded per subscription.",
            "counter",
            &rds,
        );
        metric(
            "millwright_mqtt_rejected_total",
            "Rejected MQTT messages per subscription and reason.",
            "counter",
            &rej,
        );
        metric(
            "millwright_mqtt_skipped_total",
            "Parts of accepted MQTT messages that gave no reading (Sparkplug B metrics), per reason.",
            "counter",
            &skip,
        );
        metric(
            "millwright_mqtt_sparkplug_sequence_gaps_total",
            "Sparkplug B sequence gaps and DATA before BIRTH.",
            "counter",
            &gaps,
        );
        metric(
            "millwright_mqtt_sparkplug_rebirth_requests_total",
            "Sparkplug B rebirth requests sent (NCMD Node Control/Rebirth).",
            "counter",
            &rebirths,
        );
    }
    if let Some(mb) = &node.modbus {
        let mut rows: Vec<MetricRows> = vec![
            (
                "millwright_modbus_device_online",
                "1 while the device answers.",
                "gauge",
                vec![],
            ),
            (
                "millwright_modbus_requests_total",
                "Read requests sent.",
                "counter",
                vec![],
            ),
            (
                "millwright_modbus_exceptions_total",
                "Requests answered with a Modbus exception.",
                "counter",
                vec![],
            ),
            (
                "millwright_modbus_timeouts_total",
                "Requests that timed out.",
                "counter",
                vec![],
            ),
            (
                "millwright_modbus_transport_errors_total",
                "Requests that failed in transport.",
                "counter",
                vec![],
            ),
            (
                "millwright_modbus_offline_events_total",
                "Times the device went offline.",
                "counter",
                vec![],
            ),
            (
                "millwright_modbus_cycles_total",
                "Poll cycles completed.",
                "counter",
                vec![],
            ),
        ];
        for d in &mb.devices {
            let l = format!("{{device=\"{}\"}}", esc(&d.device));
            let vals = [
                f64::from(u8::from(!d.is_offline())),
                d.requests.load(Ordering::Relaxed) as f64,
                d.exceptions.load(Ordering::Relaxed) as f64,
                d.timeouts.load(Ordering::Relaxed) as f64,
                d.transport_errors.load(Ordering::Relaxed) as f64,
                d.offline_events.load(Ordering::Relaxed) as f64,
                d.cycles.load(Ordering::Relaxed) as f64,
            ];
            for (row, v) in rows.iter_mut().zip(vals) {
                row.3.push((l.clone(), v));
            }
        }
        for (name, help, kind, r) in &rows {
            metric(name, help, kind, r);
        }
    }
    if let Some(i) = &node.influx {
        for (name, help, v) in [
            (
                "millwright_influx_written_points_total",
                "Points the database accepted.",
                i.written_points.load(Ordering::Relaxed),
            ),
            (
                "millwright_influx_failed_requests_total",
                "Failed write requests (retried).",
                i.failed_requests.load(Ordering::Relaxed),
            ),
            (
                "millwright_influx_dropped_points_total",
                "Points dropped because the backlog was full.",
                i.dropped_points.load(Ordering::Relaxed),
            ),
            (
                "millwright_influx_rejected_points_total",
                "Points the database rejected as malformed.",
                i.rejected_points.load(Ordering::Relaxed),
            ),
            (
                "millwright_influx_backlog_points",
                "Points waiting to be written.",
                i.backlog_points.load(Ordering::Relaxed),
            ),
        ] {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            metric(name, help, kind, &[(String::new(), v as f64)]);
        }
    }
    if let Some(a) = &node.analytics {
        for (name, help, v) in [
            (
                "millwright_anomalies_total",
                "Anomaly events opened.",
                a.machine(|c| &c.anomalies),
            ),
            (
                "millwright_incidents_total",
                "Incidents opened (one per fault of an asset).",
                a.machine(|c| &c.incidents),
            ),
            (
                "millwright_incident_updates_total",
                "Incident updates told (a symptom added, severity up).",
                a.machine(|c| &c.incident_updates),
            ),
            (
                "millwright_incident_events_suppressed_total",
                "Anomaly event phases incidents took without telling (repeats, floods).",
                a.machine(|c| &c.events_suppressed),
            ),
            (
                "millwright_alerts_published_total",
                "Alerts published on MQTT.",
                a.alerts_published.load(Ordering::Relaxed),
            ),
            (
                "millwright_explanations_model_total",
                "Explanations written by the model (grounded).",
                a.machine(|c| &c.explanations_model),
            ),
            (
                "millwright_explanations_fallback_total",
                "Explanations from the rule-based template.",
                a.machine(|c| &c.explanations_fallback),
            ),
            (
                "millwright_explanations_queue_full_total",
                "Explanations the model queue could not take (the template explained at once).",
                a.explanations_queue_full.load(Ordering::Relaxed),
            ),
            (
                "millwright_reports_total",
                "Maintenance reports written.",
                a.machine(|c| &c.reports),
            ),
            (
                "millwright_analytics_dropped_batches_total",
                "Reading batches analytics skipped because it was behind (stored and written anyway).",
                a.dropped_batches.load(Ordering::Relaxed),
            ),
        ] {
            metric(name, help, "counter", &[(String::new(), v as f64)]);
        }
        if let Some(p) = a.publisher.get() {
            for (name, help, v) in [
                (
                    "millwright_mqtt_published_total",
                    "Messages (alerts, reports) handed to the node's MQTT publisher.",
                    p.published.load(Ordering::Relaxed),
                ),
                (
                    "millwright_mqtt_publish_queue_full_total",
                    "Messages not queued because the publisher's queue was full (broker away or slow).",
                    p.queue_full.load(Ordering::Relaxed),
                ),
                (
                    "millwright_mqtt_publish_dropped_total",
                    "Messages not queued for another reason (invalid topic, publisher closed).",
                    p.dropped.load(Ordering::Relaxed),
                ),
            ] {
                metric(name, help, "counter", &[(String::new(), v as f64)]);
            }
        }
        if let Some(c) = a.explain.get() {
            let st = c.snapshot();
            for (name, help, v) in [
                (
                    "millwright_grounding_checks_total",
                    "Grounding checks of model text.",
                    st.checks,
                ),
                (
                    "millwright_grounding_failures_total",
                    "Model texts that failed the grounding check (never published).",
                    st.check_failures,
                ),
                (
                    "millwright_model_errors_total",
                    "Model calls that failed.",
                    st.model_errors,
                ),
                (
                    "millwright_vocabulary_violations_total",
                    "Model texts with a word outside the request's vocabulary (never published; 0 with the vocabulary mask).",
                    st.vocab_violations,
                ),
                (
                    "millwright_claim_mismatches_total",
                    "Model texts with a cause or action the diagnosed failure modes do not state, or not naming the diagnosed mode (never published).",
                    st.claim_mismatches,
                ),
                (
                    "millwright_explanations_from_model_total",
                    "Explanations whose published text came from the model (the rest from the template).",
                    st.from_model(),
                ),
            ] {
                metric(name, help, "counter", &[(String::new(), v as f64)]);
            }
        }
    }
    if let Some(rss) = crate::procinfo::rss_mb() {
        metric(
            "millwright_rss_mb",
            "Resident memory of the node in MiB.",
            "gauge",
            &[(String::new(), rss)],
        );
    }
    o
}

/// One metric family: name, help, type, labelled values.
type MetricRows = (&'static str, &'static str, &'static str, Vec<(String, f64)>);

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
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
        }
    }
}

/// Serves `/metrics` and `/health` on `listen` until the task is aborted.
pub async fn serve(listener: TcpListener, m: NodeMetrics) {
    let m = std::sync::Arc::new(m);
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let m = m.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => ("200 OK", render(&m)),
                "/health" => {
                    let mut problems = Vec::new();
                    if let Some(s) = &m.mqtt {
                        if !s.connected.load(Ordering::Relaxed) {
                            problems.push("mqtt disconnected");
                        }
                    }
                    if let Some(i) = &m.influx {
                        if i.failed_requests.load(Ordering::Relaxed) > 0
                            && !i.healthy.load(Ordering::Relaxed)
                        {
                            problems.push("influxdb writes failing");
                        }
                    }
                    if problems.is_empty() {
                        ("200 OK", "OK\n".to_string())
                    } else {
                        (
                            "503 Service Unavailable",
                            format!("DEGRADED: {}\n", problems.join(", ")),
                        )
                    }
                }
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}
