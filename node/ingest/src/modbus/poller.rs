//! Per-device poll tasks: one tokio task per configured device.
//!
//! Each task polls on its own schedule (`poll_interval_ms`, missed ticks skipped, never
//! bunched), runs its device's read plan, decodes the answers into [`Reading`]s and sends one
//! [`Batch`] per cycle into the bounded reading bus. Nothing a device does can delay another
//! device's task, except for the inherent sharing of one connection by units behind the same
//! gateway / serial line (bounded by each request's timeout).
//!
//! Status and quality rules:
//! - Every field yields one reading per cycle: good when read and decoded to a finite number,
//!   [`Quality::Bad`] with value `NaN` otherwise (exception, timeout, transport error,
//!   non-finite float). Bad readings are never given a made-up value.
//! - A Modbus exception means the device answered: the affected fields are bad, the device stays
//!   online and keeps being polled. "Illegal data address" on a coalesced read splits it (at its
//!   largest hole) and the split plan is kept.
//! - When a request gets no answer after `retries` extra attempts, the rest of the cycle is
//!   skipped (its fields bad), the device is reported offline, and the next attempts back off
//!   exponentially (1, 2, 4 … poll intervals, at most `backoff_max_ms`). The first answer brings
//!   it back online and to its normal schedule.
//! - Online/offline changes are emitted as a reading of signal [`DEVICE_ONLINE_SIGNAL`]
//!   (`1` online, `0` offline, good quality, empty unit) on the device's asset, and mirrored in
//!   [`DeviceMetrics::offline`]. The first cycle always emits one.
//! - String fields are decoded and logged when they change; they are never emitted as readings.

use super::config::{DeviceConfig, Endpoint, ModbusConfig};
use super::decode::{decode, FieldType, RegisterOrder, Value};
use super::metrics::{DeviceMetrics, ModbusMetrics};
use super::plan::{self, PlanField, ReadRequest};
use super::transport::{Connection, ReadData, SharedConnection, TransportError};
use millwright_core::schema::DEVICE_ONLINE_SIGNAL;
use millwright_core::time::now_ns;
use millwright_core::{Batch, Quality, Reading, SensorId, Unit, ValidationError};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_modbus::ExceptionCode;

/// Why the pollers could not start.
#[derive(Debug, thiserror::Error)]
pub enum ModbusError {
    /// The config has problems (every one is listed).
    #[error("invalid modbus config: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidConfig(Vec<ValidationError>),
    /// Called outside a tokio runtime.
    #[error("modbus pollers must be started inside a tokio runtime")]
    NoRuntime,
}

/// The running poll tasks and their counters. Dropping it stops the tasks.
#[derive(Debug)]
pub struct ModbusPollers {
    handles: Vec<JoinHandle<()>>,
    /// Counters of every device (config order) and the cycle-time histogram.
    pub metrics: Arc<ModbusMetrics>,
}

impl ModbusPollers {
    /// Stops every task and waits until they are gone.
    pub async fn shutdown(mut self) {
        for h in &self.handles {
            h.abort();
        }
        for h in self.handles.drain(..) {
            let _ = h.await;
        }
    }
    /// True when every task is still running.
    pub fn all_running(&self) -> bool {
        self.handles.iter().all(|h| !h.is_finished())
    }
}

impl Drop for ModbusPollers {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// Validates `cfg` and starts one poll task per device; readings go to `tx`.
///
/// Devices with the same endpoint share one connection. Start times are spread over the first
/// poll interval so that many devices do not fire in lockstep.
pub fn spawn_devices(
    cfg: &ModbusConfig,
    tx: mpsc::Sender<Batch>,
) -> Result<ModbusPollers, ModbusError> {
    let issues = cfg.validate();
    if !issues.is_empty() {
        return Err(ModbusError::InvalidConfig(issues));
    }
    let rt = tokio::runtime::Handle::try_current().map_err(|_| ModbusError::NoRuntime)?;
    let mut conns: BTreeMap<Endpoint, SharedConnection> = BTreeMap::new();
    let mut tasks = Vec::new();
    let mut device_metrics = Vec::new();
    let n = cfg.devices.len().max(1);
    for (i, d) in cfg.devices.iter().enumerate() {
        let Some(ep) = d.endpoint() else {
            return Err(ModbusError::InvalidConfig(vec![ValidationError::new(
                format!("modbus.devices[{i}]"),
                "no endpoint",
            )]));
        };
        let conn = conns
            .entry(ep.clone())
            .or_insert_with(|| Connection::shared(ep))
            .clone();
        let m = Arc::new(DeviceMetrics::new(d.name.clone()));
        device_metrics.push(m.clone());
        let start_offset_ms =
            d.poll_interval_ms * u64::try_from(i).unwrap_or(0) / u64::try_from(n).unwrap_or(1);
        tasks.push((DevicePoller::new(d, conn, m, tx.clone()), start_offset_ms));
    }
    let metrics = Arc::new(ModbusMetrics {
        devices: device_metrics,
        ..ModbusMetrics::default()
    });
    let handles = tasks
        .into_iter()
        .map(|(mut p, offset)| {
            let metrics = metrics.clone();
            rt.spawn(async move {
                tokio::time::sleep(Duration::from_millis(offset)).await;
                p.run(&metrics).await;
            })
        })
        .collect();
    Ok(ModbusPollers { handles, metrics })
}

/// A field ready for decoding.
#[derive(Debug)]
struct Field {
    sensor: SensorId,
    unit: Unit,
    ty: FieldType,
    order: RegisterOrder,
    scale: f64,
    offset: f64,
    plan: PlanField,
    last_text: Option<String>,
}

/// What one cycle achieved.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The device answered at least once (data or exception).
    Reached,
    /// A request got no answer after all attempts.
    Unreachable,
}

/// One device's poll loop state.
#[derive(Debug)]
struct DevicePoller {
    name: String,
    unit_id: u8,
    period: Duration,
    timeout: Duration,
    retries: u32,
    backoff_max: Duration,
    fields: Vec<Field>,
    plan_fields: Vec<PlanField>,
    plan: Vec<ReadRequest>,
    status_sensor: SensorId,
    conn: SharedConnection,
    metrics: Arc<DeviceMetrics>,
    tx: mpsc::Sender<Batch>,
}

impl DevicePoller {
    fn new(
        d: &DeviceConfig,
        conn: SharedConnection,
        metrics: Arc<DeviceMetrics>,
        tx: mpsc::Sender<Batch>,
    ) -> Self {
        let fields: Vec<Field> = d
            .fields
            .iter()
            .map(|f| Field {
                sensor: SensorId::new(
                    f.asset.clone().unwrap_or_else(|| d.asset.clone()),
                    f.signal.clone(),
                ),
                unit: Unit::new(f.unit.clone()),
                ty: f.field_type().unwrap_or(FieldType::U16),
                order: f.order,
                scale: f.scale,
                offset: f.offset,
                plan: f.plan_field(),
                last_text: None,
            })
            .collect();
        let plan_fields: Vec<PlanField> = fields.iter().map(|f| f.plan).collect();
        let plan = plan::plan(&plan_fields, &d.plan_limits());
        metrics
            .plan_requests
            .store(u64::try_from(plan.len()).unwrap_or(0), Ordering::Relaxed);
        Self {
            name: d.name.clone(),
            unit_id: d.unit_id,
            period: Duration::from_millis(d.poll_interval_ms.max(1)),
            timeout: Duration::from_millis(d.timeout_ms.max(1)),
            retries: d.retries,
            backoff_max: Duration::from_millis(d.backoff_max_ms.max(d.poll_interval_ms)),
            fields,
            plan_fields,
            plan,
            status_sensor: SensorId::new(d.asset.clone(), DEVICE_ONLINE_SIGNAL),
            conn,
            metrics,
            tx,
        }
    }

    async fn run(&mut self, all: &ModbusMetrics) {
        let mut next = Instant::now();
        let mut failures: u32 = 0;
        let mut online: Option<bool> = None;
        loop {
            tokio::time::sleep_until(next).await;
            let start = Instant::now();
            let mut batch = Vec::with_capacity(self.fields.len() + 1);
            let outcome = self.cycle(&mut batch).await;
            let took = start.elapsed();
            let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            self.metrics.last_cycle_us.store(took_us, Ordering::Relaxed);
            DeviceMetrics::add(&self.metrics.cycles, 1);
            let reached = outcome == Outcome::Reached;
            if reached {
                all.cycle_time.record_us(took_us);
            }
            if online != Some(reached) {
                if reached {
                    tracing::info!(device = %self.name, "modbus device online");
                } else {
                    tracing::warn!(device = %self.name, "modbus device offline (no answer)");
                    DeviceMetrics::add(&self.metrics.offline_events, 1);
                }
                self.metrics.offline.store(!reached, Ordering::Relaxed);
                batch.push(Reading::new(
                    self.status_sensor.clone(),
                    now_ns(),
                    if reached { 1.0 } else { 0.0 },
                    Unit::none(),
                ));
                online = Some(reached);
            }
            if !batch.is_empty() {
                match tokio::time::timeout(self.period, self.tx.send(batch)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        tracing::debug!(device = %self.name, "reading bus closed; poller stops");
                        return;
                    }
                    Err(_) => DeviceMetrics::add(&self.metrics.dropped_batches, 1),
                }
            }
            if reached {
                failures = 0;
                next += self.period;
                let now = Instant::now();
                if next <= now {
                    // Overran: skip the missed ticks instead of bunching them.
                    let behind = now.duration_since(next).as_nanos();
                    let periods = behind / self.period.as_nanos().max(1) + 1;
                    next += self.period * u32::try_from(periods).unwrap_or(u32::MAX);
                }
            } else {
                failures = failures.saturating_add(1);
                let factor = 1u32 << failures.saturating_sub(1).min(16);
                let wait = self.period.saturating_mul(factor).min(self.backoff_max);
                next = start + wait;
            }
        }
    }

    /// Runs the plan once; appends a reading per field to `batch`.
    async fn cycle(&mut self, batch: &mut Batch) -> Outcome {
        let mut reached = false;
        let mut unreachable = false;
        let mut i = 0;
        while i < self.plan.len() {
            if unreachable {
                let ts = now_ns();
                self.bad(i, ts, batch);
                i += 1;
                continue;
            }
            let result = self.read_with_retries(i).await;
            let ts = now_ns();
            match result {
                Ok(Ok(data)) => {
                    reached = true;
                    DeviceMetrics::add(
                        &self.metrics.items_read,
                        u64::try_from(data.len()).unwrap_or(0),
                    );
                    self.decode_into(i, &data, ts, batch);
                }
                Ok(Err(code)) => {
                    reached = true;
                    DeviceMetrics::add(&self.metrics.exceptions, 1);
                    let req = &self.plan[i];
                    if code == ExceptionCode::IllegalDataAddress {
                        if let Some((a, b)) = plan::split(req, &self.plan_fields) {
                            tracing::info!(
                                device = %self.name,
                                function = %req.function,
                                address = req.address,
                                count = req.count,
                                "device refused a coalesced read (illegal data address); splitting it"
                            );
                            self.plan.splice(i..=i, [a, b]);
                            self.metrics.plan_requests.store(
                                u64::try_from(self.plan.len()).unwrap_or(0),
                                Ordering::Relaxed,
                            );
                            continue; // read the first half now
                        }
                    }
                    tracing::debug!(
                        device = %self.name,
                        function = %req.function,
                        address = req.address,
                        count = req.count,
                        exception = %code,
                        "modbus exception"
                    );
                    self.bad(i, ts, batch);
                }
                Err(e) => {
                    tracing::debug!(device = %self.name, error = %e, "modbus request failed");
                    unreachable = true;
                    self.bad(i, ts, batch);
                }
            }
            i += 1;
        }
        if reached || !unreachable {
            Outcome::Reached
        } else {
            Outcome::Unreachable
        }
    }

    async fn read_with_retries(
        &mut self,
        i: usize,
    ) -> Result<Result<ReadData, ExceptionCode>, TransportError> {
        let mut attempt = 0;
        loop {
            DeviceMetrics::add(&self.metrics.requests, 1);
            let r = {
                let mut conn = self.conn.lock().await;
                let before = conn.connects();
                let r = conn.read(self.unit_id, &self.plan[i], self.timeout).await;
                DeviceMetrics::add(&self.metrics.connects, conn.connects() - before);
                r
            };
            match r {
                Err(e) => {
                    match e {
                        TransportError::Timeout(_) => DeviceMetrics::add(&self.metrics.timeouts, 1),
                        _ => DeviceMetrics::add(&self.metrics.transport_errors, 1),
                    }
                    attempt += 1;
                    if attempt > self.retries {
                        return Err(e);
                    }
                }
                ok => return ok,
            }
        }
    }

    fn bad(&self, i: usize, ts: i64, batch: &mut Batch) {
        for &fi in &self.plan[i].fields {
            let f = &self.fields[fi];
            if matches!(f.ty, FieldType::Ascii(_)) {
                continue;
            }
            batch.push(Reading {
                sensor: f.sensor.clone(),
                ts_ns: ts,
                value: f64::NAN,
                unit: f.unit.clone(),
                quality: Quality::Bad,
            });
            DeviceMetrics::add(&self.metrics.readings_bad, 1);
        }
    }

    fn decode_into(&mut self, i: usize, data: &ReadData, ts: i64, batch: &mut Batch) {
        let req_addr = usize::from(self.plan[i].address);
        for k in 0..self.plan[i].fields.len() {
            let fi = self.plan[i].fields[k];
            let f = &mut self.fields[fi];
            let off = usize::from(f.plan.address) - req_addr;
            let value = match data {
                ReadData::Bits(bits) => bits.get(off).map(|b| Value::Bool(*b)),
                ReadData::Words(words) => words
                    .get(off..off + usize::from(f.plan.width))
                    .and_then(|w| decode(w, f.ty, f.order).ok()),
            };
            if let Some(Value::Text(t)) = &value {
                if f.last_text.as_deref() != Some(t.as_str()) {
                    tracing::info!(device = %self.name, sensor = %f.sensor, value = %t, "modbus string field");
                    f.last_text = Some(t.clone());
                }
                continue;
            }
            let v = value.and_then(|v| v.to_f64(f.scale, f.offset));
            let (value, quality) = match v {
                Some(v) => (v, Quality::Good),
                None => (f64::NAN, Quality::Bad),
            };
            batch.push(Reading {
                sensor: f.sensor.clone(),
                ts_ns: ts,
                value,
                unit: f.unit.clone(),
                quality,
            });
            let c = if quality == Quality::Good {
                &self.metrics.readings_good
            } else {
                &self.metrics.readings_bad
            };
            DeviceMetrics::add(c, 1);
        }
    }
}
