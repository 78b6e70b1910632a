//! Shared parts of the durability tests (`durable_*.rs`): the node's config with a disk
//! outbox, a QoS 1 publisher that logs what the broker acknowledged, a private
//! VictoriaMetrics that a test may stop and start, and the comparison of what the database
//! holds with what was published, value by value.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Assets of a stream (`{run}A0` …); reading `k` belongs to asset `k % ASSETS`.
pub const ASSETS: u64 = 20;

/// One reading of a stream, numbered `k`: its asset, signal, time (ms) and value.
pub fn reading(run: &str, t0_ms: i64, k: u64) -> (String, String, i64, f64) {
    (
        format!("{run}A{}", k % ASSETS),
        format!("s{}", (k / ASSETS) % 10),
        // Distinct per series: the series is (k % 20, k/20 % 10), so k / 200 differs inside one.
        t0_ms + (k / (ASSETS * 10)) as i64,
        k as f64 + 0.5,
    )
}

/// A message of readings `ks` (all of one asset) in the node's JSON array format.
pub fn message(run: &str, t0_ms: i64, ks: &[u64]) -> (String, String) {
    let (asset, ..) = reading(run, t0_ms, ks[0]);
    let mut p = String::from("[");
    for (i, &k) in ks.iter().enumerate() {
        let (_, signal, ts, v) = reading(run, t0_ms, k);
        if i > 0 {
            p.push(',');
        }
        p.push_str(&format!(
            r#"{{"signal":"{signal}","value":{v:?},"ts_ms":{ts}}}"#
        ));
    }
    p.push(']');
    (format!("{run}/{asset}"), p)
}

/// Message `m` of a stream of `per_msg` readings per message, all of asset `m % ASSETS`; the
/// first `M` messages (M a multiple of ASSETS) carry readings `0 .. M * per_msg` exactly once.
pub fn stream_message(run: &str, t0_ms: i64, m: u64, per_msg: u64) -> (Vec<u64>, (String, String)) {
    // Readings of one asset: k = asset + 20 * j.
    let asset = m % ASSETS;
    let round = m / ASSETS;
    let ks: Vec<u64> = (0..per_msg)
        .map(|j| asset + ASSETS * (round * per_msg + j))
        .collect();
    let msg = message(run, t0_ms, &ks);
    (ks, msg)
}

/// Now, in Unix ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes the node's config: MQTT (persistent session, QoS 1, JSON on `{run}/{asset}`),
/// InfluxDB at `vm` with the outbox in `dir/outbox` (`outbox_extra`: more keys of
/// `[influxdb.outbox]`), /metrics on `mport`.
pub fn write_config(
    dir: &Path,
    run: &str,
    vm: &str,
    mport: u16,
    client_id: &str,
    influx_extra: &str,
    outbox_extra: &str,
) -> PathBuf {
    let broker = mqtt_broker();
    let cfg = dir.join("millwright.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[site]
name = "e2e"
[mqtt]
host = "{host}"
port = {port}
client_id = "{client_id}"
clean_session = false
[[mqtt.subscriptions]]
topic = "{run}/{{asset}}"
format = "json"
qos = 1
unit = "bar"
[influxdb]
url = "{vm}"
org = "e2e"
bucket = "e2e"
retry_min_ms = 100
retry_max_ms = 1000
{influx_extra}
[influxdb.outbox]
dir = "outbox"
{outbox_extra}
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 0
shutdown_drain_s = 5
metrics_interval_s = 0
"#,
            host = broker.host,
            port = broker.port,
        ),
    )
    .unwrap();
    cfg
}

/// Polls `f` every 50 ms until true; panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A metric of the node at `base` (0 when missing).
pub fn metric(base: &str, name: &str) -> f64 {
    node_metric(base, name, "").unwrap_or(0.0)
}

/// Waits until the node at `base` is connected and subscribed.
pub fn wait_connected(base: &str) {
    wait_subscribed(base, Duration::from_secs(30));
}

/// A QoS 1 publisher; `acked` counts the broker's PUBACKs, `log` the message numbers acked
/// (the broker has them) — in PUBACK order, which for QoS 1 is publish order.
pub struct Publisher {
    pub client: AsyncClient,
    pub acked: Arc<AtomicU64>,
    pump: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub fn connect(name: &str) -> Publisher {
        let broker = mqtt_broker();
        let mut o = MqttOptions::new(unique(name), broker.host.clone(), broker.port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_inflight(1000)
            .set_max_packet_size(1 << 24, 1 << 24);
        let (client, mut el) = AsyncClient::new(o, 2000);
        let acked = Arc::new(AtomicU64::new(0));
        let a = acked.clone();
        let pump = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("test publisher: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Publisher {
            client,
            acked,
            pump,
        }
    }

    pub async fn publish(&self, topic: String, payload: String) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// Waits until the broker acknowledged `n` messages.
    pub async fn wait_acked(&self, n: u64, timeout: Duration) {
        let t = Instant::now();
        while self.acked.load(Ordering::Relaxed) < n {
            assert!(
                t.elapsed() < timeout,
                "the broker acknowledged {} of {n} messages",
                self.acked.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// What the database holds for `run`: (series name, asset, ts ms) → every value stored there.
pub fn stored(vm: &str, run: &str) -> HashMap<(String, String, i64), Vec<f64>> {
    let _ = ureq::get(&format!("{vm}/internal/force_flush")).call();
    let mut m: HashMap<(String, String, i64), Vec<f64>> = HashMap::new();
    // Exported through a reader: millions of points are more than `into_string` takes.
    let resp = ureq::get(&format!("{vm}/api/v1/export"))
        .query("match[]", &format!("{{asset=~\"{run}A.*\"}}"))
        .query("start", "0")
        .call()
        .expect("victoria-metrics export");
    let mut body = String::new();
    std::io::Read::read_to_string(&mut resp.into_reader(), &mut body).expect("export body");
    let series = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<VmSeries>(l).expect("export line is JSON"));
    for s in series {
        let name = s.metric.get("__name__").cloned().unwrap_or_default();
        let asset = s.metric.get("asset").cloned().unwrap_or_default();
        for (t, v) in s.timestamps_ms.iter().zip(&s.values) {
            m.entry((name.clone(), asset.clone(), *t))
                .or_default()
                .push(*v);
        }
    }
    m
}

/// What the database holds for `run` once it holds at least `points` points (duplicates
/// included) or `timeout` has passed, polled every `every` off the async runtime.
pub async fn stored_once(
    vm: &str,
    run: &str,
    points: f64,
    timeout: Duration,
    every: Duration,
) -> HashMap<(String, String, i64), Vec<f64>> {
    let (vm, run) = (vm.to_string(), run.to_string());
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        loop {
            let db = stored(&vm, &run);
            let n: usize = db.values().map(Vec::len).sum();
            if n as f64 >= points || t.elapsed() > timeout {
                return db;
            }
            std::thread::sleep(every);
        }
    })
    .await
    .expect("the database poll")
}

/// Points stored for `run` (duplicates included).
pub fn stored_count(vm: &str, run: &str) -> usize {
    stored(vm, run).values().map(Vec::len).sum()
}

/// Checks readings `ks` against the database: each present with its exact value. Returns
/// (missing, duplicates) — a duplicate is a second copy of the same point.
pub fn compare(
    db: &HashMap<(String, String, i64), Vec<f64>>,
    run: &str,
    t0_ms: i64,
    ks: impl Iterator<Item = u64>,
) -> (Vec<u64>, usize) {
    let mut missing = Vec::new();
    let mut dups = 0;
    for k in ks {
        let (asset, signal, ts, v) = reading(run, t0_ms, k);
        match db.get(&(format!("{signal}_value"), asset, ts)) {
            Some(vals) => {
                assert!(
                    vals.iter().all(|x| *x == v),
                    "reading {k}: stored {vals:?}, published {v}"
                );
                dups += vals.len() - 1;
            }
            None => missing.push(k),
        }
    }
    (missing, dups)
}

/// A VictoriaMetrics process of one test, on its own port and storage, that can be stopped
/// and started again (the shared one keeps running).
pub struct OwnVictoria {
    pub port: u16,
    pub url: String,
    dir: PathBuf,
    child: Option<Child>,
}

fn vm_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("victoria-metrics"))
        .find(|p| p.exists())
        .expect("victoria-metrics is not on PATH (scripts/install-deps.sh installs it)")
}

impl OwnVictoria {
    /// A port and storage folder; not started yet.
    pub fn new() -> OwnVictoria {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("mw-durable-vm-"));
        std::fs::create_dir_all(&dir).unwrap();
        OwnVictoria {
            port,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            child: None,
        }
    }

    pub fn start(&mut self) {
        let child = Command::new(vm_bin())
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg(format!("-storageDataPath={}", self.dir.display()))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting victoria-metrics");
        self.child = Some(child);
        let t0 = Instant::now();
        while ureq::get(&format!("{}/health", self.url)).call().is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "victoria-metrics did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it with SIGTERM (a SIGKILL would lose the points it had accepted but not yet
    /// flushed — the database's loss, not the node's), SIGKILL after 30 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() {
                if t0.elapsed() > Duration::from_secs(30) {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.wait();
        }
    }
}

impl Drop for OwnVictoria {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh folder for one test's node.
pub fn test_dir(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The node's log so far (for failure messages), its last `n` lines.
pub fn log_tail(p: &Path, n: usize) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
