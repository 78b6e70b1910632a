//! The InfluxDB 2 write call: `POST /api/v2/write?org=&bucket=&precision=ns` with reqwest
//! (rustls, keep-alive, no proxy, no redirects), gzip body, `Authorization: Token`, custom CA
//! and client certificate ([`HttpWriter`]).
//!
//! [`HttpWriter::deliver`] writes one batch start to end: on 400 and 413 it splits the batch
//! (`split.rs`) so one bad point never costs the others; any other failure leaves the whole
//! batch to be sent again later (a replay overwrites identical points, so lines already stored
//! are not doubled). What each answer means is `answer.rs`'s; failed requests and rejected
//! points are counted there by kind.
//!
//! gzip level (`[influxdb] gzip_level`, default 1), chosen by measurement (10,000-line bodies,
//! zlib-rs backend, this machine under load): node-like lines with noisy values compress
//! 5.3:1 at level 1 for 0.58 µs/line, 7.6:1 at level 2–3 for 0.9–1.2 µs/line, 8.9:1 at level 6
//! for 2.1 µs/line; the benchmark's regular lines 8:1 at 0.18 µs/line vs 12.4:1 at 1.36 µs/line
//! (level 6). The miniz_oxide backend (the influxdb2 client's, level 6) costs 3.3 µs/line. Level 1
//! keeps the write path's CPU low; the bytes the higher levels save do not pay for it on a site
//! network.
//!
//! Batching, retry timing and the backlog are not here (`backlog.rs`, `writer.rs`).

use super::answer::{classify, Answer, Delivery, ErrorKind, WriteErrors};
use super::config::InfluxConfig;
use super::split::{positions, Reply, Splitter};
use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// Most bytes of an error answer's body read (the rest is not needed to classify it).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The HTTP client's name resolver: every new connection's lookup goes through the node's
/// egress check (`millwright_core::egress`), which refuses names resolving off site (the error
/// names the host and the address); without an installed check it is the system resolver. An
/// IP-literal URL needs no lookup (hyper connects to it directly): it was checked at start and
/// cannot change.
struct EgressResolver {
    /// The URL's port (hyper sets it on the addresses; the check's messages name it).
    port: u16,
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: hyper::client::connect::dns::Name) -> reqwest::dns::Resolving {
        let (host, port) = (name.as_str().to_string(), self.port);
        Box::pin(async move {
            let checked = tokio::task::spawn_blocking(move || {
                let r = millwright_core::egress::resolve_checked("influxdb.url", &host, port);
                match r {
                    Ok(Some(addrs)) => Ok(addrs),
                    Ok(None) => std::net::ToSocketAddrs::to_socket_addrs(&(&*host, port))
                        .map(Iterator::collect)
                        .map_err(|e| format!("influxdb.url: cannot resolve {host}: {e}")),
                    Err(why) => Err(format!("egress refused: {why}")),
                }
            })
            .await;
            match checked {
                Ok(Ok(addrs)) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Ok(Err(why)) => Err(why.into()),
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// The InfluxDB 2 write endpoint of one config: a pooled client and the prepared request parts.
#[derive(Clone, Debug)]
pub struct HttpWriter {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Option<HeaderValue>,
    gzip: Option<Compression>,
    /// Largest line count a 413 taught us to send at once (0: no limit known).
    max_lines: std::sync::Arc<AtomicUsize>,
}

impl HttpWriter {
    /// The client for `cfg`: reads the CA and client certificate files now. Errors name the
    /// key and file.
    pub fn new(cfg: &InfluxConfig) -> Result<Self, String> {
        let mut url = reqwest::Url::parse(&cfg.url)
            .map_err(|e| format!("influxdb.url: `{}` is not a URL: {e}", cfg.url))?;
        {
            let mut path = url.path().trim_end_matches('/').to_string();
            path.push_str("/api/v2/write");
            url.set_path(&path);
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("org", &cfg.org)
            .append_pair("bucket", &cfg.bucket)
            .append_pair("precision", "ns");
        let port = url.port_or_known_default().unwrap_or(8086);
        let mut b = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(EgressResolver { port }))
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms.min(10_000)))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(4)
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .use_rustls_tls();
        if let Some(ca) = &cfg.ca_file {
            let pem = read("ca_file", ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!(
                    "influxdb.ca_file: {} is not PEM certificates: {e}",
                    ca.display()
                )
            })?;
            if certs.is_empty() {
                return Err(format!(
                    "influxdb.ca_file: {} holds no PEM certificate",
                    ca.display()
                ));
            }
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let (Some(c), Some(k)) = (&cfg.client_cert_file, &cfg.client_key_file) {
            let mut pem = read("client_cert_file", c)?;
            pem.push(b'\n');
            pem.extend_from_slice(&read("client_key_file", k)?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                format!(
                    "influxdb.client_cert_file/client_key_file: {} and {} are not a PEM certificate and key: {e}",
                    c.display(),
                    k.display()
                )
            })?;
            b = b.identity(id);
        }
        let client = b
            .build()
            .map_err(|e| format!("influxdb: cannot build the HTTP client: {e}"))?;
        let token = cfg.token.expose();
        let auth = if token.is_empty() {
            None
        } else {
            let mut v = HeaderValue::from_str(&format!("Token {token}")).map_err(|_| {
                "influxdb.token: holds characters not allowed in a header".to_string()
            })?;
            v.set_sensitive(true);
            Some(v)
        };
        Ok(Self {
            client,
            url,
            auth,
            gzip: cfg
                .gzip
                .then(|| Compression::new(cfg.gzip_level.clamp(1, 9))),
            max_lines: Default::default(),
        })
    }

    /// The write URL (with org, bucket and precision; never the token).
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// One request with `body` (line protocol); classifies the answer.
    pub async fn send(&self, body: &[u8]) -> Answer {
        let mut req = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8");
        if let Some(a) = &self.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let req = match self.gzip {
            Some(level) => match gzip(body, level) {
                Ok(z) => req.header(CONTENT_ENCODING, "gzip").body(z),
                Err(_) => req.body(body.to_vec()),
            },
            None => req.body(body.to_vec()),
        };
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return transport_error(&e),
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            // Read the (empty) body so the connection goes back to the pool.
            while let Ok(Some(_)) = resp.chunk().await {}
            return Answer::Ok;
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut text = Vec::new();
        while let Ok(Some(c)) = resp.chunk().await {
            let room = MAX_ERROR_BODY.saturating_sub(text.len());
            text.extend_from_slice(c.get(..room.min(c.len())).unwrap_or(&[]));
            if text.len() >= MAX_ERROR_BODY {
                break;
            }
        }
        classify(
            status,
            retry_after.as_deref(),
            &String::from_utf8_lossy(&text),
            SystemTime::now(),
        )
    }

    /// Writes one batch, splitting it on 400 and 413 (see the module doc); counts every failed
    /// request and every rejected point in `errors`.
    pub async fn deliver(&self, body: &str, errors: &WriteErrors) -> Delivery {
        let known_max = self.max_lines.load(Ordering::Relaxed);
        let first = if known_max == 0 {
            let a = self.send(body.as_bytes()).await;
            if a == Answer::Ok {
                return Delivery::Done {
                    written: count_lines(body),
                    rejected: Vec::new(),
                };
            }
            Some(a)
        } else {
            None
        };
        let lines: Vec<&str> = body
            .split_inclusive('\n')
            .filter(|l| !l.trim().is_empty())
            .collect();
        let mut split = Splitter::new(lines.len(), known_max);
        let mut pending = first;
        let mut refused_size = false;
        let mut largest_written = 0usize;
        let mut buf = String::new();
        while let Some(chunk) = split.next() {
            let answer = match pending.take() {
                Some(a) => a,
                None => {
                    buf.clear();
                    for &i in chunk {
                        if let Some(l) = lines.get(i) {
                            buf.push_str(l);
                        }
                    }
                    self.send(buf.as_bytes()).await
                }
            };
            if let Some(k) = answer.kind() {
                errors.count_request(k);
            }
            match answer {
                Answer::Ok => {
                    largest_written = largest_written.max(chunk.len());
                    split.reply(Reply::Written);
                }
                Answer::TooLarge => {
                    refused_size = true;
                    split.reply(Reply::TooLarge);
                }
                Answer::BadData {
                    message,
                    numbers,
                    quoted,
                } => {
                    let named = positions(chunk, &lines, &numbers, &quoted);
                    split.reply(Reply::BadData {
                        named: &named,
                        reason: &message,
                    });
                }
                Answer::Config { kind, message } => {
                    return Delivery::Failed {
                        kind,
                        message,
                        after: None,
                    }
                }
                Answer::Retry {
                    kind,
                    message,
                    after,
                } => {
                    return Delivery::Failed {
                        kind,
                        message,
                        after,
                    }
                }
            }
        }
        if refused_size && largest_written > 0 {
            // Remember the size that fit, so later batches are cut before they are sent.
            self.max_lines.store(largest_written, Ordering::Relaxed);
        }
        let written = split.written();
        let rejected = split.into_rejected();
        for r in &rejected {
            let k = if r.too_large {
                ErrorKind::TooLarge
            } else {
                ErrorKind::BadData
            };
            errors.count_points(k, 1);
        }
        Delivery::Done { written, rejected }
    }
}

/// Lines in a body (the backlog ends every line with `\n` and writes no empty ones).
fn count_lines(body: &str) -> usize {
    let n = body.bytes().filter(|&b| b == b'\n').count();
    n + usize::from(!body.is_empty() && !body.ends_with('\n'))
}

fn read(key: &str, p: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("influxdb.{key}: cannot read {}: {e}", p.display()))
}

fn gzip(body: &[u8], level: Compression) -> std::io::Result<Vec<u8>> {
    let mut z = GzEncoder::new(Vec::with_capacity(body.len() / 6 + 64), level);
    z.write_all(body)?;
    z.finish()
}

/// A failure before any answer: timeout, TLS or connection.
fn transport_error(e: &reqwest::Error) -> Answer {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    if e.is_timeout() {
        Answer::Retry {
            kind: ErrorKind::Timeout,
            message: chain,
            after: None,
        }
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("fatal alert")
    {
        // Mutual TLS: the server's alert names what it wanted of the client's certificate.
        let hint = if lower.contains("alert: certificaterequired") {
            " (the database requires a client certificate: set influxdb.client_cert_file and client_key_file)"
        } else if lower.contains("received fatal alert: unknownca")
            || lower.contains("received fatal alert: badcertificate")
            || lower.contains("received fatal alert: certificateunknown")
        {
            " (the database refused the client certificate: is it signed by a CA the database trusts?)"
        } else {
            ""
        };
        chain.push_str(hint);
        Answer::Config {
            kind: ErrorKind::Tls,
            message: chain,
        }
    } else {
        Answer::Retry {
            kind: ErrorKind::Connect,
            message: chain,
            after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_write_url_carries_org_bucket_and_precision_and_tls_files_are_checked() {
        let mut c = InfluxConfig::new("http://127.0.0.1:8086/base/", "my org", "b&1", "tok");
        let w = HttpWriter::new(&c).unwrap();
        assert_eq!(
            w.url().as_str(),
            "http://127.0.0.1:8086/base/api/v2/write?org=my+org&bucket=b%261&precision=ns"
        );
        assert!(
            !format!("{w:?}").contains("tok\""),
            "the token is never shown"
        );
        c.url = "https://127.0.0.1:8086".into();
        c.ca_file = Some("/nonexistent/ca.pem".into());
        let e = HttpWriter::new(&c).unwrap_err();
        assert!(
            e.starts_with("influxdb.ca_file: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("mw-influx-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("not-pem.txt");
        std::fs::write(&f, "hello").unwrap();
        c.ca_file = Some(f);
        let e = HttpWriter::new(&c).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = "m,asset=a value=1.5 1\n".repeat(100);
        let z = gzip(body.as_bytes(), Compression::new(1)).unwrap();
        assert!(z.len() < body.len() / 5);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
