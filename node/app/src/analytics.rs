//! The node's analytics thread: asset profiles' detectors over the reading bus, explanation
//! cards for new anomalies (on-device model with grounding check, else the rule-based
//! template), published as JSON on MQTT `<root>/<site>/alerts/<asset>` and written to InfluxDB
//! as `millwright_anomaly` events. Maintenance reports of an asset are published on
//! `<root>/<site>/reports/<asset>` (JSON) and `…/reports/<asset>/markdown` and written as
//! `millwright_report` points: when an anomaly of the asset closes, every `report_interval_s`
//! (per shift), and on request (an asset name published to `<root>/<site>/reports/request`).
//!
//! It runs on its own OS thread: model inference never blocks the async runtime, and a slow
//! explanation never slows ingest (the tap is bounded and lossy for analytics only; every
//! reading still reaches the store and the sinks).

use crate::config::{AssetConfig, Config};
use millwright_core::anomaly::{Anomaly, MaintenanceReport, Phase};
use millwright_core::{Batch, LanguageModel};
use millwright_detect::AssetMonitor;
use millwright_profile::Profile;
use millwright_sinks::InfluxWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Asking for this "asset" (`reports/request` payload `site`) gives the site report, published
/// on `reports/site/markdown` after every asset's own report.
pub const SITE_REQUEST: &str = "site";

/// Counters of the analytics thread.
#[derive(Debug, Default)]
pub struct AnalyticsStatus {
    /// Anomaly events opened.
    pub anomalies: AtomicU64,
    /// Alerts published on MQTT.
    pub alerts_published: AtomicU64,
    /// Explanations whose text came from the model (passed the grounding check).
    pub explanations_model: AtomicU64,
    /// Explanations that used the rule-based template.
    pub explanations_fallback: AtomicU64,
    /// Maintenance reports written.
    pub reports: AtomicU64,
    /// Grounding-check counters of the explainer (set when the thread starts).
    pub explain: std::sync::OnceLock<Arc<millwright_reason::ExplainCounters>>,
}

/// Resolves an asset's profile path (relative paths are relative to the config file's folder).
pub fn profile_path(base: &Path, a: &AssetConfig) -> PathBuf {
    let p = PathBuf::from(&a.profile);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// Loads every asset's profile; errors name the asset and the file.
pub fn load_profiles(cfg: &Config, base: &Path) -> Result<Vec<(String, Profile)>, Vec<String>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (i, a) in cfg.assets.iter().enumerate() {
        let path = profile_path(base, a);
        match Profile::load(&path) {
            Ok(p) => {
                let v = p.validate();
                if v.is_empty() {
                    out.push((a.name.clone(), p));
                } else {
                    for e in v {
                        errs.push(format!("assets[{i}] ({}): {}: {e}", a.name, path.display()));
                    }
                }
            }
            Err(e) => errs.push(format!("assets[{i}] ({}): {e}", a.name)),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Where alerts go.
pub struct Outputs {
    /// MQTT client for alerts (already driven by its own event-loop task).
    pub mqtt: Option<rumqttc::AsyncClient>,
    /// Topic prefix `<root>/<site>/`.
    pub topic_prefix: String,
    /// InfluxDB writer.
    pub influx: Option<InfluxWriter>,
    /// Runtime handle, to hand work to async sinks from this thread.
    pub rt: tokio::runtime::Handle,
    /// Report requests (asset names) from MQTT.
    pub requests: Option<std::sync::mpsc::Receiver<String>>,
    /// The local store (reports are built from it).
    pub store: Arc<std::sync::Mutex<millwright_store::Store>>,
    /// Site name.
    pub site: String,
    /// Seconds between scheduled reports of every asset (0: none).
    pub report_interval_s: u64,
}

impl Outputs {
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

    fn write_record(&self, record: millwright_core::Record) {
        if let Some(w) = &self.influx {
            let w = w.clone();
            self.rt.spawn(async move {
                let _ = w.write_record(record).await;
            });
        }
    }

    /// Builds, publishes and stores the report of one asset; returns its Markdown.
    fn report(
        &self,
        asset: &str,
        profile: Option<&Profile>,
        events: &[Anomaly],
        cards: &[millwright_core::anomaly::ExplanationCard],
        status: &AnalyticsStatus,
    ) -> Option<MaintenanceReport> {
        let r = {
            let store = self.store.lock().ok()?;
            crate::reports::asset_report(
                &store,
                &self.site,
                asset,
                profile,
                (i64::MIN, i64::MAX),
                events,
                cards,
            )
        };
        let md = millwright_reason::to_markdown(&r);
        let base = format!(
            "{}{}/{asset}",
            self.topic_prefix,
            millwright_core::schema::topics::REPORTS
        );
        if let Ok(json) = millwright_reason::to_json(&r) {
            self.publish(base.clone(), json);
        }
        self.publish(format!("{base}/markdown"), md.clone());
        self.write_record(millwright_core::Record::report(
            r.clone(),
            md,
            millwright_core::time::now_ns(),
        ));
        status.reports.fetch_add(1, Ordering::Relaxed);
        Some(r)
    }
}

/// Starts an MQTT client for the node's own publications (alerts, reports), with `status` as
/// its retained last will; report requests arrive on the returned receiver.
pub fn alert_client(
    cfg: &Config,
) -> Option<(rumqttc::AsyncClient, std::sync::mpsc::Receiver<String>)> {
    let m = cfg.mqtt.as_ref()?;
    let request_topic = format!(
        "{}/{}/{}/request",
        cfg.site.topic_root,
        cfg.site.name,
        millwright_core::schema::topics::REPORTS
    );
    let (req_tx, req_rx) = std::sync::mpsc::channel::<String>();
    let mut opts = match m
        .connection()
        .with_client_id(format!("{}-out", m.client_id))
        .v4_options()
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
        millwright_core::schema::topics::STATUS
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
                    if !asset.is_empty() && asset.len() < 256 {
                        let _ = req_tx.send(asset);
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
    Some((client, req_rx))
}

/// Runs detection and explanation until the tap closes.
pub fn run(
    mut rx: mpsc::Receiver<Batch>,
    profiles: Vec<(String, Profile)>,
    mut model: Option<Box<dyn LanguageModel>>,
    out: Outputs,
    status: Arc<AnalyticsStatus>,
) {
    let known: Vec<String> = profiles.iter().map(|(a, _)| a.clone()).collect();
    let mut monitors: Vec<(AssetMonitor, Profile)> = Vec::new();
    for (asset, p) in profiles {
        match AssetMonitor::new(&asset, &p) {
            Ok(m) => monitors.push((m, p)),
            Err(e) => tracing::error!(%asset, error = %e, "asset monitor not started"),
        }
    }
    let explainer = millwright_reason::Explainer::new(millwright_reason::ExplainOptions {
        known_assets: known,
        ..Default::default()
    });
    let _ = status.explain.set(explainer.counters().clone());
    let mut events: Vec<Anomaly> = Vec::new();
    let mut history: Vec<Anomaly> = Vec::new();
    let mut cards: Vec<millwright_core::anomaly::ExplanationCard> = Vec::new();
    let mut last_tick = std::time::Instant::now();
    let mut last_report = std::time::Instant::now();
    loop {
        let batch = match rx.try_recv() {
            Ok(b) => b,
            Err(mpsc::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(20));
                Vec::new()
            }
            Err(mpsc::error::TryRecvError::Disconnected) => return,
        };
        for r in &batch {
            for (m, _) in monitors.iter_mut() {
                if *r.sensor.asset == *m.asset() {
                    m.observe(r, &mut events);
                }
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = std::time::Instant::now();
            let now = millwright_core::time::now_ns();
            for (m, _) in monitors.iter_mut() {
                m.tick(now, &mut events);
            }
        }
        let mut report_assets: Vec<String> = Vec::new();
        if let Some(req) = &out.requests {
            while let Ok(asset) = req.try_recv() {
                report_assets.push(asset);
            }
        }
        if out.report_interval_s > 0
            && last_report.elapsed() >= Duration::from_secs(out.report_interval_s)
        {
            last_report = std::time::Instant::now();
            report_assets.extend(monitors.iter().map(|(m, _)| m.asset().to_string()));
        }
        // Keep the event history bounded (the latest 1000 events).
        if history.len() > 1000 {
            history.drain(..history.len() - 1000);
        }
        if cards.len() > 1000 {
            cards.drain(..cards.len() - 1000);
        }
        for ev in events.drain(..) {
            history.retain(|h| h.id != ev.id);
            history.push(ev.clone());
            if ev.phase == Phase::Closed {
                report_assets.push(ev.sensor.asset.to_string());
            }
            if ev.phase != Phase::Opened {
                continue;
            }
            status.anomalies.fetch_add(1, Ordering::Relaxed);
            let profile = monitors
                .iter()
                .find(|(m, _)| *m.asset() == *ev.sensor.asset)
                .map(|(_, p)| p);
            let card = match model.as_mut() {
                Some(m) => {
                    let m: &mut dyn LanguageModel = &mut **m;
                    explainer.explain(&ev, profile, Some(m))
                }
                None => explainer.explain(&ev, profile, None),
            };
            if card.source == millwright_core::anomaly::TextSource::Model {
                status.explanations_model.fetch_add(1, Ordering::Relaxed);
            } else {
                status.explanations_fallback.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(asset = %card.asset, signal = %card.signal, kind = ?card.kind, score = card.score, text = %card.text, "anomaly");
            if let Some(client) = &out.mqtt {
                match millwright_reason::card_json(&card) {
                    Ok(json) => {
                        let topic = format!(
                            "{}{}/{}",
                            out.topic_prefix,
                            millwright_core::schema::topics::ALERTS,
                            card.asset
                        );
                        match client.try_publish(topic, rumqttc::QoS::AtLeastOnce, false, json) {
                            Ok(()) => {
                                status.alerts_published.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "alert could not be queued for MQTT")
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "alert could not be serialised"),
                }
            }
            out.write_record(card.clone().into());
            cards.push(card);
        }
        report_assets.sort();
        report_assets.dedup();
        let site_report = report_assets.iter().any(|a| a == SITE_REQUEST)
            || report_assets.len() >= monitors.len().max(2);
        let mut site_reports = Vec::new();
        for asset in report_assets {
            if asset == SITE_REQUEST {
                continue;
            }
            let profile = monitors
                .iter()
                .find(|(m, _)| m.asset() == asset)
                .map(|(_, p)| p);
            if profile.is_none()
                && out
                    .store
                    .lock()
                    .map(|s| s.signals_of(&asset).is_empty())
                    .unwrap_or(true)
            {
                tracing::warn!(%asset, "report requested for an unknown asset");
                continue;
            }
            let evs: Vec<Anomaly> = history
                .iter()
                .filter(|a| *a.sensor.asset == *asset)
                .cloned()
                .collect();
            if let Some(r) = out.report(&asset, profile, &evs, &cards, &status) {
                tracing::info!(%asset, "maintenance report published");
                site_reports.push(r);
            }
        }
        if site_report {
            if site_reports.is_empty() {
                // A site report on request covers every asset.
                for (m, p) in &monitors {
                    let evs: Vec<Anomaly> = history
                        .iter()
                        .filter(|a| *a.sensor.asset == *m.asset())
                        .cloned()
                        .collect();
                    if let Some(r) = out.report(m.asset(), Some(p), &evs, &cards, &status) {
                        site_reports.push(r);
                    }
                }
            }
            let md = millwright_reason::site_markdown(&out.site, &site_reports);
            out.publish(
                format!(
                    "{}{}/{SITE_REQUEST}/markdown",
                    out.topic_prefix,
                    millwright_core::schema::topics::REPORTS
                ),
                md,
            );
        }
    }
}
