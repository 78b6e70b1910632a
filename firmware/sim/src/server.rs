//! [`MachineServer`]: one simulated machine served over Modbus TCP (tokio-modbus server).
//!
//! A background task advances the machine in (possibly accelerated) simulated time and lets
//! the sensor node take one window per step; Modbus reads are answered from the latest register
//! snapshot, so a read never waits for a window. Holding writes go through the sensor node's
//! validation. Every decoded request is counted, answered or not. Nothing here panics; a
//! poisoned lock is recovered.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use millwright_sensor::node::WriteError;
use millwright_sensor::registers::{holding, input, Function};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};

use crate::config::{Fault, FaultKind, MachineConfig, MachineKind};
use crate::machine::SimMachine;

/// Most registers one read may ask for (Modbus limit).
const MAX_READ: u16 = 125;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Image {
    input: [u16; input::COUNT],
    holding: [u16; holding::COUNT],
}

struct Shared {
    kind: MachineKind,
    name: String,
    unit_id: u8,
    time_scale: f64,
    started: Instant,
    requests: AtomicU64,
    answering: AtomicBool,
    delay_ms: AtomicU64,
    machine: Mutex<SimMachine>,
    image: Mutex<Image>,
    no_response_from_s: Mutex<Option<f64>>,
    unmapped: Mutex<Vec<(Function, u16, u16)>>,
}

impl Shared {
    fn sim_time_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.time_scale
    }

    fn refresh_image(&self, m: &SimMachine) {
        let mut img = lock(&self.image);
        img.input = m.input_registers();
        img.holding = m.holding_registers();
    }

    fn step(&self) {
        let t = self.sim_time_s();
        let mut m = lock(&self.machine);
        m.step_to(t);
        self.refresh_image(&m);
    }

    fn silent(&self) -> bool {
        if !self.answering.load(Ordering::Relaxed) {
            return true;
        }
        lock(&self.no_response_from_s).is_some_and(|t| self.sim_time_s() >= t)
    }

    fn read(&self, f: Function, addr: u16, qty: u16) -> Result<Vec<u16>, ExceptionCode> {
        if qty == 0 || qty > MAX_READ {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let end = u32::from(addr) + u32::from(qty);
        if lock(&self.unmapped).iter().any(|&(uf, a, n)| {
            uf == f && u32::from(a) < end && u32::from(addr) < u32::from(a) + u32::from(n)
        }) {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let img = lock(&self.image);
        let table: &[u16] = match f {
            Function::Input => &img.input,
            Function::Holding => &img.holding,
        };
        table
            .get(usize::from(addr)..end as usize)
            .map(<[u16]>::to_vec)
            .ok_or(ExceptionCode::IllegalDataAddress)
    }

    fn write(&self, addr: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        if values.is_empty() || values.len() > 123 {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let mut m = lock(&self.machine);
        let r = m.write_holding(addr, values);
        self.refresh_image(&m);
        r.map_err(|e| match e {
            WriteError::IllegalAddress(_) => ExceptionCode::IllegalDataAddress,
            WriteError::IllegalValue(_) => ExceptionCode::IllegalDataValue,
        })
    }

    fn handle(&self, req: SlaveRequest<'static>) -> Result<Option<Response>, ExceptionCode> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if self.silent() {
            return Ok(None);
        }
        if req.slave != self.unit_id && req.slave != 0 && req.slave != 255 {
            return Err(ExceptionCode::GatewayTargetDevice);
        }
        let resp = match req.request {
            Request::ReadInputRegisters(a, n) => {
                Response::ReadInputRegisters(self.read(Function::Input, a, n)?)
            }
            Request::ReadHoldingRegisters(a, n) => {
                Response::ReadHoldingRegisters(self.read(Function::Holding, a, n)?)
            }
            Request::WriteSingleRegister(a, v) => {
                self.write(a, &[v])?;
                Response::WriteSingleRegister(a, v)
            }
            Request::WriteMultipleRegisters(a, vs) => {
                self.write(a, &vs)?;
                Response::WriteMultipleRegisters(a, vs.len() as u16)
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        Ok(Some(resp))
    }
}

#[derive(Clone)]
struct SimService {
    shared: Arc<Shared>,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

impl tokio_modbus::server::Service for SimService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = ServiceFuture;

    fn call(&self, req: Self::Request) -> Self::Future {
        let result = self.shared.handle(req);
        let delay = self.shared.delay_ms.load(Ordering::Relaxed);
        if delay == 0 || matches!(result, Ok(None)) {
            Box::pin(std::future::ready(result))
        } else {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                result
            })
        }
    }
}

/// One simulated machine listening for Modbus TCP.
pub struct MachineServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    abort: Option<oneshot::Sender<()>>,
    server_task: Option<JoinHandle<()>>,
    sim_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MachineServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineServer")
            .field("name", &self.shared.name)
            .field("kind", &self.shared.kind)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl MachineServer {
    /// Binds `addr` (port 0 picks a free port), computes the first window, and starts serving
    /// the machine's register map and advancing its simulated time. Must run inside a tokio
    /// runtime. Fails with `InvalidInput` for a bad config (time scale, fault times).
    pub async fn start(addr: SocketAddr, cfg: MachineConfig) -> io::Result<MachineServer> {
        cfg.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let no_response_from_s = cfg
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::NoResponse)
            .map(|f| f.onset_s)
            .reduce(f64::min);
        let machine = SimMachine::new(&cfg);
        let image = Image {
            input: machine.input_registers(),
            holding: machine.holding_registers(),
        };
        let shared = Arc::new(Shared {
            kind: cfg.kind,
            name: cfg.name.clone(),
            unit_id: cfg.unit_id,
            time_scale: cfg.time_scale,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            answering: AtomicBool::new(true),
            delay_ms: AtomicU64::new(0),
            machine: Mutex::new(machine),
            image: Mutex::new(image),
            no_response_from_s: Mutex::new(no_response_from_s),
            unmapped: Mutex::new(Vec::new()),
        });
        shared.step();

        // One window per simulated second, but between 1 and 20 windows per real second.
        let period = Duration::from_secs_f64((1.0 / cfg.time_scale).clamp(0.05, 1.0));
        let sim_shared = shared.clone();
        let sim_task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                sim_shared.step();
            }
        });

        let (abort_tx, abort_rx) = oneshot::channel::<()>();
        let srv_shared = shared.clone();
        let name = cfg.name.clone();
        let server_task = tokio::spawn(async move {
            let server = Server::new(listener);
            let on_connected = |stream, socket_addr| {
                let svc = SimService {
                    shared: srv_shared.clone(),
                };
                async move { accept_tcp_connection(stream, socket_addr, move |_| Ok(Some(svc.clone()))) }
            };
            let on_error =
                move |err: io::Error| tracing::debug!(error = %err, "modbus connection ended");
            let abort = async move {
                let _ = abort_rx.await;
            };
            if let Err(e) = server.serve_until(&on_connected, on_error, abort).await {
                tracing::warn!(machine = %name, error = %e, "modbus listener failed");
            }
        });
        tracing::info!(machine = %cfg.name, kind = %cfg.kind, addr = %local_addr, unit = cfg.unit_id, "machine started");
        Ok(MachineServer {
            local_addr,
            shared,
            abort: Some(abort_tx),
            server_task: Some(server_task),
            sim_task: Some(sim_task),
        })
    }

    /// The bound address (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Modbus requests received and decoded (counted on the wire, answered or not).
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// `false`: keep accepting connections and requests but never answer (a dead device).
    pub fn set_answering(&self, on: bool) {
        self.shared.answering.store(on, Ordering::Relaxed);
    }

    /// Adds a fault. Its onset is in simulated seconds since start; an onset in the past takes
    /// effect at once, with its progression as if it had started then.
    pub fn inject(&self, fault: Fault) {
        if fault.kind == FaultKind::NoResponse {
            let mut t = lock(&self.shared.no_response_from_s);
            *t = Some(t.map_or(fault.onset_s, |x| x.min(fault.onset_s)));
        }
        lock(&self.shared.machine).inject(fault);
    }

    /// Delays every answer by `delay` (a slow device). Zero disables.
    pub fn set_response_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Makes reads that touch `count` registers from `start` in `function`'s table fail with
    /// exception 0x02 (illegal data address), like a device with gaps in its map.
    pub fn unmap(&self, function: Function, start: u16, count: u16) {
        lock(&self.shared.unmapped).push((function, start, count));
    }

    /// Simulated seconds since start.
    pub fn sim_time_s(&self) -> f64 {
        self.shared.sim_time_s()
    }

    /// Machine name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Machine kind.
    pub fn kind(&self) -> MachineKind {
        self.shared.kind
    }

    /// Unit id.
    pub fn unit_id(&self) -> u8 {
        self.shared.unit_id
    }

    /// The current input registers (what a read would return now).
    pub fn input_registers(&self) -> Vec<u16> {
        lock(&self.shared.image).input.to_vec()
    }

    /// Closes the listener and every connection, and stops the simulation task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.abort.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.server_task.take() {
            let _ = t.await;
        }
        if let Some(t) = self.sim_task.take() {
            t.abort();
            let _ = t.await;
        }
        tracing::info!(machine = %self.shared.name, "machine stopped");
    }
}

impl Drop for MachineServer {
    fn drop(&mut self) {
        if let Some(t) = self.server_task.take() {
            t.abort();
        }
        if let Some(t) = self.sim_task.take() {
            t.abort();
        }
    }
}
