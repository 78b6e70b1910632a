//! What InfluxDB's answer to a write means for the data — pure, no I/O.
//!
//! - [`classify`]: status, `Retry-After` and body → [`Answer`]: `Ok`; `BadData` (400/422, with
//!   the lines InfluxDB names: `"line": N`, `line N:` in the message, `line_number` entries, or
//!   a quoted `unable to parse '…'`); `Config` (401/403/404, an unexpected status, a TLS
//!   certificate failure: permanent until someone fixes it; the data waits); `TooLarge` (413);
//!   `Retry` (connection, timeout, 5xx, 429 — with the server's `Retry-After`, seconds or an
//!   HTTP date, when it gives one).
//! - [`Delivery`]: how a whole batch ended, and what the backlog does with it.
//! - [`WriteErrors`]: failed requests and rejected points by [`ErrorKind`], and the
//!   `config_error` flag, shared with health reporting through `SinkStatus`.
//!
//! The request itself is sent by `http.rs`.

use super::backlog::WriteResult;
use super::split::Rejection;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured; a longer one (or a date further out) waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why a write request failed (or a point was rejected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400/422: the data was refused.
    BadData,
    /// 401/403: the token is missing, wrong or lacks write permission.
    Auth,
    /// 404: the organisation or bucket does not exist.
    NotFound,
    /// 413: the body was too large.
    TooLarge,
    /// 429: the server asks the node to slow down.
    Throttled,
    /// 5xx: the server failed.
    Server,
    /// The connection could not be made (refused, reset, name not resolved).
    Connect,
    /// No answer within `timeout_ms`.
    Timeout,
    /// TLS: the server's certificate was not trusted, or the handshake failed.
    Tls,
    /// Any other unexpected HTTP status (a redirect, 405, …): the URL points elsewhere.
    Http,
}

impl ErrorKind {
    /// Every kind, in counter order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::BadData,
        ErrorKind::Auth,
        ErrorKind::NotFound,
        ErrorKind::TooLarge,
        ErrorKind::Throttled,
        ErrorKind::Server,
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Tls,
        ErrorKind::Http,
    ];

    /// Its name in counters and reports (`bad_data`, `auth`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Server => "server",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Http => "http",
        }
    }

    /// True for failures that only a person can fix (token, org, bucket, CA, URL): the data
    /// waits and the failure is reported loudly.
    pub fn is_config(self) -> bool {
        matches!(
            self,
            ErrorKind::Auth | ErrorKind::NotFound | ErrorKind::Tls | ErrorKind::Http
        )
    }

    fn index(self) -> usize {
        ErrorKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or_default()
    }
}

/// Failed requests and rejected points by [`ErrorKind`], and whether the last failure was one
/// a person must fix. Shared (atomics); the writer task is the only writer.
#[derive(Debug, Default)]
pub struct WriteErrors {
    requests: [AtomicU64; 10],
    points: [AtomicU64; 10],
    /// True from a configuration failure (401/403/404, TLS, unexpected status) until a write
    /// succeeds.
    pub config_error: AtomicBool,
}

impl WriteErrors {
    /// Failed requests of this kind.
    pub fn requests(&self, k: ErrorKind) -> u64 {
        self.requests
            .get(k.index())
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// Points rejected for good for this kind (`BadData`, `TooLarge`; 0 for the others).
    pub fn points(&self, k: ErrorKind) -> u64 {
        self.points
            .get(k.index())
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// `(kind name, failed requests, rejected points)` for every kind.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, u64)> {
        ErrorKind::ALL
            .iter()
            .map(|&k| (k.as_str(), self.requests(k), self.points(k)))
            .collect()
    }

    /// Counts one failed request.
    pub fn count_request(&self, k: ErrorKind) {
        if let Some(a) = self.requests.get(k.index()) {
            a.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `n` points rejected for good.
    pub fn count_points(&self, k: ErrorKind, n: u64) {
        if let Some(a) = self.points.get(k.index()) {
            a.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// What one write request's answer means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: stored.
    Ok,
    /// 400/422: some data was refused. `numbers` are the 1-based lines the server named,
    /// `quoted` the line texts it quoted; both may be empty.
    BadData {
        /// The server's message.
        message: String,
        /// Line numbers named (1-based, within the body sent).
        numbers: Vec<usize>,
        /// Line texts quoted (`unable to parse '<line>'`).
        quoted: Vec<String>,
    },
    /// Permanent until fixed (token, org, bucket, certificate, URL): the data waits.
    Config {
        /// Which.
        kind: ErrorKind,
        /// What the server (or the TLS layer) said.
        message: String,
    },
    /// 413: the body was too large.
    TooLarge,
    /// A transient failure: try again later — after `after` when the server said when.
    Retry {
        /// Which.
        kind: ErrorKind,
        /// What happened.
        message: String,
        /// The server's `Retry-After`, when it gave one (429/503).
        after: Option<Duration>,
    },
}

impl Answer {
    /// The error kind (None for `Ok`).
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Answer::Ok => None,
            Answer::BadData { .. } => Some(ErrorKind::BadData),
            Answer::TooLarge => Some(ErrorKind::TooLarge),
            Answer::Config { kind, .. } | Answer::Retry { kind, .. } => Some(*kind),
        }
    }
}

/// Classifies an HTTP answer. `retry_after` is the header's value, `body` (the start of) the
/// answer's body, `now` the clock for a `Retry-After` date.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str, now: SystemTime) -> Answer {
    let message = || server_message(status, body);
    match status {
        200..=299 => Answer::Ok,
        400 | 422 => {
            let (numbers, quoted) = named_lines(body);
            Answer::BadData {
                message: message(),
                numbers,
                quoted,
            }
        }
        401 | 403 => Answer::Config {
            kind: ErrorKind::Auth,
            message: message(),
        },
        404 => Answer::Config {
            kind: ErrorKind::NotFound,
            message: message(),
        },
        413 => Answer::TooLarge,
        408 => Answer::Retry {
            kind: ErrorKind::Timeout,
            message: message(),
            after: None,
        },
        429 => Answer::Retry {
            kind: ErrorKind::Throttled,
            message: message(),
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        500..=599 => Answer::Retry {
            kind: ErrorKind::Server,
            message: message(),
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        _ => Answer::Config {
            kind: ErrorKind::Http,
            message: message(),
        },
    }
}

/// `Retry-After`: delay seconds, or an HTTP date (a date past gives 0); capped at
/// [`MAX_RETRY_AFTER`]. None when it is neither.
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    let d = match v.parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => {
            let at = httpdate::parse_http_date(v).ok()?;
            at.duration_since(now).unwrap_or_default()
        }
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// `HTTP <status>: <message>` with InfluxDB's JSON `message` (and `code`) when the body is
/// that, else the body's first 300 characters.
fn server_message(status: u16, body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        error: String,
    }
    let text = match serde_json::from_str::<E>(body) {
        Ok(e) if !e.message.is_empty() || !e.error.is_empty() => {
            let m = if e.message.is_empty() {
                e.error
            } else {
                e.message
            };
            if e.code.is_empty() {
                m
            } else {
                format!("{}: {m}", e.code)
            }
        }
        _ => body.trim().to_string(),
    };
    let text: String = text.chars().take(300).collect();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

/// The lines a 400 body names: the JSON `line` field (InfluxDB 3 / Cloud), `line N:` in the
/// message (InfluxDB 2: `errors encountered on line(s): line 3: …`), `line_number` entries of
/// a `data`/`details` list, and quoted lines (`unable to parse '<line>': …`, InfluxDB 1.x/2.x).
fn named_lines(body: &str) -> (Vec<usize>, Vec<String>) {
    let mut numbers = Vec::new();
    let mut quoted = Vec::new();
    let v: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => serde_json::Value::String(body.to_string()),
    };
    if let Some(n) = v.get("line").and_then(serde_json::Value::as_u64) {
        numbers.push(n as usize);
    }
    for key in ["data", "details"] {
        if let Some(list) = v.get(key).and_then(serde_json::Value::as_array) {
            for d in list {
                if let Some(n) = d.get("line_number").and_then(serde_json::Value::as_u64) {
                    numbers.push(n as usize);
                }
            }
        }
    }
    let message = match &v {
        serde_json::Value::String(s) => Some(s.as_str()),
        v => v
            .get("message")
            .or_else(|| v.get("error"))
            .and_then(serde_json::Value::as_str),
    };
    if let Some(m) = message {
        numbers.extend(line_numbers(m));
        quoted.extend(quoted_lines(m));
    }
    numbers.sort_unstable();
    numbers.dedup();
    (numbers, quoted)
}

/// Every `line N:` / `line N ` in a message (case-insensitive).
fn line_numbers(m: &str) -> Vec<usize> {
    let lower = m.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("line ") {
        // A word of its own: not the end of `pipeline`, `baseline`.
        let word = i == 0
            || rest
                .get(..i)
                .and_then(|h| h.chars().next_back())
                .is_some_and(|c| !c.is_alphanumeric() && c != '_');
        rest = rest.get(i + 5..).unwrap_or("");
        if !word {
            continue;
        }
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = rest.get(digits.len()..).unwrap_or("");
        if !digits.is_empty()
            && (after.starts_with(':')
                || after.is_empty()
                || after.starts_with([' ', ',', '\n', ')']))
        {
            if let Ok(n) = digits.parse() {
                out.push(n);
            }
        }
    }
    out
}

/// Every `unable to parse '<line>'` quote in a message.
fn quoted_lines(m: &str) -> Vec<String> {
    const P: &str = "unable to parse '";
    let mut out = Vec::new();
    let mut rest = m;
    while let Some(i) = rest.find(P) {
        rest = rest.get(i + P.len()..).unwrap_or("");
        // The quote ends at the last `':` before the next line of the message.
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let seg = rest.get(..line_end).unwrap_or("");
        if let Some(j) = seg.rfind("':") {
            if let Some(q) = seg.get(..j) {
                out.push(q.to_string());
            }
        }
        rest = rest.get(line_end..).unwrap_or("");
    }
    out
}

/// How one batch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Every line was written or rejected for good.
    Done {
        /// Lines the server stored.
        written: usize,
        /// Lines refused for good, with the reason (indices into the batch).
        rejected: Vec<Rejection>,
    },
    /// The batch (all of it) must wait and be sent again.
    Failed {
        /// Why.
        kind: ErrorKind,
        /// What happened (for `last_error` and the log; never the token).
        message: String,
        /// The server's `Retry-After`.
        after: Option<Duration>,
    },
}

impl Delivery {
    /// What the backlog does with the batch.
    pub fn write_result(&self) -> WriteResult {
        match self {
            Delivery::Done { rejected, .. } if rejected.is_empty() => WriteResult::Ok,
            Delivery::Done { rejected, .. } => WriteResult::Partial {
                rejected: rejected.len(),
            },
            Delivery::Failed { after: Some(d), .. } => WriteResult::RetryAfter(*d),
            Delivery::Failed { .. } => WriteResult::Retry,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn influxdb_answers_are_classified() {
        assert_eq!(classify(204, None, "", now()), Answer::Ok);
        let a = classify(
            400,
            None,
            r#"{"code":"invalid","message":"partial write: errors encountered on line(s):\nline 3: unable to parse 'm v=': missing field value\nline 7: invalid boolean"}"#,
            now(),
        );
        let Answer::BadData {
            message,
            numbers,
            quoted,
        } = a
        else {
            panic!("{a:?}")
        };
        assert_eq!(numbers, vec![3, 7]);
        assert_eq!(quoted, vec!["m v=".to_string()]);
        assert!(
            message.starts_with("HTTP 400: invalid: partial write"),
            "{message}"
        );
        let a = classify(
            400,
            None,
            r#"{"code":"invalid","line":12,"message":"x"}"#,
            now(),
        );
        assert!(
            matches!(a, Answer::BadData { ref numbers, .. } if numbers == &[12]),
            "{a:?}"
        );
        let a = classify(
            401,
            None,
            r#"{"code":"unauthorized","message":"unauthorized access"}"#,
            now(),
        );
        assert_eq!(
            a,
            Answer::Config {
                kind: ErrorKind::Auth,
                message: "HTTP 401: unauthorized: unauthorized access".into()
            }
        );
        assert_eq!(classify(403, None, "", now()).kind(), Some(ErrorKind::Auth));
        let a = classify(
            404,
            None,
            r#"{"code":"not found","message":"bucket \"b\" not found"}"#,
            now(),
        );
        assert!(
            matches!(a, Answer::Config { kind: ErrorKind::NotFound, ref message } if message.contains("bucket \"b\" not found"))
        );
        assert_eq!(classify(413, None, "", now()), Answer::TooLarge);
        assert_eq!(
            classify(429, Some("7"), "", now()),
            Answer::Retry {
                kind: ErrorKind::Throttled,
                message: "HTTP 429".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        let a = classify(503, Some("Tue, 14 Nov 2023 22:13:40 GMT"), "down", now());
        assert_eq!(
            a,
            Answer::Retry {
                kind: ErrorKind::Server,
                message: "HTTP 503: down".into(),
                after: Some(Duration::from_secs(20))
            }
        );
        assert!(matches!(
            classify(500, None, "", now()),
            Answer::Retry {
                kind: ErrorKind::Server,
                after: None,
                ..
            }
        ));
        assert!(matches!(
            classify(301, None, "", now()),
            Answer::Config {
                kind: ErrorKind::Http,
                ..
            }
        ));
        assert!(matches!(
            classify(408, None, "", now()),
            Answer::Retry {
                kind: ErrorKind::Timeout,
                ..
            }
        ));
    }

    #[test]
    fn retry_after_is_seconds_or_a_date_and_capped() {
        assert_eq!(
            parse_retry_after(" 120 ", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("999999", now()), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now()),
            Some(Duration::ZERO),
            "a date in the past: now"
        );
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-3", now()), None);
    }

    #[test]
    fn named_lines_are_found_in_each_known_shape() {
        let (n, q) = named_lines(
            r#"{"code":"invalid","message":"unable to parse 'cpu,host=a v=1i x': invalid field format\nunable to parse 'b': missing fields"}"#,
        );
        assert!(n.is_empty());
        assert_eq!(q, vec!["cpu,host=a v=1i x".to_string(), "b".to_string()]);
        let (n, _) = named_lines(
            r#"{"code":"invalid","line":2,"message":"m","data":[{"line_number":2},{"line_number":5}]}"#,
        );
        assert_eq!(n, vec![2, 5]);
        let (n, q) = named_lines("not json: line 4: bad");
        assert_eq!((n, q), (vec![4], vec![]));
        assert!(line_numbers("pipeline 12 failed; baseline 3").is_empty());
        assert_eq!(line_numbers("Line 9: x, line 10"), vec![9, 10]);
    }

    #[test]
    fn error_kinds_have_names_and_config_ones_are_marked() {
        let e = WriteErrors::default();
        e.count_request(ErrorKind::Tls);
        e.count_request(ErrorKind::Tls);
        e.count_points(ErrorKind::BadData, 3);
        let s = e.snapshot();
        assert_eq!(s.len(), 10);
        assert!(s.contains(&("tls", 2, 0)) && s.contains(&("bad_data", 0, 3)));
        let config: Vec<_> = ErrorKind::ALL
            .iter()
            .filter(|k| k.is_config())
            .map(|k| k.as_str())
            .collect();
        assert_eq!(config, ["auth", "not_found", "tls", "http"]);
    }
}
