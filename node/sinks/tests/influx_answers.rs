//! The InfluxDB writer (`InfluxWriter::spawn`, the real task) against a small in-test HTTP
//! server that answers as InfluxDB 2 does: 400 partial write naming the bad line (or naming
//! none), 401 `unauthorized access`, 404 bucket not found, 413, 429 and 503 with `Retry-After`.
//! VictoriaMetrics accepts bad lines with 204 and never answers most of these, hence this
//! server. Checks exactly which lines arrived, the counters, that a 401 keeps the data and
//! reports it, and that `Retry-After` is honoured (timing with a tolerance; not a benchmark).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use millwright_core::{Reading, SensorId, Unit};
use millwright_sinks::influx::ErrorKind;
use millwright_sinks::{InfluxConfig, InfluxWriter, SinkStatus};
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Req {
    /// Request number, from 0.
    n: usize,
    at: Instant,
    target: String,
    auth: Option<String>,
    lines: Vec<String>,
}

/// What the server answers, and which of the request's lines it stores.
struct Resp {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    store: Vec<String>,
}

impl Resp {
    fn ok(r: &Req) -> Self {
        Self {
            status: 204,
            headers: vec![],
            body: String::new(),
            store: r.lines.clone(),
        }
    }
    fn err(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![],
            body: body.into(),
            store: vec![],
        }
    }
}

type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

/// The server's record: every request, and the lines stored (a set: InfluxDB overwrites an
/// identical point).
#[derive(Default)]
struct Log {
    requests: Vec<Req>,
    stored: BTreeSet<String>,
    /// Times each line was stored (to see replays).
    stores: usize,
}

struct Server {
    url: String,
    log: Arc<Mutex<Log>>,
}

async fn server(handler: Handler) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log::default()));
    let lg = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let (h, lg) = (handler.clone(), lg.clone());
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                // Keep-alive: one request after the other on the connection.
                loop {
                    let mut first = String::new();
                    if rd.read_line(&mut first).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let target = first.split(' ').nth(1).unwrap_or("").to_string();
                    let (mut len, mut gz, mut auth) = (0usize, false, None);
                    loop {
                        let mut h = String::new();
                        rd.read_line(&mut h).await.unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        let v = v.trim();
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => len = v.parse().unwrap(),
                            "content-encoding" => gz = v == "gzip",
                            "authorization" => auth = Some(v.to_string()),
                            "transfer-encoding" => panic!("chunked body not expected"),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    rd.read_exact(&mut body).await.unwrap();
                    let text = if gz {
                        let mut s = String::new();
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_string(&mut s)
                            .unwrap();
                        s
                    } else {
                        String::from_utf8(body).unwrap()
                    };
                    let resp = {
                        let mut g = lg.lock().unwrap();
                        let req = Req {
                            n: g.requests.len(),
                            at: Instant::now(),
                            target: target.clone(),
                            auth,
                            lines: text.lines().map(str::to_string).collect(),
                        };
                        let resp = h(&req);
                        g.stores += resp.store.len();
                        g.stored.extend(resp.store.iter().cloned());
                        g.requests.push(req);
                        resp
                    };
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nContent-Type: application/json; charset=utf-8\r\n",
                        resp.status,
                        resp.body.len()
                    );
                    for (k, v) in &resp.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&resp.body);
                    if wr.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Server { url, log }
}

fn cfg(url: &str) -> InfluxConfig {
    let mut c = InfluxConfig::new(url, "plant", "readings", "s3cret-token");
    c.batch_size = 50;
    c.max_backlog_points = 10_000;
    c.flush_interval_ms = 20;
    c.retry_min_ms = 50;
    c.retry_max_ms = 200;
    c.timeout_ms = 5_000;
    c
}

/// `n` readings, value = index, so a line names its reading.
fn readings(n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| {
            Reading::new(
                SensorId::new("pump-1", "flow"),
                1_700_000_000_000_000_000 + i as i64,
                i as f64,
                Unit::new("m3/h"),
            )
        })
        .collect()
}

/// The reading index of a line (its value).
fn index_of(line: &str) -> usize {
    let v = line
        .split(" value=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    v.parse::<f64>().unwrap() as usize
}

fn stored_indices(s: &Server) -> BTreeSet<usize> {
    s.log
        .lock()
        .unwrap()
        .stored
        .iter()
        .map(|l| index_of(l))
        .collect()
}

async fn wait_until(what: &str, secs: u64, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn done(st: &SinkStatus) -> u64 {
    st.written_points.load(Ordering::Relaxed) + st.rejected_points.load(Ordering::Relaxed)
}

/// InfluxDB 2's partial write: the good lines of the request are stored, the bad ones named
/// `line N:` (1-based within that request).
fn partial_write(bad: impl Fn(usize) -> bool + Send + Sync + 'static, name: bool) -> Handler {
    Arc::new(move |r: &Req| {
        let bad_pos: Vec<usize> = (0..r.lines.len())
            .filter(|&p| bad(index_of(&r.lines[p])))
            .collect();
        if bad_pos.is_empty() {
            return Resp::ok(r);
        }
        let msg = if name {
            let each: Vec<String> = bad_pos
                .iter()
                .map(|p| format!("line {}: field type conflict: input field \\\"value\\\" is type float, already exists as type integer", p + 1))
                .collect();
            format!(
                "partial write: errors encountered on line(s):\\n{}",
                each.join("\\n")
            )
        } else {
            "partial write: field type conflict dropped=1".into()
        };
        let mut resp = Resp::err(400, &format!(r#"{{"code":"invalid","message":"{msg}"}}"#));
        resp.store = (0..r.lines.len())
            .filter(|p| !bad_pos.contains(p))
            .map(|p| r.lines[p].clone())
            .collect();
        resp
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_write_costs_only_the_bad_points_and_counts_them() {
    for name in [true, false] {
        let bad = |i: usize| i == 7 || i == 130 || i == 131;
        let s = server(partial_write(bad, name)).await;
        let (w, task) = InfluxWriter::spawn(cfg(&s.url), "site-a".into()).unwrap();
        w.write(readings(200)).await.unwrap();
        wait_until("all points done", 20, || done(&w.status) == 200).await;
        let want: BTreeSet<usize> = (0..200).filter(|&i| !bad(i)).collect();
        assert_eq!(
            stored_indices(&s),
            want,
            "named={name}: exactly the good lines arrived"
        );
        let st = &w.status;
        assert_eq!(st.written_points.load(Ordering::Relaxed), 197);
        assert_eq!(st.rejected_points.load(Ordering::Relaxed), 3);
        assert_eq!(st.dropped_points.load(Ordering::Relaxed), 0);
        assert_eq!(st.errors.points(ErrorKind::BadData), 3);
        assert!(
            st.errors.requests(ErrorKind::BadData) >= 2,
            "two batches had bad lines"
        );
        let last = st.last_error.lock().unwrap().clone().unwrap();
        assert!(
            last.contains("rejected") && last.contains("partial write"),
            "{last}"
        );
        assert!(!st.errors.config_error.load(Ordering::Relaxed));
        {
            let log = s.log.lock().unwrap();
            let r0 = &log.requests[0];
            assert_eq!(r0.auth.as_deref(), Some("Token s3cret-token"));
            assert_eq!(
                r0.target,
                "/api/v2/write?org=plant&bucket=readings&precision=ns"
            );
            assert!(
                r0.lines[0]
                    .starts_with("flow,asset=pump-1,quality=good,site=site-a,unit=m3/h value=0.0 "),
                "{}",
                r0.lines[0]
            );
            if name {
                // Named lines: the refused batch, then its good lines once more — per bad batch.
                assert_eq!(log.requests.len(), 4 + 2, "{}", log.requests.len());
            }
        }
        w.close(Duration::from_secs(2)).await.unwrap();
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_keeps_the_data_and_reports_it_until_the_token_is_accepted() {
    let open = Arc::new(Mutex::new(false));
    let o = open.clone();
    let s = server(Arc::new(move |r: &Req| {
        if *o.lock().unwrap() {
            Resp::ok(r)
        } else {
            Resp::err(
                401,
                r#"{"code":"unauthorized","message":"unauthorized access"}"#,
            )
        }
    }))
    .await;
    let (w, task) = InfluxWriter::spawn(cfg(&s.url), "site-a".into()).unwrap();
    w.write(readings(120)).await.unwrap();
    let st = w.status.clone();
    wait_until("three refusals", 10, || {
        st.errors.requests(ErrorKind::Auth) >= 3
    })
    .await;
    assert!(
        st.errors.config_error.load(Ordering::Relaxed),
        "reported as a config error"
    );
    assert!(!st.healthy.load(Ordering::Relaxed));
    let last = st.last_error.lock().unwrap().clone().unwrap();
    assert_eq!(last, "HTTP 401: unauthorized: unauthorized access");
    assert!(!last.contains("s3cret"));
    assert_eq!(st.written_points.load(Ordering::Relaxed), 0);
    assert_eq!(
        st.rejected_points.load(Ordering::Relaxed),
        0,
        "nothing thrown away"
    );
    assert_eq!(st.dropped_points.load(Ordering::Relaxed), 0);
    assert_eq!(
        st.backlog_points.load(Ordering::Relaxed),
        120,
        "the data waits"
    );
    assert!(s.log.lock().unwrap().stored.is_empty());
    // The token is fixed (here: the server starts accepting it): everything arrives.
    *open.lock().unwrap() = true;
    wait_until("all written", 10, || {
        st.written_points.load(Ordering::Relaxed) == 120
    })
    .await;
    assert_eq!(stored_indices(&s), (0..120).collect());
    assert!(
        !st.errors.config_error.load(Ordering::Relaxed),
        "cleared by a success"
    );
    assert!(st.healthy.load(Ordering::Relaxed));
    w.close(Duration::from_secs(2)).await.unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_config_error_and_the_data_waits() {
    let s = server(Arc::new(|_: &Req| {
        Resp::err(
            404,
            r#"{"code":"not found","message":"bucket \"readings\" not found"}"#,
        )
    }))
    .await;
    let (w, task) = InfluxWriter::spawn(cfg(&s.url), "site-a".into()).unwrap();
    w.write(readings(10)).await.unwrap();
    let st = w.status.clone();
    wait_until("a refusal", 10, || {
        st.errors.requests(ErrorKind::NotFound) >= 1
    })
    .await;
    wait_until("the flag", 10, || {
        st.errors.config_error.load(Ordering::Relaxed)
    })
    .await;
    let last = st.last_error.lock().unwrap().clone().unwrap();
    assert!(last.contains("bucket \"readings\" not found"), "{last}");
    assert_eq!(st.backlog_points.load(Ordering::Relaxed), 10);
    assert_eq!(done(&st), 0);
    // Closing with a short deadline gives up on the waiting data — counted, not silent.
    w.close(Duration::from_millis(100)).await.unwrap();
    task.await.unwrap();
    assert_eq!(st.dropped_points.load(Ordering::Relaxed), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_bodies_are_halved_until_they_fit() {
    let s = server(Arc::new(|r: &Req| {
        if r.lines.len() > 20 {
            Resp::err(413, r#"{"code":"request too large","message":"unable to read data: points batch is too large"}"#)
        } else {
            Resp::ok(r)
        }
    }))
    .await;
    let mut c = cfg(&s.url);
    c.batch_size = 100;
    let (w, task) = InfluxWriter::spawn(c, "site-a".into()).unwrap();
    w.write(readings(300)).await.unwrap();
    let st = w.status.clone();
    wait_until("all written", 20, || {
        st.written_points.load(Ordering::Relaxed) == 300
    })
    .await;
    assert_eq!(stored_indices(&s), (0..300).collect());
    {
        let log = s.log.lock().unwrap();
        assert_eq!(log.stores, 300, "every line stored exactly once");
        assert_eq!(st.rejected_points.load(Ordering::Relaxed), 0);
        let too_large = st.errors.requests(ErrorKind::TooLarge);
        // The first batch is halved 100 → 50 → 25 → 12 + 13: 1 + 2 + 4 refusals and 8 writes;
        // later batches are cut to the size that fit (13) before they are sent: 8 writes each.
        assert_eq!(too_large, 7, "{too_large}");
        assert_eq!(log.requests.len(), 15 + 8 + 8);
        assert!(log.requests.iter().skip(15).all(|r| r.lines.len() <= 13));
    }
    w.close(Duration::from_secs(2)).await.unwrap();
    task.await.unwrap();
}

/// The first request gets `status` with `Retry-After: <header>`, the rest 204; returns the gap
/// between the first two requests.
async fn retry_after_gap(
    status: u16,
    header: impl Fn() -> String + Send + Sync + 'static,
) -> Duration {
    let s = server(Arc::new(move |r: &Req| {
        if r.n == 0 {
            let mut resp = Resp::err(
                status,
                r#"{"code":"too many requests","message":"slow down"}"#,
            );
            resp.headers.push(("Retry-After", header()));
            resp
        } else {
            Resp::ok(r)
        }
    }))
    .await;
    let mut c = cfg(&s.url);
    // Far from the Retry-After values, so honouring them is told apart from the back-off.
    c.retry_min_ms = 10_000;
    c.retry_max_ms = 10_000;
    let (w, task) = InfluxWriter::spawn(c, "site-a".into()).unwrap();
    w.write(readings(10)).await.unwrap();
    let st = w.status.clone();
    wait_until("written", 15, || {
        st.written_points.load(Ordering::Relaxed) == 10
    })
    .await;
    assert_eq!(stored_indices(&s), (0..10).collect());
    let kind = if status == 429 {
        ErrorKind::Throttled
    } else {
        ErrorKind::Server
    };
    assert_eq!(st.errors.requests(kind), 1);
    assert!(!st.errors.config_error.load(Ordering::Relaxed));
    let gap = {
        let log = s.log.lock().unwrap();
        log.requests[1].at - log.requests[0].at
    };
    w.close(Duration::from_secs(2)).await.unwrap();
    task.await.unwrap();
    gap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    let gap = retry_after_gap(429, || "1".into()).await;
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_secs(5),
        "429 Retry-After: 1 → {gap:?}"
    );
    // An HTTP date 3 s ahead (whole seconds: at least 2 s away when it is read).
    let gap = retry_after_gap(503, || {
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3))
    })
    .await;
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_secs(6),
        "503 Retry-After: <date> → {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_without_retry_after_back_off_and_keep_the_data() {
    let s = server(Arc::new(|r: &Req| {
        if r.n < 3 {
            Resp::err(503, "Service Unavailable")
        } else {
            Resp::ok(r)
        }
    }))
    .await;
    let (w, task) = InfluxWriter::spawn(cfg(&s.url), "site-a".into()).unwrap();
    w.write(readings(30)).await.unwrap();
    let st = w.status.clone();
    wait_until("written", 10, || {
        st.written_points.load(Ordering::Relaxed) == 30
    })
    .await;
    assert_eq!(st.errors.requests(ErrorKind::Server), 3);
    assert_eq!(stored_indices(&s), (0..30).collect());
    {
        let log = s.log.lock().unwrap();
        // Back-off 50, 100, 200 ms between the tries.
        assert!(log.requests[3].at - log.requests[0].at >= Duration::from_millis(340));
    }
    w.close(Duration::from_secs(2)).await.unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_counted_and_the_data_waits() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (w, task) =
        InfluxWriter::spawn(cfg(&format!("http://127.0.0.1:{port}")), "s".into()).unwrap();
    w.write(readings(5)).await.unwrap();
    let st = w.status.clone();
    wait_until("connect errors", 10, || {
        st.errors.requests(ErrorKind::Connect) >= 2
    })
    .await;
    assert_eq!(st.backlog_points.load(Ordering::Relaxed), 5);
    assert!(
        !st.errors.config_error.load(Ordering::Relaxed),
        "transient, not config"
    );
    w.close(Duration::from_millis(50)).await.unwrap();
    task.await.unwrap();
}
