//! Delivery of the running node's analytics outputs: alerts as JSON on MQTT
//! `<root>/<site>/alerts/<asset>`, maintenance reports on `<root>/<site>/reports/<asset>` (JSON)
//! and `…/reports/<asset>/markdown`, the site report on `…/reports/site/markdown`; cards and
//! reports also go to InfluxDB as `millwright_anomaly` / `millwright_report` points.
//!
//! Also the MQTT client of the node's own publications ([`alert_client`]): retained status with
//! its last will, and report requests from `<root>/<site>/reports/request`. Nothing here
//! decides what to publish; that is the analytics machine's job.

use super::{AnalyticsStatus, Deliver, Requests, SITE_REQUEST};
use crate::config::Config;
use millwright_core::anomaly::{ExplanationCard, MaintenanceReport};
use millwright_core::schema::topics;
use millwright_sinks::InfluxWriter;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Publishes on MQTT and writes to InfluxDB (each optional).
pub struct NodeDeliver {
    /// MQTT client for alerts and reports (driven by its own event-loop task).
    pub mqtt: Option<rumqttc::AsyncClient>,
    /// Topic prefix `<root>/<site>/`.
    pub topic_prefix: String,
    /// InfluxDB writer.
    pub influx: Option<InfluxWriter>,
    /// Runtime handle, to hand writes to the async writer from the analytics thread.
    pub rt: tokio::runtime::Handle,
    /// Counters.
    pub status: Arc<AnalyticsStatus>,
}

impl NodeDeliver {
    fn publish(&self, topic: String, payload: String) -> bool {
        match &self.mqtt {
            Some(c) => match c.try_publish(topic, rumqttc::QoS::AtLeastOnce, false, payload) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "could not queue an MQTT publication");
                    false
                }
            },
            None => false,
        }
    }

    fn write_line(&self, line: String) {
        if let Some(w) = &self.influx {
            let w = w.clone();
            self.rt.spawn(async move {
                let _ = w.write_lines(line, 1).await;
            });
        }
    }
}

impl Deliver for NodeDeliver {
    fn alert(&mut self, card: &ExplanationCard) {
        tracing::warn!(asset = %card.asset, signal = %card.signal, kind = ?card.kind, score = card.score, text = %card.text, "anomaly");
        if self.mqtt.is_some() {
            match millwright_reason::card_json(card) {
                Ok(json) => {
                    let topic = format!("{}{}/{}", self.topic_prefix, topics::ALERTS, card.asset);
                    if self.publish(topic, json) {
                        self.status.alerts_published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => tracing::error!(error = %e, "alert could not be serialised"),
            }
        }
        self.write_line(millwright_reason::card_point(card).to_line());
    }

    fn report(&mut self, r: &MaintenanceReport, markdown: &str) {
        let base = format!("{}{}/{}", self.topic_prefix, topics::REPORTS, r.asset);
        if let Ok(json) = millwright_reason::to_json(r) {
            self.publish(base.clone(), json);
        }
        self.publish(format!("{base}/markdown"), markdown.to_string());
        self.write_line(
            millwright_reason::report_point(r, markdown, millwright_ingest::time::now_ns())
                .to_line(),
        );
        tracing::info!(asset = %r.asset, "maintenance report published");
    }

    fn site_report(&mut self, markdown: &str) {
        self.publish(
            format!(
                "{}{}/{SITE_REQUEST}/markdown",
                self.topic_prefix,
                topics::REPORTS
            ),
            markdown.to_string(),
        );
    }
}

/// Starts an MQTT client for the node's own publications (alerts, reports), with `status` as
/// its retained last will; report requests go to `requests`.
pub fn alert_client(cfg: &Config, requests: Requests) -> Option<rumqttc::AsyncClient> {
    let m = cfg.mqtt.as_ref()?;
    let request_topic = format!(
        "{}/{}/{}/request",
        cfg.site.topic_root,
        cfg.site.name,
        topics::REPORTS
    );
    let mut opts = match millwright_ingest::mqtt::client_options(m, format!("{}-out", m.client_id))
    {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "alert publisher not started");
            return None;
        }
    };
    let status_topic = format!(
        "{}/{}/{}",
        cfg.site.topic_root,
        cfg.site.name,
        topics::STATUS
    );
    opts.set_last_will(rumqttc::LastWill::new(
        status_topic.clone(),
        "offline",
        rumqttc::QoS::AtLeastOnce,
        true,
    ));
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 256);
    let c2 = client.clone();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = c2.try_publish(
                        status_topic.clone(),
                        rumqttc::QoS::AtLeastOnce,
                        true,
                        "online",
                    );
                    let _ = c2.try_subscribe(request_topic.clone(), rumqttc::QoS::AtLeastOnce);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let asset = String::from_utf8_lossy(&p.payload).trim().to_string();
                    if !asset.is_empty() && asset.len() < 256 && !requests.request(asset) {
                        tracing::warn!("report request dropped: analytics is behind");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "alert publisher: connection failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Some(client)
}
