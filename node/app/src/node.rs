//! Wiring of a running node: sources → reading bus → local store and sinks.
//!
//! One bounded channel (the reading bus) carries batches from every source to the pipeline
//! task, which stores them and forwards them to the InfluxDB writer. The writer never blocks
//! the pipeline (it buffers and retries on its own), so the local store stays current when the
//! database is down.
//!
//! [`Node::shutdown`] drains instead of aborting: it stops the sources (MQTT, Modbus), which
//! closes the bus; the pipeline task ends after the last batch; then the writer gets up to
//! `[node] shutdown_drain_s` to write its backlog. What was and was not written is logged.

use crate::config::Config;
use anyhow::Context;
use millwright_core::Batch;
use millwright_ingest::mqtt::{MqttSource, SourceStatus};
use millwright_sinks::{InfluxWriter, SinkStatus};
use millwright_store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    /// Source tasks that hold a sender of the bus (the MQTT client).
    sources: Vec<JoinHandle<()>>,
    /// The pipeline task (bus → store, tap, writer).
    pipeline: JoinHandle<()>,
    /// The InfluxDB writer task.
    writer_task: Option<JoinHandle<()>>,
    /// Longest time the writer may spend on its backlog at shutdown.
    drain: Duration,
    /// The egress policy: endpoints checked at start and resolved again while running.
    pub egress: Arc<crate::egress::EgressGuard>,
    /// The task that resolves the endpoints again ([`crate::egress::EgressGuard::watch`]).
    egress_watch: JoinHandle<()>,
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
    #[cfg_attr(not(feature = "bench"), allow(dead_code))] // used by `bench ingest` only
    pub fn start(cfg: &Config) -> anyhow::Result<Node> {
        Self::start_with(cfg, Hooks::default())
    }

    /// Starts every configured part, with pipeline extras.
    pub fn start_with(cfg: &Config, hooks: Hooks) -> anyhow::Result<Node> {
        // No client starts before its endpoint passed the egress policy (resolved now).
        let egress = Arc::new(crate::egress::EgressGuard::new(cfg));
        egress
            .check_all()
            .map_err(|why| anyhow::anyhow!("egress refused: {why}"))?;
        match serde_json::to_string(&egress.summary()) {
            Ok(policy) => tracing::info!(%policy, "egress policy"),
            Err(e) => tracing::warn!(error = %e, "egress policy not printable"),
        }
        let egress_watch = tokio::spawn(egress.clone().watch(crate::egress::WATCH_EVERY));
        let (tx, mut rx) = mpsc::channel::<Batch>(cfg.node.bus_capacity);
        let store = Arc::new(Mutex::new(Store::new(cfg.store.clone())));
        let mut sources = Vec::new();
        let (influx, writer_task) = match &cfg.influxdb {
            Some(ic) => {
                let (w, t) = InfluxWriter::spawn(ic.clone(), cfg.site.name.clone())
                    .context("starting the InfluxDB writer")?;
                (Some(w), Some(t))
            }
            None => (None, None),
        };
        let mqtt = match &cfg.mqtt {
            Some(mc) => {
                let src = MqttSource::spawn(mc, tx.clone()).context("starting the MQTT source")?;
                sources.push(src.task);
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
        let pipeline = tokio::spawn(async move {
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
        });
        Ok(Node {
            store,
            mqtt,
            influx: influx.as_ref().map(|w| w.status.clone()),
            influx_writer: influx,
            readings,
            modbus,
            sources,
            pipeline,
            writer_task,
            drain: Duration::from_secs(cfg.node.shutdown_drain_s),
            egress,
            egress_watch,
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

    /// Stops the node without losing what it holds: stops the sources (which closes the
    /// reading bus), waits for the pipeline to pass on its last batch, then lets the InfluxDB
    /// writer write its backlog for at most `[node] shutdown_drain_s`. Logs what was written
    /// and what was not.
    pub async fn shutdown(self) {
        let t0 = Instant::now();
        let deadline = t0 + self.drain;
        let readings = self.readings.load(Ordering::Relaxed);
        self.egress_watch.abort();
        // 1. Sources: their tasks hold the only senders of the bus.
        for t in &self.sources {
            t.abort();
        }
        for t in self.sources {
            let _ = t.await;
        }
        if let Some(m) = self.modbus {
            m.shutdown().await;
        }
        // 2. The bus is closed: the pipeline ends after handing on what is still in it.
        let mut pipeline = self.pipeline;
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, &mut pipeline).await.is_err() {
            pipeline.abort();
            tracing::error!(
                "shutdown: the pipeline did not finish in time; batches still on the bus are lost"
            );
        }
        let received = self.readings.load(Ordering::Relaxed);
        // 3. The writer: stop taking data, write the backlog until the deadline.
        let (Some(writer), Some(mut task), Some(st)) =
            (self.influx_writer, self.writer_task, self.influx)
        else {
            tracing::info!(
                readings = received,
                after_stop = received - readings,
                "shutdown complete (no InfluxDB writer)"
            );
            return;
        };
        let pending = st.backlog_points.load(Ordering::Relaxed);
        let (written0, dropped0) = (
            st.written_points.load(Ordering::Relaxed),
            st.dropped_points.load(Ordering::Relaxed),
        );
        let left = deadline.saturating_duration_since(Instant::now());
        if writer.close(left).await.is_ok() {
            // The writer ends itself at the deadline; the extra second covers a stuck request.
            if tokio::time::timeout(left + Duration::from_secs(1), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        } else {
            task.abort();
        }
        let written = st.written_points.load(Ordering::Relaxed) - written0;
        let lost = (st.dropped_points.load(Ordering::Relaxed) - dropped0)
            + st.backlog_points.load(Ordering::Relaxed);
        let took_ms = t0.elapsed().as_millis() as u64;
        if lost == 0 {
            tracing::info!(
                pending_points = pending,
                written_points = written,
                took_ms,
                "shutdown complete: the InfluxDB backlog was written"
            );
        } else {
            tracing::error!(
                pending_points = pending,
                written_points = written,
                lost_points = lost,
                took_ms,
                "shutdown: drain deadline passed; points not written to InfluxDB are lost"
            );
        }
    }
}
