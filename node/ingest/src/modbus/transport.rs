//! Connections to Modbus devices: TCP, RTU on a serial line, RTU over TCP.
//!
//! A [`Connection`] owns one tokio-modbus client context for one endpoint and (re)connects
//! lazily. Devices behind the same endpoint (a gateway, a shared RS-485 line) share one
//! connection through [`SharedConnection`], a mutex that serialises their requests: on a shared
//! line one request is on the wire at a time by nature, and every request is bounded by its
//! device's `timeout_ms`, so a dead unit costs the others at most that long per attempt (and less
//! often once its back-off grows).
//!
//! The two-level result of tokio-modbus is kept apart: a transport failure (I/O, timeout,
//! framing) drops the connection so the next request reconnects; a Modbus exception is a valid
//! answer and leaves the connection alone. Nothing here decodes values or touches readings.

use super::config::Endpoint;
use super::plan::{Function, ReadRequest};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

/// A connection shared by every device on one endpoint.
pub type SharedConnection = Arc<Mutex<Connection>>;

/// Data of a successful read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadData {
    /// Holding / input registers.
    Words(Vec<u16>),
    /// Coils / discrete inputs.
    Bits(Vec<bool>),
}

impl ReadData {
    /// Registers or bits received.
    pub fn len(&self) -> usize {
        match self {
            ReadData::Words(w) => w.len(),
            ReadData::Bits(b) => b.len(),
        }
    }
    /// True when nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a request got no Modbus answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No answer within the timeout.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// Connecting failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        source: io::Error,
    },
    /// Sending or receiving failed, or the answer did not match the request.
    #[error("transport error on {endpoint}: {message}")]
    Io {
        /// Where.
        endpoint: String,
        /// What happened.
        message: String,
    },
}

/// One client connection to an endpoint, connected on first use and after failures.
#[derive(Debug)]
pub struct Connection {
    endpoint: Endpoint,
    ctx: Option<ContextBox>,
    connects: u64,
}

/// `Context` has no Debug; wrap it.
struct ContextBox(Context);

impl std::fmt::Debug for ContextBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Context")
    }
}

impl Connection {
    /// A not-yet-connected connection to `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            ctx: None,
            connects: 0,
        }
    }

    /// A connection wrapped for sharing.
    pub fn shared(endpoint: Endpoint) -> SharedConnection {
        Arc::new(Mutex::new(Self::new(endpoint)))
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Connections established so far.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// True while a connection is open.
    pub fn is_connected(&self) -> bool {
        self.ctx.is_some()
    }

    /// Drops the connection; the next request reconnects.
    pub fn disconnect(&mut self) {
        self.ctx = None;
    }

    async fn connect(&mut self, timeout: Duration) -> Result<&mut Context, TransportError> {
        if self.ctx.is_none() {
            let ep = self.endpoint.to_string();
            let ctx = tokio::time::timeout(timeout, open(&self.endpoint))
                .await
                .map_err(|_| TransportError::Connect {
                    endpoint: ep.clone(),
                    source: io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                })?
                .map_err(|source| TransportError::Connect {
                    endpoint: ep,
                    source,
                })?;
            self.ctx = Some(ContextBox(ctx));
            self.connects += 1;
        }
        match self.ctx.as_mut() {
            Some(c) => Ok(&mut c.0),
            None => Err(TransportError::Io {
                endpoint: self.endpoint.to_string(),
                message: "not connected".into(),
            }),
        }
    }

    /// Reads `req` from unit `unit`, connecting first if needed. The whole call (connect
    /// included) is bounded by `timeout`. Transport failures and timeouts drop the connection
    /// (on a serial line a timeout keeps it: a silent unit says nothing about the line).
    pub async fn read(
        &mut self,
        unit: u8,
        req: &ReadRequest,
        timeout: Duration,
    ) -> Result<Result<ReadData, ExceptionCode>, TransportError> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let deadline = tokio::time::Instant::now() + timeout;
        let ep = self.endpoint.to_string();
        let is_serial = matches!(self.endpoint, Endpoint::Rtu { .. });
        let ctx = match self.connect(timeout).await {
            Ok(c) => c,
            Err(e) => {
                self.ctx = None;
                return Err(e);
            }
        };
        ctx.set_slave(Slave(unit));
        let request = match req.function {
            Function::Coil => Request::ReadCoils(req.address, req.count),
            Function::DiscreteInput => Request::ReadDiscreteInputs(req.address, req.count),
            Function::Holding => Request::ReadHoldingRegisters(req.address, req.count),
            Function::Input => Request::ReadInputRegisters(req.address, req.count),
        };
        let result = tokio::time::timeout_at(deadline, ctx.call(request)).await;
        let n = usize::from(req.count);
        match result {
            Err(_) => {
                if !is_serial {
                    // A late answer would arrive on the next request: start afresh.
                    self.ctx = None;
                }
                Err(TransportError::Timeout(timeout_ms))
            }
            Ok(Err(e)) => {
                self.ctx = None;
                Err(TransportError::Io {
                    endpoint: ep,
                    message: e.to_string(),
                })
            }
            Ok(Ok(Err(code))) => Ok(Err(code)),
            Ok(Ok(Ok(resp))) => {
                let data = match resp {
                    Response::ReadCoils(mut b) | Response::ReadDiscreteInputs(mut b)
                        if b.len() >= n =>
                    {
                        b.truncate(n);
                        Some(ReadData::Bits(b))
                    }
                    Response::ReadHoldingRegisters(w) | Response::ReadInputRegisters(w)
                        if w.len() == n =>
                    {
                        Some(ReadData::Words(w))
                    }
                    _ => None,
                };
                match data {
                    Some(d) => Ok(Ok(d)),
                    None => {
                        self.ctx = None;
                        Err(TransportError::Io {
                            endpoint: ep,
                            message: format!(
                                "answer to {} {}+{} has the wrong length or kind",
                                req.function, req.address, req.count
                            ),
                        })
                    }
                }
            }
        }
    }
}

/// Opens a client context for an endpoint.
async fn open(endpoint: &Endpoint) -> io::Result<Context> {
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let stream = tcp_connect(host, *port).await?;
            Ok(tokio_modbus::client::tcp::attach(stream))
        }
        Endpoint::RtuOverTcp { host, port } => {
            let stream = tcp_connect(host, *port).await?;
            Ok(tokio_modbus::client::rtu::attach(stream))
        }
        Endpoint::Rtu {
            path,
            baud_rate,
            parity,
            stop_bits,
        } => {
            let builder = tokio_serial::new(path, *baud_rate)
                .data_bits(tokio_serial::DataBits::Eight)
                .parity(match parity {
                    1 => tokio_serial::Parity::Even,
                    2 => tokio_serial::Parity::Odd,
                    _ => tokio_serial::Parity::None,
                })
                .stop_bits(if *stop_bits == 2 {
                    tokio_serial::StopBits::Two
                } else {
                    tokio_serial::StopBits::One
                });
            let port = tokio_serial::SerialStream::open(&builder)
                .map_err(|e| io::Error::other(format!("{path}: {e}")))?;
            Ok(tokio_modbus::client::rtu::attach(port))
        }
    }
}

/// Connects to `host:port` after the node's egress check (`millwright_core::egress`): the
/// stream goes to an address the check returned, so no socket opens to a refused one.
async fn tcp_connect(host: &str, port: u16) -> io::Result<tokio::net::TcpStream> {
    let h = host.to_string();
    let checked = tokio::task::spawn_blocking(move || {
        millwright_core::egress::resolve_checked("modbus.devices[].host", &h, port)
    })
    .await
    .map_err(io::Error::other)?
    .map_err(|why| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("egress refused: {why}"),
        )
    })?;
    let stream = match checked {
        Some(addrs) => tokio::net::TcpStream::connect(&addrs[..]).await?,
        None => tokio::net::TcpStream::connect((host, port)).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads raw registers once (used by `millwright modbus probe`): connects, reads, disconnects.
pub async fn read_once(
    endpoint: Endpoint,
    unit: u8,
    function: Function,
    address: u16,
    count: u16,
    timeout: Duration,
) -> Result<Result<ReadData, ExceptionCode>, TransportError> {
    let mut c = Connection::new(endpoint);
    let req = ReadRequest {
        function,
        address,
        count,
        fields: Vec::new(),
    };
    c.read(unit, &req, timeout).await
}
