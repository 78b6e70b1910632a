//! Delivery of the running node's analytics outputs: alerts as JSON on MQTT
//! `<root>/<site>/alerts/<asset>` (an incident's card when it opens, the incident's JSON on each
//! update and on its close; every incident phase is a `millwright_incident` point), maintenance reports on `<root>/<site>/reports/<asset>` (JSON)
//! and `…/reports/<asset>/markdown`, the site report on `…/reports/site/markdown`; cards and
//! reports also go to InfluxDB as `millwright_anomaly` / `millwright_report` points.
//!
//! Also the MQTT client of the node's own publications ([`alert_client`]): retained status with
//! its last will, and report requests from `<root>/<site>/reports/request`. Nothing here
//! decides what to publish; that is the analytics machine's job.

use super::{AnalyticsStatus, Deliver, Requests, SITE_REQUEST};
use crate::config::Config;
use millwright_core::anomaly::{Anomaly, ExplanationCard, MaintenanceReport};
use millwright_core::schema::topics;
use millwright_core::{Incident, Phase};
use millwright_sinks::mqtt::{MqttPublisher, MqttRequest, PublisherConfig};
use millwright_sinks::InfluxWriter;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Publishes on MQTT and writes to InfluxDB (each optional).
pub struct NodeDeliver {
    /// The node's MQTT publisher for alerts and reports.
    pub mqtt: Option<MqttPublisher>,
    /// InfluxDB writer.
    pub influx: Option<InfluxWriter>,
    /// Runtime handle, to hand writes to the async writer from the analytics thread.
    pub rt: tokio::runtime::Handle,
    /// Counters.
    pub status: Arc<AnalyticsStatus>,
}

impl NodeDeliver {
    /// Queues `payload` on `<prefix><topic_suffix>`; a message that cannot be queued is counted
    /// and logged by the publisher.
    fn publish(&self, topic_suffix: String, payload: String) -> bool {
        match &self.mqtt {
            Some(p) => p.publish(&topic_suffix, payload),
            None => false,
        }
    }

    fn write_record(&self, record: millwright_core::Record) {
        if let Some(w) = &self.influx {
            let w = w.clone();
            self.rt.spawn(async move {
                let _ = w.write_record(record).await;
            });
        }
    }
}

impl Deliver for NodeDeliver {
    fn incident(&mut self, i: &Incident) {
        tracing::info!(id = %i.id, phase = ?i.phase, severity = i.severity.as_str(), diagnosis = i.top().map_or("", |t| t.id.as_str()), "incident");
        // The opening is told by the incident's card (the alert); updates and the close here.
        if i.phase != Phase::Opened && self.mqtt.is_some() {
            match serde_json::to_string(i) {
                Ok(json) => {
                    let topic = format!("{}/{}", topics::ALERTS, i.asset);
                    if self.publish(topic, json) {
                        self.status.alerts_published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => tracing::error!(error = %e, "incident could not be serialised"),
            }
        }
        self.write_record(i.clone().into());
    }

    fn event(&mut self, event: &Anomaly) {
        // The event's numbers (score, value, baseline, z) for dashboards; its card follows.
        self.write_record(event.clone().into());
    }

    fn alert(&mut self, card: &ExplanationCard) {
        tracing::warn!(asset = %card.asset, signal = %card.signal, kind = ?card.kind, score = card.score, text = %card.text, "anomaly");
        if self.mqtt.is_some() {
            match millwright_reason::card_json(card) {
                Ok(json) => {
                    let topic = format!("{}/{}", topics::ALERTS, card.asset);
                    if self.publish(topic, json) {
                        self.status.alerts_published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => tracing::error!(error = %e, "alert could not be serialised"),
            }
        }
        self.write_record(card.clone().into());
    }

    fn report(&mut self, r: &MaintenanceReport, markdown: &str) {
        let base = format!("{}/{}", topics::REPORTS, r.asset);
        if let Ok(json) = millwright_reason::to_json(r) {
            self.publish(base.clone(), json);
        }
        self.publish(format!("{base}/markdown"), markdown.to_string());
        self.write_record(millwright_core::Record::report(
            r.clone(),
            markdown.to_string(),
            millwright_core::time::now_ns(),
        ));
        tracing::info!(asset = %r.asset, "maintenance report published");
    }

    fn site_report(&mut self, markdown: &str) {
        self.publish(
            format!("{}/{SITE_REQUEST}/markdown", topics::REPORTS),
            markdown.to_string(),
        );
    }
}

/// Starts the node's MQTT publisher ([`MqttPublisher`]: retained `status` with its last will,
/// counted publications) for alerts and reports; payloads published on
/// `<root>/<site>/reports/request` (an asset tag, or `site`) become report requests.
pub fn alert_client(cfg: &Config, requests: Requests) -> Option<MqttPublisher> {
    let m = cfg.mqtt.as_ref()?;
    let opts = match m
        .connection()
        .with_client_id(format!("{}-out", m.client_id))
        .v4_options()
    {
        Ok(o) => o.into_inner(),
        Err(e) => {
            tracing::error!(error = %e, "alert publisher not started");
            return None;
        }
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<MqttRequest>(64);
    let publisher = MqttPublisher::spawn(
        opts,
        PublisherConfig {
            prefix: format!("{}/{}/", cfg.site.topic_root, cfg.site.name),
            request_topics: vec![format!("{}/request", topics::REPORTS)],
            queue: 256,
        },
        Some(tx),
    );
    // Report requests reach the analytics driver's input channel; this thread ends when the
    // publisher (the request channel's sender) is gone.
    let spawned = std::thread::Builder::new()
        .name("report-requests".into())
        .spawn(move || {
            while let Ok(r) = rx.recv() {
                let asset = r.payload.trim().to_string();
                if !asset.is_empty() && asset.len() < 256 && !requests.request(asset) {
                    tracing::warn!("report request dropped: analytics is behind");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "report requests over MQTT are not served");
    }
    Some(publisher)
}
