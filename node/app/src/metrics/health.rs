//! The node's health, per part, as one JSON document: served on `GET /health` and published
//! retained on `<root>/<site>/status/health` (next to the `online`/`offline` `status` topic).
//!
//! Overall `status`:
//! * `failing` (HTTP 503): the node cannot do its job now — broker disconnected, InfluxDB writes
//!   failing, a task failed for good (the node is about to exit non-zero), the analytics thread
//!   stopped or stuck (heartbeat older than [`ANALYTICS_STALE_S`]).
//! * `degraded` (HTTP 200): it works, but part of it does not — a subscription silent or refused
//!   by the broker, a Modbus device offline, the model in fallback (template explanations),
//!   a task panicked and was restarted in the last [`RECENT_PANIC_S`].
//! * `ok` (HTTP 200).
//!
//! Every reason is a sentence in `reasons`. This module only reads shared counters; it neither
//! counts nor serves anything.

use super::NodeMetrics;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// Seconds without an analytics heartbeat after which the thread counts as stuck.
pub const ANALYTICS_STALE_S: f64 = 30.0;
/// Seconds a restarted panic keeps the node `degraded`.
pub const RECENT_PANIC_S: f64 = 600.0;

/// Overall state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Overall {
    /// Every part works.
    Ok,
    /// Works, with a part missing or late.
    Degraded,
    /// Cannot do its job now.
    Failing,
}

impl Overall {
    /// `ok`, `degraded` or `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Ok => "ok",
            Overall::Degraded => "degraded",
            Overall::Failing => "failing",
        }
    }
    /// HTTP status line of `/health`: 503 only when failing.
    pub fn http_status(self) -> &'static str {
        match self {
            Overall::Failing => "503 Service Unavailable",
            _ => "200 OK",
        }
    }
}

/// The health document and its overall state.
pub struct Health {
    /// Overall state.
    pub overall: Overall,
    /// Why not ok (empty when ok).
    pub reasons: Vec<String>,
    /// The whole document (`status` and `reasons` included).
    pub doc: Value,
}

struct Verdict {
    overall: Overall,
    reasons: Vec<String>,
}

impl Verdict {
    fn add(&mut self, level: Overall, why: String) {
        self.overall = self.overall.max(level);
        self.reasons.push(why);
    }
}

fn age_s(now_ms: i64, t_ms: i64) -> Option<f64> {
    (t_ms > 0).then(|| (now_ms - t_ms).max(0) as f64 / 1000.0)
}

/// The node's health now (`now_ms`: Unix ms).
pub fn health(m: &NodeMetrics, now_ms: i64) -> Health {
    let mut v = Verdict {
        overall: Overall::Ok,
        reasons: Vec::new(),
    };
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut doc = serde_json::Map::new();
    if let Some(s) = &m.mqtt {
        let connected = s.connected.load(Ordering::Relaxed);
        let last_error = s.last_error.lock().ok().and_then(|g| g.clone());
        if !connected {
            v.add(
                Overall::Failing,
                format!(
                    "mqtt: not connected to the broker ({})",
                    last_error.as_deref().unwrap_or("connecting")
                ),
            );
        }
        let mut subs = Vec::new();
        for sub in &s.subscriptions {
            let w = &sub.watch;
            let silent = w.silent.load(Ordering::Relaxed);
            let refusal = w.refusal();
            let age = w.last_message_age_s(now_ms);
            if silent {
                v.add(
                    Overall::Degraded,
                    format!(
                        "mqtt: subscription {} silent for more than {} s while connected",
                        sub.topic,
                        w.window_ms as f64 / 1000.0
                    ),
                );
            }
            if let Some(r) = &refusal {
                v.add(
                    Overall::Degraded,
                    format!("mqtt: broker refused subscription {} ({r})", sub.topic),
                );
            }
            subs.push(json!({
                "topic": sub.topic,
                "messages": ld(&sub.counters.messages),
                "last_message_age_s": age,
                "silence_window_s": (w.window_ms > 0).then(|| w.window_ms as f64 / 1000.0),
                "subscribed": w.subscribed.load(Ordering::Relaxed),
                "silent": silent,
                "silences": ld(&w.silences),
                "refused": refusal,
                "suback_failures": ld(&w.suback_failures),
                "rejected": sub.counters.rejected_total(),
            }));
        }
        doc.insert(
            "mqtt".into(),
            json!({
                "connected": connected,
                "connections": ld(&s.connections),
                "connection_errors": ld(&s.connection_errors),
                "last_error": last_error,
                "subscriptions": subs,
            }),
        );
    }
    if let Some(mb) = &m.modbus {
        let offline: Vec<&str> = mb
            .devices
            .iter()
            .filter(|d| d.is_offline())
            .map(|d| d.device.as_str())
            .collect();
        for d in &offline {
            v.add(Overall::Degraded, format!("modbus: device {d} offline"));
        }
        doc.insert(
            "modbus".into(),
            json!({ "devices": mb.devices.len(), "offline": offline }),
        );
    }
    if let Some(i) = &m.influx {
        let healthy = i.healthy.load(Ordering::Relaxed);
        let failed = ld(&i.failed_requests);
        let last_error = i.last_error.lock().ok().and_then(|g| g.clone());
        if failed > 0 && !healthy {
            v.add(
                Overall::Failing,
                format!(
                    "influxdb: writes failing ({}); {} points waiting",
                    last_error.as_deref().unwrap_or("no answer"),
                    ld(&i.backlog_points)
                ),
            );
        }
        // Write errors by kind (requests, points); a configuration refusal is loud.
        let write_errors: serde_json::Map<String, Value> = i
            .errors
            .snapshot()
            .into_iter()
            .filter(|e| e.1 > 0 || e.2 > 0)
            .map(|(k, r, p)| (k.to_string(), json!({ "requests": r, "points": p })))
            .collect();
        let config_error = i.errors.config_error.load(Ordering::Relaxed);
        if config_error {
            v.add(
                Overall::Failing,
                "influxdb: the database refuses the node's configuration (token, org, bucket, certificate or url); data waits".to_string(),
            );
        }
        // The disk outbox: depth, bytes, oldest age, what it dropped, whether it holds ingest.
        let outbox = if i.outbox_enabled.load(Ordering::Relaxed) {
            let oldest = ld(&i.outbox_oldest_ms) as f64;
            let age_s = if oldest > 0.0 {
                Some(((now_ms as f64 - oldest) / 1000.0).max(0.0))
            } else {
                None
            };
            let blocking = i.outbox_blocking.load(Ordering::Relaxed);
            if blocking {
                v.add(
                    Overall::Degraded,
                    "influxdb: outbox full, ingest held back (block_ingest)".to_string(),
                );
            }
            json!({
                "points": ld(&i.backlog_points),
                "bytes": ld(&i.outbox_bytes),
                "disk_bytes": ld(&i.outbox_disk_bytes),
                "oldest_age_s": age_s,
                "blocking_ingest": blocking,
                "dropped_by_age": ld(&i.outbox_dropped_age_points),
                "torn_records": ld(&i.outbox_torn_records),
                "io_errors": ld(&i.outbox_io_errors),
            })
        } else {
            Value::Null
        };
        doc.insert(
            "influxdb".into(),
            json!({
                "healthy": healthy,
                "backlog_points": ld(&i.backlog_points),
                "written_points": ld(&i.written_points),
                "failed_requests": failed,
                "dropped_points": ld(&i.dropped_points),
                "rejected_points": ld(&i.rejected_points),
                "outbox": outbox,
                "write_errors": write_errors,
                "config_error": config_error,
                "last_error": last_error,
            }),
        );
    }
    if let Some(a) = &m.analytics {
        let state = a.model.state();
        match &state {
            super::model::ModelState::Fallback(why) => v.add(
                Overall::Degraded,
                format!("model: in fallback, template explanations ({why})"),
            ),
            super::model::ModelState::Loading | super::model::ModelState::Loaded(_) => {}
            super::model::ModelState::NotConfigured => {}
        }
        let mut model = state.to_json();
        let p = millwright_slm::priority::status();
        if let Some(o) = model.as_object_mut() {
            // What `[model] nice` did to the model's threads.
            o.insert(
                "priority".into(),
                serde_json::json!({
                    "nice": p.nice.unwrap_or(0),
                    "threads_lowered": p.applied,
                    "threads_failed": p.failed,
                    "error": p.error,
                }),
            );
        }
        doc.insert("model".into(), model);
        let beat = a.heartbeat_unix_ms.load(Ordering::Relaxed);
        let age = age_s(now_ms, beat);
        let started = a.machine.get().is_some();
        let alive = started && age.is_some_and(|s| s <= ANALYTICS_STALE_S);
        if started && !alive {
            v.add(
                Overall::Failing,
                format!(
                    "analytics: thread stopped or stuck (last heartbeat {} s ago)",
                    age.map_or("never".into(), |s| format!("{s:.0}"))
                ),
            );
        }
        doc.insert(
            "analytics".into(),
            json!({
                "running": started,
                "alive": alive,
                "heartbeat_age_s": age,
                "dropped_batches": ld(&a.dropped_batches),
            }),
        );
        if let Some(p) = a.publisher.get() {
            doc.insert(
                "publisher".into(),
                json!({
                    "connected": p.connected.load(Ordering::Relaxed),
                    "queue_full": ld(&p.queue_full),
                    "dropped": ld(&p.dropped),
                }),
            );
        }
    }
    let t = &m.tasks;
    let last_panic = t.last_panic.lock().ok().and_then(|g| g.clone());
    let fatal = t.fatal.lock().ok().and_then(|g| g.clone());
    let panic_age = age_s(now_ms, t.last_panic_unix_ms.load(Ordering::Relaxed));
    if let Some(f) = &fatal {
        v.add(Overall::Failing, format!("tasks: {f}; the node is exiting"));
    } else if let (Some(a), Some(p)) = (panic_age, &last_panic) {
        if a < RECENT_PANIC_S {
            v.add(
                Overall::Degraded,
                format!("tasks: {p} ({a:.0} s ago; restarted)"),
            );
        }
    }
    doc.insert(
        "tasks".into(),
        json!({
            "panics": ld(&t.panics),
            "restarts": ld(&t.restarts),
            "last_panic": last_panic,
            "last_panic_age_s": panic_age,
            "fatal": fatal,
        }),
    );
    if let Some(g) = &m.egress {
        // The no-egress policy and its refusals (an endpoint outside the site's ranges).
        doc.insert("egress".into(), json!(g.summary()));
    }
    if let Some(b) = &m.budgets {
        // The memory budget, the caps derived from it, and how often each was hit.
        let queues: serde_json::Map<String, serde_json::Value> = b
            .all()
            .iter()
            .map(|q| {
                (
                    q.name().to_string(),
                    json!({
                        "cap_bytes": q.cap_bytes(),
                        "bytes": q.queued_bytes(),
                        "peak_bytes": q.peak_bytes(),
                        "full_total": q.hits(),
                    }),
                )
            })
            .collect();
        doc.insert(
            "memory".into(),
            json!({
                "budget_bytes": b.caps.budget_bytes,
                "mqtt_max_packet_bytes": b.caps.mqtt_packet_bytes,
                "influx_backlog_max_points": b.caps.backlog_points(),
                "queues": queues,
            }),
        );
    }
    if let Some(Ok(st)) = m.store.as_ref().map(|s| s.lock()) {
        doc.insert(
            "store".into(),
            json!({
                "series": st.series_count(),
                "max_series": st.max_series(),
                "rejected_readings": st.rejected_sensors(),
            }),
        );
    }
    doc.insert("status".into(), json!(v.overall.as_str()));
    doc.insert("reasons".into(), json!(v.reasons));
    doc.insert("ts_ms".into(), json!(now_ms));
    Health {
        overall: v.overall,
        reasons: v.reasons,
        doc: Value::Object(doc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_ingest::mqtt::source::SubscriptionStatus;
    use millwright_ingest::mqtt::watch::SubWatch;
    use millwright_ingest::mqtt::SourceStatus;
    use std::sync::Arc;

    fn node() -> NodeMetrics {
        let mqtt = SourceStatus {
            subscriptions: vec![SubscriptionStatus::new(
                "plant/{asset}/{signal}",
                SubWatch::new(Some(1.0), 5),
            )],
            ..Default::default()
        };
        mqtt.connected.store(true, Ordering::Relaxed);
        NodeMetrics {
            readings: Default::default(),
            mqtt: Some(Arc::new(mqtt)),
            influx: Some(Arc::new(millwright_sinks::SinkStatus::default())),
            modbus: None,
            analytics: Some(Default::default()),
            tasks: Default::default(),
            egress: None,
            budgets: None,
            store: None,
        }
    }

    #[test]
    fn every_part_well_is_ok_and_200() {
        let h = health(&node(), 1_000);
        assert_eq!(h.overall, Overall::Ok, "{}", h.doc);
        assert_eq!(h.overall.http_status(), "200 OK");
        assert_eq!(h.doc["status"], "ok");
        assert_eq!(h.doc["mqtt"]["subscriptions"][0]["silence_window_s"], 5.0);
        assert!(h.doc["mqtt"]["subscriptions"][0]["last_message_age_s"].is_null());
    }

    #[test]
    fn a_silent_or_refused_subscription_or_a_fallback_model_degrades_with_reasons() {
        let m = node();
        let sub = &m.mqtt.as_ref().unwrap().subscriptions[0];
        sub.watch.silent.store(true, Ordering::Relaxed);
        sub.watch
            .last_message_unix_ms
            .store(1_000, Ordering::Relaxed);
        let h = health(&m, 9_000);
        assert_eq!(h.overall, Overall::Degraded);
        assert_eq!(h.overall.http_status(), "200 OK");
        assert!(h.reasons[0].contains("silent"), "{:?}", h.reasons);
        assert_eq!(h.doc["mqtt"]["subscriptions"][0]["last_message_age_s"], 8.0);
        let a = m.analytics.as_ref().unwrap();
        a.model
            .set_state(super::super::model::ModelState::Fallback("no file".into()));
        let h = health(&m, 9_000);
        assert_eq!(h.reasons.len(), 2, "{:?}", h.reasons);
        assert!(h.reasons[1].contains("fallback") && h.reasons[1].contains("no file"));
        assert_eq!(h.doc["model"]["state"], "fallback");
    }

    #[test]
    fn a_disconnected_broker_failing_writes_or_a_fatal_task_fail_with_503() {
        let m = node();
        m.mqtt
            .as_ref()
            .unwrap()
            .connected
            .store(false, Ordering::Relaxed);
        let h = health(&m, 1);
        assert_eq!(h.overall, Overall::Failing);
        assert_eq!(h.overall.http_status(), "503 Service Unavailable");
        let m = node();
        let i = m.influx.as_ref().unwrap();
        i.failed_requests.store(3, Ordering::Relaxed);
        i.backlog_points.store(42, Ordering::Relaxed);
        let h = health(&m, 1);
        assert_eq!(h.overall, Overall::Failing);
        assert!(
            h.reasons[0].contains("42 points waiting"),
            "{:?}",
            h.reasons
        );
        let m = node();
        let _ = m.tasks.fatal("the pipeline task panicked: boom".into());
        let h = health(&m, 1);
        assert_eq!(h.overall, Overall::Failing);
        assert_eq!(h.doc["tasks"]["fatal"], "the pipeline task panicked: boom");
    }
}
