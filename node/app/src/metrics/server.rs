//! The tiny HTTP/1.1 responder of `/metrics` (Prometheus text) and `/health` (JSON,
//! [`super::health`]): one request per connection, `Connection: close`.
//!
//! Hardened against a busy or hostile client on the port: at most [`MAX_CONNECTIONS`] are
//! served at once (more get a short `503` and are closed at once, counted); the request head
//! must arrive within [`READ_TIMEOUT`] and the answer leave within [`WRITE_TIMEOUT`]; accept
//! errors (e.g. out of file descriptors) back off from 10 ms to 1 s instead of spinning, and are
//! logged rate-limited. It never connects anywhere; where it binds is `run`'s business.

use super::NodeMetrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest wait for a request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest time to write an answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_HEAD: usize = 4096;

/// Counters of the server (logged; `/health` stays small).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections refused because [`MAX_CONNECTIONS`] were busy.
    pub refused: AtomicU64,
    /// `accept` errors.
    pub accept_errors: AtomicU64,
    /// Connections closed because the request head did not arrive in time.
    pub timeouts: AtomicU64,
}

/// Serves `/metrics` and `/health` on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, m: Arc<NodeMetrics>) {
    let stats = Arc::new(ServerStats::default());
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::ZERO;
    let mut last_log: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                backoff = Duration::ZERO;
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (m, st) = (m.clone(), stats.clone());
                        tokio::spawn(async move {
                            answer(sock, &m, &st).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        let n = stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
                        // Best effort, never waits: the socket buffer of a new connection is empty.
                        let _ = sock.try_write(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                            last_log = Some(Instant::now());
                            tracing::warn!(
                                refused = n,
                                max = MAX_CONNECTIONS,
                                "/metrics: too many connections; refusing"
                            );
                        }
                    }
                }
            }
            Err(e) => {
                let n = stats.accept_errors.fetch_add(1, Ordering::Relaxed) + 1;
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    last_log = Some(Instant::now());
                    tracing::error!(error = %e, accept_errors = n, retry_in_ms = backoff.as_millis() as u64, "/metrics: accept failed; backing off");
                }
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// Reads until the end of the request head (or [`MAX_HEAD`] bytes).
async fn read_head(sock: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.len() >= MAX_HEAD || buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(buf);
        }
    }
}

async fn answer(mut sock: TcpStream, m: &NodeMetrics, st: &ServerStats) {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut sock)).await {
        Ok(Ok(h)) if !h.is_empty() => h,
        Ok(_) => return,
        Err(_) => {
            st.timeouts.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let req = String::from_utf8_lossy(&head);
    let mut words = req.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            super::render(m),
        ),
        ("GET", "/health") => {
            let h = super::health::health(m, crate::time_ns() / 1_000_000);
            (
                h.overall.http_status(),
                "application/json",
                format!("{}\n", h.doc),
            )
        }
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sock.write_all(resp.as_bytes())).await;
}
