//! The node's analytics thread: asset profiles' detectors over the reading bus, explanation
//! cards for new anomalies (on-device model with grounding check, else the rule-based
//! template), published as JSON on MQTT `<root>/<site>/alerts/<asset>` and written to InfluxDB
//! as `millwright_anomaly` events.
//!
//! It runs on its own OS thread: model inference never blocks the async runtime, and a slow
//! explanation never slows ingest (the tap is bounded and lossy for analytics only; every
//! reading still reaches the store and the sinks).

use crate::config::{AssetConfig, Config};
use millwright_core::anomaly::{Anomaly, Phase};
use millwright_core::{Batch, LanguageModel};
use millwright_detect::{AssetMonitor, Profile};
use millwright_sinks::InfluxWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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
}

/// Starts an MQTT client for the node's own publications (alerts), with `status` as its
/// retained last will.
pub fn alert_client(cfg: &Config) -> Option<rumqttc::AsyncClient> {
    let m = cfg.mqtt.as_ref()?;
    let mut opts =
        rumqttc::MqttOptions::new(format!("{}-out", m.client_id), m.host.clone(), m.port);
    opts.set_keep_alive(Duration::from_secs(m.keep_alive_s));
    if let Some(u) = &m.username {
        opts.set_credentials(
            u.clone(),
            m.password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
        );
    }
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
    let mut events: Vec<Anomaly> = Vec::new();
    let mut last_tick = std::time::Instant::now();
    loop {
        let batch = match rx.blocking_recv() {
            Some(b) => b,
            None => return,
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
            let now = millwright_ingest::time::now_ns();
            for (m, _) in monitors.iter_mut() {
                m.tick(now, &mut events);
            }
        }
        for ev in events.drain(..) {
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
            if let Some(w) = &out.influx {
                let line = millwright_reason::card_point(&card).to_line();
                let w = w.clone();
                out.rt.spawn(async move {
                    let _ = w.write_lines(line, 1).await;
                });
            }
        }
    }
}
