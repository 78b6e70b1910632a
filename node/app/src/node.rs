//! Wiring of a running node: sources → reading bus → local store and sinks.
//!
//! One bounded channel (the reading bus) carries batches from every source to the pipeline
//! task, which stores them and forwards them to the InfluxDB writer. The writer never blocks
//! the pipeline (it buffers and retries on its own), so the local store stays current when the
//! database is down.

use crate::config::Config;
use anyhow::Context;
use millwright_core::Batch;
use millwright_ingest::mqtt::{MqttSource, SourceStatus};
use millwright_sinks::{InfluxWriter, SinkStatus};
use millwright_store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Shared handles of a running node.
pub struct Node {
    /// Recent history, shared with readers.
    pub store: Arc<Mutex<Store>>,
    /// MQTT source status, when MQTT is configured.
    pub mqtt: Option<Arc<SourceStatus>>,
    /// InfluxDB writer status, when configured.
    pub influx: Option<Arc<SinkStatus>>,
    /// The InfluxDB writer, for other components' points (anomalies, reports).
    pub influx_writer: Option<InfluxWriter>,
    /// Readings that went through the pipeline.
    pub readings: Arc<AtomicU64>,
    /// Modbus pollers (their counters), when Modbus is configured.
    pub modbus: Option<millwright_ingest::modbus::ModbusPollers>,
    tasks: Vec<JoinHandle<()>>,
}

/// Optional extras of the pipeline (used by the demo).
#[derive(Default)]
pub struct Hooks {
    /// Time-lapse: readings' times are mapped to `t0 + (t - t0) × scale` (simulated plant time).
    pub time_lapse: Option<(i64, f64)>,
    /// Every batch is also sent here (after the time-lapse), e.g. to the detectors.
    pub tap: Option<crate::analytics::Tap>,
}

impl Node {
    /// Starts every configured part.
    pub fn start(cfg: &Config) -> anyhow::Result<Node> {
        Self::start_with(cfg, Hooks::default())
    }

    /// Starts every configured part, with pipeline extras.
    pub fn start_with(cfg: &Config, hooks: Hooks) -> anyhow::Result<Node> {
        let (tx, mut rx) = mpsc::channel::<Batch>(cfg.node.bus_capacity);
        let store = Arc::new(Mutex::new(Store::new(cfg.store.clone())));
        let mut tasks = Vec::new();
        let influx = match &cfg.influxdb {
            Some(ic) => {
                let (w, t) = InfluxWriter::spawn(ic.clone(), cfg.site.name.clone())
                    .context("starting the InfluxDB writer")?;
                tasks.push(t);
                Some(w)
            }
            None => None,
        };
        let mqtt = match &cfg.mqtt {
            Some(mc) => {
                let src = MqttSource::spawn(mc, tx.clone()).context("starting the MQTT source")?;
                tasks.push(src.task);
                Some(src.status)
            }
            None => None,
        };
        let modbus = match &cfg.modbus {
            Some(mc) if !mc.devices.is_empty() => Some(
                millwright_ingest::modbus::spawn_devices(mc, tx.clone())
                    .map_err(|e| anyhow::anyhow!("starting the Modbus pollers: {e}"))?,
            ),
            _ => None,
        };
        drop(tx);
        let readings = Arc::new(AtomicU64::new(0));
        let (st, rd, writer) = (store.clone(), readings.clone(), influx.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(mut batch) = rx.recv().await {
                rd.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if let Some((t0, scale)) = hooks.time_lapse {
                    for r in &mut batch {
                        r.ts_ns = t0 + ((r.ts_ns - t0) as f64 * scale) as i64;
                    }
                }
                if let Some(tap) = &hooks.tap {
                    tap.send(batch.clone());
                }
                if let Ok(mut s) = st.lock() {
                    s.insert(&batch);
                }
                if let Some(w) = &writer {
                    if w.write(batch).await.is_err() {
                        tracing::error!("influxdb writer stopped; readings are kept only locally");
                    }
                }
            }
        }));
        Ok(Node {
            store,
            mqtt,
            influx: influx.as_ref().map(|w| w.status.clone()),
            influx_writer: influx,
            readings,
            modbus,
            tasks,
        })
    }

    /// One-line status for logs.
    pub fn status_line(&self) -> String {
        let mut s = format!("readings={}", self.readings.load(Ordering::Relaxed));
        if let Some(m) = &self.mqtt {
            s += &format!(
                " mqtt_connected={} mqtt_rejected={} mqtt_reconnects={}",
                m.connected.load(Ordering::Relaxed),
                m.rejected(),
                m.connections.load(Ordering::Relaxed).saturating_sub(1)
            );
        }
        if let Some(i) = &self.influx {
            s += &format!(
                " influx_written={} influx_backlog={} influx_failed_requests={} influx_dropped={}",
                i.written_points.load(Ordering::Relaxed),
                i.backlog_points.load(Ordering::Relaxed),
                i.failed_requests.load(Ordering::Relaxed),
                i.dropped_points.load(Ordering::Relaxed)
            );
        }
        s
    }

    /// Stops every task.
    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}
