//! A small Modbus server over a register image, for tests, benchmarks and commissioning demos.
//!
//! [`ImageServer`] serves one or more unit ids from in-memory tables (coils, discrete inputs,
//! holding and input registers) over Modbus TCP, RTU over TCP or RTU (serial / pseudo-terminal)
//! with the real tokio-modbus server. Addresses not in a table answer "illegal data address", so an image with
//! holes behaves like a device that rejects coalesced reads across them. It counts every request
//! it receives (what the wire carried), can stop answering (requests are held until it answers
//! again, like a hung device) and can be stopped and restarted on the same port.
//!
//! Not the machine simulator (`millwright-sim`): no physics, values change only when set.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::plan::Function;

/// The tables of one unit.
#[derive(Clone, Debug, Default)]
pub struct RegisterImage {
    /// Coils (function 1).
    pub coils: BTreeMap<u16, bool>,
    /// Discrete inputs (function 2).
    pub discrete_inputs: BTreeMap<u16, bool>,
    /// Holding registers (function 3).
    pub holding: BTreeMap<u16, u16>,
    /// Input registers (function 4).
    pub input: BTreeMap<u16, u16>,
}

impl RegisterImage {
    /// Writes consecutive registers starting at `address` into the table of `function`
    /// (coil tables take non-zero as `true`).
    pub fn set(&mut self, function: Function, address: u16, words: &[u16]) {
        for (k, w) in words.iter().enumerate() {
            let Some(a) = u16::try_from(k).ok().and_then(|k| address.checked_add(k)) else {
                return;
            };
            match function {
                Function::Coil => {
                    self.coils.insert(a, *w != 0);
                }
                Function::DiscreteInput => {
                    self.discrete_inputs.insert(a, *w != 0);
                }
                Function::Holding => {
                    self.holding.insert(a, *w);
                }
                Function::Input => {
                    self.input.insert(a, *w);
                }
            }
        }
    }

    fn words(table: &BTreeMap<u16, u16>, addr: u16, cnt: u16) -> Result<Vec<u16>, ExceptionCode> {
        if cnt == 0 || cnt > 125 {
            return Err(ExceptionCode::IllegalDataValue);
        }
        (0..cnt)
            .map(|k| {
                addr.checked_add(k)
                    .and_then(|a| table.get(&a).copied())
                    .ok_or(ExceptionCode::IllegalDataAddress)
            })
            .collect()
    }

    fn bits(table: &BTreeMap<u16, bool>, addr: u16, cnt: u16) -> Result<Vec<bool>, ExceptionCode> {
        if cnt == 0 || cnt > 2000 {
            return Err(ExceptionCode::IllegalDataValue);
        }
        (0..cnt)
            .map(|k| {
                addr.checked_add(k)
                    .and_then(|a| table.get(&a).copied())
                    .ok_or(ExceptionCode::IllegalDataAddress)
            })
            .collect()
    }

    /// Answers one request from this image.
    pub fn answer(&self, req: &Request<'_>) -> Result<Response, ExceptionCode> {
        match req {
            Request::ReadCoils(a, n) => Self::bits(&self.coils, *a, *n).map(Response::ReadCoils),
            Request::ReadDiscreteInputs(a, n) => {
                Self::bits(&self.discrete_inputs, *a, *n).map(Response::ReadDiscreteInputs)
            }
            Request::ReadHoldingRegisters(a, n) => {
                Self::words(&self.holding, *a, *n).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(a, n) => {
                Self::words(&self.input, *a, *n).map(Response::ReadInputRegisters)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

/// State shared by the server's connections and its handle.
#[derive(Debug)]
struct State {
    units: RwLock<HashMap<u8, RegisterImage>>,
    requests: AtomicU64,
    connections: AtomicU64,
    answering: watch::Sender<bool>,
}

#[derive(Clone, Debug)]
struct ImageService {
    state: Arc<State>,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

impl tokio_modbus::server::Service for ImageService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = BoxFuture;

    fn call(&self, req: Self::Request) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            state.requests.fetch_add(1, Ordering::Relaxed);
            let mut rx = state.answering.subscribe();
            // A hung device: hold the request until answering again.
            let _ = rx.wait_for(|a| *a).await;
            let units = state
                .units
                .read()
                .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
            match units.get(&req.slave) {
                Some(img) => img.answer(&req.request),
                None => Err(ExceptionCode::GatewayTargetDevice),
            }
        })
    }
}

/// A running register-image server (TCP or RTU).
#[derive(Debug)]
pub struct ImageServer {
    state: Arc<State>,
    local_addr: Option<SocketAddr>,
    rtu_framing: bool,
    task: Option<JoinHandle<()>>,
}

impl ImageServer {
    fn state(units: HashMap<u8, RegisterImage>) -> Arc<State> {
        Arc::new(State {
            units: RwLock::new(units),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            answering: watch::Sender::new(true),
        })
    }

    /// Serves `units` over Modbus TCP on `addr` (port 0 picks a free port).
    pub async fn start_tcp(
        addr: SocketAddr,
        units: HashMap<u8, RegisterImage>,
    ) -> io::Result<Self> {
        let state = Self::state(units);
        let mut s = Self {
            state,
            local_addr: None,
            rtu_framing: false,
            task: None,
        };
        s.listen(addr).await?;
        Ok(s)
    }

    /// Serves `units` with RTU framing over TCP on `addr` (like a serial device server).
    pub async fn start_rtu_over_tcp(
        addr: SocketAddr,
        units: HashMap<u8, RegisterImage>,
    ) -> io::Result<Self> {
        let state = Self::state(units);
        let mut s = Self {
            state,
            local_addr: None,
            rtu_framing: true,
            task: None,
        };
        s.listen(addr).await?;
        Ok(s)
    }

    async fn listen(&mut self, addr: SocketAddr) -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        self.local_addr = Some(listener.local_addr()?);
        let service = ImageService {
            state: self.state.clone(),
        };
        let state = self.state.clone();
        let on_connected = move |stream: tokio::net::TcpStream, _addr: SocketAddr| {
            state.connections.fetch_add(1, Ordering::Relaxed);
            let service = service.clone();
            async move {
                let _ = stream.set_nodelay(true);
                Ok(Some((service, stream)))
            }
        };
        self.task = Some(if self.rtu_framing {
            let server = tokio_modbus::server::rtu_over_tcp::Server::new(listener);
            tokio::spawn(async move {
                if let Err(e) = server.serve(&on_connected, |_e| {}).await {
                    tracing::debug!(error = %e, "rtu-over-tcp image server stopped");
                }
            })
        } else {
            let server = tokio_modbus::server::tcp::Server::new(listener);
            tokio::spawn(async move {
                if let Err(e) = server.serve(&on_connected, |_e| {}).await {
                    tracing::debug!(error = %e, "image server stopped");
                }
            })
        });
        Ok(())
    }

    /// Serves `units` over Modbus RTU on the serial device (or pseudo-terminal) at `path`.
    pub fn start_rtu(
        path: &str,
        baud_rate: u32,
        units: HashMap<u8, RegisterImage>,
    ) -> io::Result<Self> {
        let state = Self::state(units);
        let server = tokio_modbus::server::rtu::Server::new_from_path(path, baud_rate)?;
        let service = ImageService {
            state: state.clone(),
        };
        let task = tokio::spawn(async move {
            if let Err(e) = server.serve_forever(service).await {
                tracing::debug!(error = %e, "rtu image server stopped");
            }
        });
        Ok(Self {
            state,
            local_addr: None,
            rtu_framing: true,
            task: Some(task),
        })
    }

    /// The TCP address served (None for RTU).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Requests received so far (each one counts, answered or not).
    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connection_count(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Stops answering (requests are held, like a hung device) or resumes.
    pub fn set_answering(&self, answering: bool) {
        self.state.answering.send_replace(answering);
    }

    /// Changes the image of `unit` (creating it if absent).
    pub fn update(&self, unit: u8, f: impl FnOnce(&mut RegisterImage)) {
        if let Ok(mut units) = self.state.units.write() {
            f(units.entry(unit).or_default());
        }
    }

    /// Stops serving: closes the listener and every connection.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Serves again on the same TCP address after [`stop`](Self::stop).
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let addr = self
            .local_addr
            .ok_or_else(|| io::Error::other("not a TCP server"))?;
        self.listen(addr).await
    }
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_answers_and_rejects_holes() {
        let mut img = RegisterImage::default();
        img.set(Function::Holding, 10, &[1, 2, 3]);
        img.set(Function::Holding, 20, &[9]);
        img.set(Function::Coil, 0, &[1, 0, 1]);
        assert_eq!(
            img.answer(&Request::ReadHoldingRegisters(10, 3)),
            Ok(Response::ReadHoldingRegisters(vec![1, 2, 3]))
        );
        assert_eq!(
            img.answer(&Request::ReadHoldingRegisters(10, 11)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            img.answer(&Request::ReadCoils(0, 3)),
            Ok(Response::ReadCoils(vec![true, false, true]))
        );
        assert_eq!(
            img.answer(&Request::ReadInputRegisters(0, 1)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            img.answer(&Request::WriteSingleRegister(0, 1)),
            Err(ExceptionCode::IllegalFunction)
        );
    }
}
