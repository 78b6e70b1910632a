//! Support for end-to-end tests: the real services (Mosquitto, VictoriaMetrics), the built
//! `millwright` binary and the model file.
//!
//! `make test` starts one Mosquitto and one VictoriaMetrics on free loopback ports and passes
//! them in `MILLWRIGHT_TEST_MQTT` (host:port) and `MILLWRIGHT_TEST_VM` (base URL). Without
//! those variables the first test that needs a service starts a private one for the test
//! process (the binaries must be installed: `make deps`). Tests that must stop and restart a
//! broker start their own with [`Mosquitto::start`].

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn wait_port(port: u16, what: &str) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{what} did not start listening on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn find_bin(candidates: &[&str], name: &str) -> PathBuf {
    for c in candidates {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!("{name} is not installed (looked in {candidates:?}); run `make deps` or `make test`")
}

/// A broker address.
#[derive(Clone, Debug)]
pub struct Broker {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A Mosquitto process owned by the test; killed on drop.
pub struct Mosquitto {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a private Mosquitto on a free loopback port.
    pub fn start() -> Mosquitto {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("mw-mosq-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.start_again();
        m
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the broker (like a crash: no clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same port (with its persisted sessions).
    pub fn start_again(&mut self) {
        self.stop();
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 200000\nmessage_size_limit 0\n",
                self.port,
                self.dir.display()
            ),
        )
        .unwrap();
        let bin = find_bin(&["/usr/sbin/mosquitto", "/usr/bin/mosquitto"], "mosquitto");
        let log = std::fs::File::create(self.dir.join("mosquitto.log")).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting mosquitto");
        self.child = Some(child);
        wait_port(self.port, "mosquitto");
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A VictoriaMetrics process owned by the test process.
pub struct Victoria {
    /// Base URL.
    pub url: String,
    child: Child,
    dir: PathBuf,
}

impl Victoria {
    /// Starts VictoriaMetrics on a free loopback port with data in a temp dir.
    pub fn start() -> Victoria {
        Self::start_at(free_port())
    }

    /// Starts VictoriaMetrics on the given loopback port with data in a temp dir.
    pub fn start_at(port: u16) -> Victoria {
        let dir = std::env::temp_dir().join(format!("mw-vm-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = find_bin(
            &["/usr/bin/victoria-metrics", "/usr/sbin/victoria-metrics"],
            "victoria-metrics",
        );
        let child = Command::new(bin)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.display()))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting victoria-metrics");
        wait_port(port, "victoria-metrics");
        Victoria {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        }
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shared broker of the test run.
pub fn mqtt_broker() -> Broker {
    static SHARED: OnceLock<Broker> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if let Ok(hp) = std::env::var("MILLWRIGHT_TEST_MQTT") {
                let (h, p) = hp
                    .rsplit_once(':')
                    .expect("MILLWRIGHT_TEST_MQTT is host:port");
                return Broker {
                    host: h.to_string(),
                    port: p.parse().expect("MILLWRIGHT_TEST_MQTT port"),
                };
            }
            let m = Box::leak(Box::new(Mosquitto::start()));
            Broker {
                host: "127.0.0.1".into(),
                port: m.port(),
            }
        })
        .clone()
}

/// Base URL of the shared VictoriaMetrics of the test run.
pub fn victoria() -> String {
    static SHARED: OnceLock<String> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if let Ok(u) = std::env::var("MILLWRIGHT_TEST_VM") {
                return u;
            }
            let v = Box::leak(Box::new(Victoria::start()));
            v.url.clone()
        })
        .clone()
}

/// One exported series.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct VmSeries {
    /// Labels, `__name__` included.
    pub metric: BTreeMap<String, String>,
    /// Values.
    pub values: Vec<f64>,
    /// Timestamps in ms.
    #[serde(rename = "timestamps")]
    pub timestamps_ms: Vec<i64>,
}

/// Exports every series matching `selector` (PromQL series selector) from VictoriaMetrics.
pub fn vm_export(base: &str, selector: &str) -> Vec<VmSeries> {
    let resp = ureq::get(&format!("{base}/api/v1/export"))
        .query("match[]", selector)
        .query("start", "0")
        .call()
        .expect("victoria-metrics export");
    let body = resp.into_string().expect("export body");
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("export line is JSON"))
        .collect()
}

/// Polls until the series matching `selector` hold at least `points` points in total, or the
/// timeout passes; returns what was there last.
pub fn vm_wait_for(base: &str, selector: &str, points: usize, timeout: Duration) -> Vec<VmSeries> {
    let t0 = Instant::now();
    loop {
        // Make recently ingested data visible to export.
        let _ = ureq::get(&format!("{base}/internal/force_flush")).call();
        let s = vm_export(base, selector);
        let n: usize = s.iter().map(|x| x.values.len()).sum();
        if n >= points || t0.elapsed() > timeout {
            return s;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The default model file (env `MILLWRIGHT_MODEL`, else `models/SmolLM2-135M-Instruct.Q4_1.gguf`).
pub fn model_path() -> PathBuf {
    let p = std::env::var("MILLWRIGHT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        p.exists(),
        "model file {} missing: run `make model`",
        p.display()
    );
    p
}

/// The built `millwright` binary next to this test executable (env `MILLWRIGHT_BIN` overrides).
pub fn millwright_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MILLWRIGHT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("millwright");
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p millwright` first (make test does)",
        bin.display()
    );
    bin
}

/// A child process killed on drop (for nodes started by tests).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Checks `cfg` with `millwright check-config` (panics with its stderr when it fails), then
/// starts `millwright run --config cfg` with its log in `log` (stdout discarded).
pub fn run_checked_node(cfg: &Path, log: &Path) -> KillOnDrop {
    let check = Command::new(millwright_bin())
        .arg("check-config")
        .arg(cfg)
        .output()
        .unwrap_or_else(|e| panic!("running check-config: {e}"));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let child = Command::new(millwright_bin())
        .args(["run", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting the node: {e}"));
    KillOnDrop(child)
}

/// Unique name per test run, so reruns against the same VictoriaMetrics never mix.
pub fn unique(prefix: &str) -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}{}x{}", std::process::id(), ns % 1_000_000_000)
}

/// Sum of a Prometheus metric from the node's `/metrics` at `base` (e.g. `http://127.0.0.1:9100`)
/// over all label sets, or over the rows whose labels contain `filter`; `None` when the page or
/// the metric is missing.
pub fn node_metric(base: &str, name: &str, filter: &str) -> Option<f64> {
    let text = ureq::get(&format!("{base}/metrics"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    let mut sum = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (k, v) = l.rsplit_once(' ')?;
        if k.split('{').next()? == name && k.contains(filter) {
            *sum.get_or_insert(0.0) += v.parse::<f64>().ok()?;
        }
    }
    sum
}

/// True when the node at `base` is connected to its broker and the broker accepted every
/// subscription on this connection (`millwright_mqtt_subscribed` is 1 on each row).
pub fn node_subscribed(base: &str) -> bool {
    let Ok(text) = ureq::get(&format!("{base}/metrics"))
        .call()
        .map_err(|e| e.to_string())
        .and_then(|r| r.into_string().map_err(|e| e.to_string()))
    else {
        return false;
    };
    let (mut connected, mut rows, mut all) = (false, 0, true);
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((k, v)) = l.rsplit_once(' ') else {
            continue;
        };
        let name = k.split('{').next().unwrap_or("");
        if name == "millwright_mqtt_connected" {
            connected = v == "1";
        } else if name == "millwright_mqtt_subscribed" {
            rows += 1;
            all &= v == "1";
        }
    }
    connected && rows > 0 && all
}

/// Waits until [`node_subscribed`]: a message published after this reaches the node (before,
/// the broker may not have the subscription yet and drops it). Panics after `timeout`.
pub fn wait_subscribed(base: &str, timeout: Duration) {
    let t0 = std::time::Instant::now();
    while !node_subscribed(base) {
        assert!(
            t0.elapsed() < timeout,
            "the node at {base} was not connected and subscribed within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
