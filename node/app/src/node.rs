//! Wiring of a running node: sources → reading bus → local store and sinks.
//!
//! Bounded channels (the reading bus: one for MQTT deliveries, one for Modbus batches) carry
//! batches from the sources to the pipeline task, which stores them and forwards them to the
//! InfluxDB writer. Without a disk outbox the writer never blocks the pipeline (it buffers in
//! memory and retries), and MQTT messages are acknowledged on receipt. With
//! `[influxdb.outbox]` every MQTT batch carries its acknowledgement to the writer, which fires
//! it once the readings are durable on disk; when the outbox is full under `block_ingest` the
//! writer's inbox fills, the pipeline waits, the bus fills and the MQTT source stops reading.
//!
//! [`Node::shutdown`] drains instead of aborting: it stops the sources (MQTT, Modbus), which
//! closes the bus; the pipeline task ends after the last batch; then the writer gets up to
//! `[node] shutdown_drain_s` to write its backlog. What was and was not written is logged.
//!
//! [`Node::supervise`] (called about once a second by `run`) notices a task that ended by a
//! panic: the MQTT source is restarted with its counters (at most [`MAX_RESTARTS`] within
//! [`RESTART_WINDOW`]); a panicked pipeline or InfluxDB writer, or a source that keeps
//! panicking, is fatal: the caller shuts down and exits non-zero so the service manager
//! restarts the node. Panics and restarts are counted in [`TaskHealth`].

use crate::config::Config;
use anyhow::Context;
use millwright_core::Batch;
use millwright_ingest::mqtt::{AckMode, BusSender, Delivery, MqttSource, SourceStatus};
use millwright_sinks::{InfluxWriter, SinkStatus};
use millwright_store::Store;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
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
    /// Panics, restarts and fatal task failures (for `/health`).
    pub tasks: Arc<TaskHealth>,
    /// Source tasks that hold a sender of the bus (the MQTT client).
    sources: Vec<JoinHandle<()>>,
    /// What a restart of the MQTT source (`sources[0]`) needs; dropped at shutdown.
    mqtt_restart: Option<(millwright_ingest::mqtt::MqttConfig, BusSender, AckMode)>,
    /// Times of the MQTT source's restarts within [`RESTART_WINDOW`].
    restarts: Vec<Instant>,
    /// The pipeline task (bus → store, tap, writer).
    pipeline: JoinHandle<()>,
    /// The InfluxDB writer task.
    writer_task: Option<JoinHandle<()>>,
    /// Longest time the writer may spend on its backlog at shutdown.
    drain: Duration,
    /// The egress policy: endpoints checked at start and resolved again while running.
    pub egress: Arc<crate::egress::EgressGuard>,
    /// The byte budgets of the bus, the writer inbox and the analytics tap (`memory.rs`).
    pub budgets: crate::memory::Budgets,
    /// The task that resolves the endpoints again ([`crate::egress::EgressGuard::watch`]).
    egress_watch: JoinHandle<()>,
}

/// Most restarts of a source within [`RESTART_WINDOW`]; one more is fatal.
pub const MAX_RESTARTS: usize = 5;
/// The window of [`MAX_RESTARTS`].
pub const RESTART_WINDOW: Duration = Duration::from_secs(600);

/// What the node's supervision saw (read by `/health` and the status topic).
#[derive(Debug, Default)]
pub struct TaskHealth {
    /// Tasks and threads that ended by a panic.
    pub panics: AtomicU64,
    /// Tasks restarted after a panic.
    pub restarts: AtomicU64,
    /// Wall-clock time (Unix ms) of the last panic; 0: none.
    pub last_panic_unix_ms: AtomicI64,
    /// The last panic: which task and its message.
    pub last_panic: Mutex<Option<String>>,
    /// A task that failed for good: the node is stopping to be restarted.
    pub fatal: Mutex<Option<String>>,
}

impl TaskHealth {
    /// Records a panic of `task` with `message`.
    pub fn panicked(&self, task: &str, message: &str) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        self.last_panic_unix_ms
            .store(crate::time_ns() / 1_000_000, Ordering::Relaxed);
        if let Ok(mut g) = self.last_panic.lock() {
            *g = Some(format!("{task}: {message}"));
        }
        tracing::error!(task, panic = message, "a task of the node panicked");
    }

    /// Records that `what` failed for good; returns it as the error.
    pub fn fatal(&self, what: String) -> String {
        if let Ok(mut g) = self.fatal.lock() {
            *g = Some(what.clone());
        }
        what
    }
}

/// The message of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Optional extras of the pipeline (used by the demo).
#[derive(Default)]
pub struct Hooks {
    /// Time-lapse: readings' times are mapped to `t0 + (t - t0) × scale` (simulated plant time).
    pub time_lapse: Option<(i64, f64)>,
    /// Every batch is also sent here (after the time-lapse), e.g. to the detectors.
    pub tap: Option<crate::analytics::Tap>,
    /// The config file's folder: relative paths in the config (the outbox `dir`) are relative
    /// to it. None: the working folder.
    pub base_dir: Option<std::path::PathBuf>,
    /// The byte budgets (the tap's must be the one the tap was made with); None: made from
    /// the config.
    pub budgets: Option<crate::memory::Budgets>,
}

impl Node {
    /// Starts every configured part.
    #[cfg_attr(not(feature = "bench"), allow(dead_code))] // used by `bench ingest` only
    pub fn start(cfg: &Config) -> anyhow::Result<Node> {
        Self::start_with(cfg, Hooks::default())
    }

    /// Starts every configured part, with pipeline extras.
    pub fn start_with(cfg: &Config, mut hooks: Hooks) -> anyhow::Result<Node> {
        // The memory budget lowers the MQTT packet limit and the in-memory backlog to fit.
        let mut cfg = cfg.clone();
        let caps = crate::memory::MemoryCaps::of(&cfg);
        for l in caps.apply(&mut cfg) {
            tracing::info!(limit = %l, "lowered to fit node.memory_budget_mb");
        }
        let cfg = &cfg;
        let budgets = hooks
            .budgets
            .take()
            .unwrap_or_else(|| crate::memory::Budgets::new(caps));
        tracing::info!(caps = %budgets.caps.summary(), "memory budget");
        // No client starts before its endpoint passed the egress policy (resolved now), and
        // every later (re)connect asks the guard again (`millwright_core::egress`).
        let egress = Arc::new(crate::egress::EgressGuard::new(cfg));
        egress
            .check_all()
            .map_err(|why| anyhow::anyhow!("egress refused: {why}"))?;
        millwright_core::egress::install(egress.clone());
        match serde_json::to_string(&egress.summary()) {
            Ok(policy) => tracing::info!(%policy, "egress policy"),
            Err(e) => tracing::warn!(error = %e, "egress policy not printable"),
        }
        let egress_watch = tokio::spawn(egress.clone().watch(crate::egress::WATCH_EVERY));
        // MQTT deliveries: capped in batches and in bytes. Modbus batches are one poll of one
        // device each, their size fixed by the config: capped in batches.
        let (tx, mut rx) = millwright_core::budget::channel::<Delivery>(
            cfg.node.bus_capacity,
            budgets.bus.clone(),
        );
        let (mtx, mut mrx) = mpsc::channel::<Batch>(cfg.node.bus_capacity);
        let store = Arc::new(Mutex::new(Store::new(cfg.store.clone())));
        let mut sources = Vec::new();
        let mut acks = AckMode::OnReceipt;
        let mut mqtt_restart = None;
        let (influx, writer_task) = match &cfg.influxdb {
            Some(ic) => {
                let mut ic = ic.clone();
                if let Some(o) = &mut ic.outbox {
                    let base = hooks.base_dir.clone().unwrap_or_default();
                    let state = std::env::var_os("STATE_DIRECTORY").and_then(|v| {
                        v.to_string_lossy()
                            .split(':')
                            .next()
                            .map(std::path::PathBuf::from)
                    });
                    o.dir = Some(o.resolve_dir(&base, state));
                    acks = AckMode::AfterStorage;
                }
                let (w, t) = InfluxWriter::spawn_with_inbox(
                    ic,
                    cfg.site.name.clone(),
                    budgets.writer_inbox.clone(),
                )
                .context("starting the InfluxDB writer")?;
                (Some(w), Some(t))
            }
            None => (None, None),
        };
        let mqtt = match &cfg.mqtt {
            Some(mc) => {
                if acks == AckMode::AfterStorage
                    && (mc.clean_session || mc.subscriptions.iter().any(|s| s.qos == 0))
                {
                    tracing::warn!("mqtt: acknowledgements wait for the outbox, but a clean session or a QoS 0 subscription lets the broker forget unacknowledged messages when the node stops; set clean_session = false and qos = 1 for at-least-once");
                }
                let src =
                    MqttSource::spawn(mc, tx.clone(), acks).context("starting the MQTT source")?;
                sources.push(src.task);
                mqtt_restart = Some((mc.clone(), tx.clone(), acks));
                Some(src.status)
            }
            None => None,
        };
        let modbus = match &cfg.modbus {
            Some(mc) if !mc.devices.is_empty() => Some(
                millwright_ingest::modbus::spawn_devices(mc, mtx.clone())
                    .map_err(|e| anyhow::anyhow!("starting the Modbus pollers: {e}"))?,
            ),
            _ => None,
        };
        drop(tx);
        drop(mtx);
        let readings = Arc::new(AtomicU64::new(0));
        let (st, rd, writer) = (store.clone(), readings.clone(), influx.clone());
        let pipeline = tokio::spawn(async move {
            loop {
                let (mut batch, ack) = tokio::select! {
                    Some(d) = rx.recv() => (d.batch, d.ack),
                    Some(b) = mrx.recv() => (b, None),
                    else => break,
                };
                #[cfg(feature = "fault-inject")]
                fault_pipeline(&batch);
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
                let sent = match (&writer, ack) {
                    (Some(w), Some(a)) => w.write_acked(batch, Box::new(move || a.done())).await,
                    (Some(w), None) => w.write(batch).await,
                    // No database: stored locally is all there is to wait for.
                    (None, Some(a)) => {
                        a.done();
                        Ok(())
                    }
                    (None, None) => Ok(()),
                };
                if sent.is_err() {
                    tracing::error!("influxdb writer stopped; readings are kept only locally");
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
            tasks: Arc::new(TaskHealth::default()),
            sources,
            mqtt_restart,
            restarts: Vec::new(),
            pipeline,
            writer_task,
            drain: Duration::from_secs(cfg.node.shutdown_drain_s),
            egress,
            budgets,
            egress_watch,
        })
    }

    /// Looks at the node's tasks: restarts a panicked MQTT source; returns what failed for
    /// good (a panicked pipeline or writer, a source panicking too often), after which the
    /// caller shuts the node down and exits non-zero.
    pub async fn supervise(&mut self) -> Result<(), String> {
        if self.pipeline.is_finished() {
            let r = (&mut self.pipeline).await;
            if let Err(e) = r {
                let msg = e.try_into_panic().map(|p| panic_message(&*p));
                let msg = msg.unwrap_or_else(|_| "cancelled".into());
                self.tasks.panicked("pipeline", &msg);
                return Err(self
                    .tasks
                    .fatal(format!("the pipeline task panicked: {msg}")));
            }
            // Ended normally: the bus closed (no source left); nothing more to supervise here.
            self.pipeline = tokio::spawn(std::future::pending());
        }
        if let Some(t) = self.writer_task.as_mut().filter(|t| t.is_finished()) {
            let msg = match t.await {
                Err(e) => e
                    .try_into_panic()
                    .map(|p| panic_message(&*p))
                    .unwrap_or_else(|_| "cancelled".into()),
                Ok(()) => "ended".into(),
            };
            self.writer_task = None;
            self.tasks.panicked("influxdb writer", &msg);
            return Err(self
                .tasks
                .fatal(format!("the InfluxDB writer task failed: {msg}")));
        }
        if let (Some(t), Some((cfg, tx, acks))) = (self.sources.first_mut(), &self.mqtt_restart) {
            if t.is_finished() {
                let msg = match t.await {
                    Err(e) => e
                        .try_into_panic()
                        .map(|p| panic_message(&*p))
                        .unwrap_or_else(|_| "cancelled".into()),
                    Ok(()) => "ended (reading bus closed)".into(),
                };
                self.tasks.panicked("mqtt source", &msg);
                let now = Instant::now();
                self.restarts
                    .retain(|t| now.duration_since(*t) < RESTART_WINDOW);
                if self.restarts.len() >= MAX_RESTARTS {
                    return Err(self.tasks.fatal(format!(
                        "the MQTT source failed {} times within {} s (last: {msg})",
                        self.restarts.len() + 1,
                        RESTART_WINDOW.as_secs()
                    )));
                }
                let status = self.mqtt.clone().unwrap_or_default();
                let src = MqttSource::spawn_with(cfg, tx.clone(), *acks, status)
                    .map_err(|e| self.tasks.fatal(format!("restarting the MQTT source: {e}")))?;
                self.restarts.push(now);
                self.tasks.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(restarts = self.restarts.len(), "mqtt source restarted");
                self.sources[0] = src.task;
            }
        }
        Ok(())
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
            if i.outbox_enabled.load(Ordering::Relaxed) {
                s += &format!(
                    " outbox_bytes={} outbox_blocking={} outbox_torn={}",
                    i.outbox_bytes.load(Ordering::Relaxed),
                    i.outbox_blocking.load(Ordering::Relaxed),
                    i.outbox_torn_records.load(Ordering::Relaxed)
                );
            }
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
        drop(self.mqtt_restart);
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
        // The inbox may be full (an outbox blocking ingest): the close waits at most `left`.
        if matches!(
            tokio::time::timeout(left, writer.close(left)).await,
            Ok(Ok(()))
        ) {
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
        let kept = st.backlog_points.load(Ordering::Relaxed);
        if st.outbox_enabled.load(Ordering::Relaxed) {
            // On disk: nothing is lost, the next start sends it.
            tracing::info!(
                pending_points = pending,
                written_points = written,
                outbox_points = kept,
                dropped_points = st.dropped_points.load(Ordering::Relaxed) - dropped0,
                took_ms = t0.elapsed().as_millis() as u64,
                "shutdown complete: what was not written waits in the outbox"
            );
            return;
        }
        let lost = (st.dropped_points.load(Ordering::Relaxed) - dropped0) + kept;
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

/// Test-only fault: with `MILLWRIGHT_FAULT_INJECT=pipeline:<asset>`, a reading of `<asset>`
/// makes the pipeline task panic (feature `fault-inject`; never in a production build).
#[cfg(feature = "fault-inject")]
#[allow(clippy::panic)] // the whole point: a test-only panic
fn fault_pipeline(batch: &Batch) {
    static T: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let t = T.get_or_init(|| {
        std::env::var(millwright_ingest::fault::ENV)
            .ok()
            .and_then(|v| v.strip_prefix("pipeline:").map(str::to_string))
    });
    if let Some(a) = t {
        if batch.iter().any(|r| &*r.sensor.asset == a.as_str()) {
            panic!("fault injected: pipeline panics on a reading of {a}");
        }
    }
}
