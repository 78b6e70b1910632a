//! No off-site egress, proven:
//! - the node's whole job (MQTT in from Mosquitto, Modbus from the machine simulator, InfluxDB
//!   out to VictoriaMetrics, detectors and the on-device model) runs inside a network
//!   namespace that has only loopback (`unshare -n`; this test binary re-runs itself inside
//!   it), and every socket the node opened — read from `/proc/<pid>/fd` and
//!   `/proc/<pid>/net/{tcp,tcp6,udp,udp6,raw,raw6,netlink,packet}` — is compared with the
//!   config's endpoints and the node's own `/metrics` listener: any other peer, any UDP, raw,
//!   packet or netlink socket fails the test;
//! - a public address in the config is refused by `check-config` (naming each field and its
//!   line) and by `millwright run` before it connects (inside the namespace when it can be
//!   made, so a packet that tried to leave would show as "network unreachable" instead).
//!
//! Where namespaces are not permitted (EPERM) the namespace parts print why and skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use millwright_sim::{register_map, MachineConfig, MachineKind, MachineServer};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INNER: &str = "MW_EGRESS_INNER";

/// `unshare` flags that make a loopback-only network namespace here, or `None` (with the
/// reason printed) where namespaces are not permitted.
fn namespace_flags() -> Option<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    // As root a plain network namespace (daemons can still drop privileges); else a user
    // namespace too.
    let flags = if root { "-n" } else { "-rn" };
    let out = Command::new("unshare")
        .arg(flags)
        .arg("true")
        .output()
        .expect("unshare (util-linux) is not installed");
    if out.status.success() {
        return Some(flags);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Operation not permitted") || err.contains("Permission denied") {
        eprintln!(
            "SKIPPED: network namespaces are not permitted here (`unshare {flags}`: {}); \
             the egress proof needs them",
            err.trim()
        );
        return None;
    }
    panic!("unshare {flags} failed: {err}");
}

/// Runs this test binary's test `name` inside a loopback-only namespace.
fn run_inside(flags: &str, name: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .arg(flags)
        .args(["sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(&exe)
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, "1")
        // The shared services live outside the namespace: the inner test starts its own.
        .env_remove("MILLWRIGHT_TEST_MQTT")
        .env_remove("MILLWRIGHT_TEST_VM")
        .env("MILLWRIGHT_BIN", millwright_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- inside the namespace ---\n{stdout}{stderr}---");
    assert!(out.status.success(), "the test inside the namespace failed");
    assert!(
        stdout.contains("1 passed"),
        "the inner test did not run: {stdout}"
    );
}

#[test]
fn the_whole_job_opens_only_the_configured_sockets() {
    let Some(flags) = namespace_flags() else {
        return;
    };
    run_inside(flags, "inner_whole_job_in_a_loopback_namespace");
}

#[test]
fn public_endpoints_are_refused_before_any_connection() {
    let dir = std::env::temp_dir().join(unique("mw-egress-pub-"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("public.toml");
    let text = |extra: &str| {
        format!(
            r#"[site]
name = "egress"
[mqtt]
host = "8.8.8.8"
[[mqtt.subscriptions]]
topic = "plant/{{asset}}/{{signal}}"
[influxdb]
url = "http://[2001:4860:4860::8888]:8086"
org = "o"
bucket = "b"
[[modbus.devices]]
name = "P-1"
asset = "P-1"
host = "1.1.1.1"
[[modbus.devices.fields]]
signal = "t"
function = "input"
address = 0
type = "u16"
unit = "C"
[node]
status_interval_s = 0
{extra}
"#
        )
    };
    std::fs::write(&cfg, text("")).unwrap();
    let out = Command::new(millwright_bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "check-config passed a public endpoint"
    );
    for want in [
        "line 4: mqtt.host: mqtt.host (8.8.8.8:1883) resolves to 8.8.8.8, a public address",
        "line 8: influxdb.url: influxdb.url ([2001:4860:4860::8888]:8086) resolves to 2001:4860:4860::8888",
        "line 14: modbus.devices[0].host: modbus.devices[0].host (1.1.1.1:502) resolves to 1.1.1.1",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }

    // `run` (its config load has no egress check) refuses at connect time, before any packet:
    // inside a loopback-only namespace, a packet that tried would fail as "unreachable".
    let flags = namespace_flags();
    let mut cmd = match flags {
        Some(f) => {
            let mut c = Command::new("unshare");
            c.arg(f).arg(millwright_bin());
            c
        }
        None => Command::new(millwright_bin()),
    };
    let t0 = Instant::now();
    let out = cmd
        .args(["run", "--config"])
        .arg(&cfg)
        .env("MILLWRIGHT_LOG", "debug")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "run started with public endpoints:\n{log}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "run took long to refuse"
    );
    assert!(log.contains("egress refused"), "{log}");
    assert!(log.contains("8.8.8.8"), "{log}");
    for never in [
        "mqtt connect failed",
        "mqtt connected",
        "unreachable",
        "mqtt 5 connected",
    ] {
        assert!(
            !log.to_lowercase().contains(never),
            "`{never}`: the node tried to connect:\n{log}"
        );
    }

    // Explicitly allowed: check-config accepts the same endpoints.
    std::fs::write(&cfg, text("allow_public_endpoints = true")).unwrap();
    let out = Command::new(millwright_bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("egress: public endpoints allowed"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One socket of the node: (kind, local, remote, state).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Sock {
    kind: String,
    local: SocketAddr,
    remote: SocketAddr,
    state: String,
}

fn parse_addr(hex: &str, v6: bool) -> SocketAddr {
    let (a, p) = hex.split_once(':').unwrap();
    let port = u16::from_str_radix(p, 16).unwrap();
    let bytes: Vec<u8> = (0..a.len() / 2)
        .map(|i| u8::from_str_radix(&a[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let ip = if v6 {
        // Four 32-bit words, each in host (little-endian) order.
        let mut b = [0u8; 16];
        for w in 0..4 {
            for i in 0..4 {
                b[w * 4 + i] = bytes[w * 4 + 3 - i];
            }
        }
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[3], bytes[2], bytes[1], bytes[0]))
    };
    SocketAddr::new(ip, port)
}

/// Every inet socket of `pid` and every socket inode not found in an inet table (with the
/// table it was found in, if any). `inet` collects the inodes seen in an inet table over the
/// samples: a TCP socket that was reset or closed leaves its table while its fd may stay open
/// a while (no peer any more: nothing to report). A socket between `socket()` and its
/// `connect`/`bind` is in no table yet, and one closed between reading the fds and the tables
/// is in none any more: an unknown inode is sampled again (up to 10 times, 20 ms apart) before
/// it is reported.
fn sockets_of(pid: u32, inet: &mut HashSet<String>) -> (Vec<Sock>, Vec<String>) {
    let mut sample = sockets_of_once(pid, inet);
    for _ in 0..10 {
        if !sample
            .1
            .iter()
            .any(|o| o.starts_with("unknown socket inode"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        sample = sockets_of_once(pid, inet);
    }
    sample
}

/// One sample of [`sockets_of`].
fn sockets_of_once(pid: u32, inet: &mut HashSet<String>) -> (Vec<Sock>, Vec<String>) {
    let mut inodes = HashSet::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (Vec::new(), Vec::new());
    };
    for fd in fds.flatten() {
        if let Ok(link) = std::fs::read_link(fd.path()) {
            let l = link.display().to_string();
            if let Some(i) = l.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut socks = Vec::new();
    let mut seen = HashSet::new();
    for (table, v6) in [
        ("tcp", false),
        ("tcp6", true),
        ("udp", false),
        ("udp6", true),
        ("raw", false),
        ("raw6", true),
    ] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || !inodes.contains(f[9]) {
                continue;
            }
            seen.insert(f[9].to_string());
            inet.insert(f[9].to_string());
            socks.push(Sock {
                kind: table.to_string(),
                local: parse_addr(f[1], v6),
                remote: parse_addr(f[2], v6),
                state: f[3].to_string(),
            });
        }
    }
    let mut other = Vec::new();
    for (table, col) in [("unix", 6), ("netlink", 9), ("packet", 8)] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let Some(i) = f.get(col).filter(|i| inodes.contains(**i)) {
                seen.insert(i.to_string());
                other.push(table.to_string());
            }
        }
    }
    for i in inodes.difference(&seen).filter(|i| !inet.contains(*i)) {
        other.push(format!("unknown socket inode {i}"));
    }
    (socks, other)
}

fn pump_fields() -> String {
    let mut s = String::new();
    for d in register_map(MachineKind::Pump) {
        let function = match d.function {
            millwright_sim::Function::Input => "input",
            millwright_sim::Function::Holding => "holding",
        };
        let ty = match d.data_type {
            millwright_sim::RegisterValueType::U16 | millwright_sim::RegisterValueType::Bits16 => {
                "u16"
            }
            millwright_sim::RegisterValueType::I16 => "i16",
            millwright_sim::RegisterValueType::U32 => "u32",
            millwright_sim::RegisterValueType::I32 => "i32",
            millwright_sim::RegisterValueType::F32 => "f32",
        };
        let order = match d.word_order {
            millwright_sim::WordOrder::Abcd => "abcd",
            millwright_sim::WordOrder::Cdab => "cdab",
        };
        s += &format!(
            "[[modbus.devices.fields]]\nsignal = \"{}\"\nfunction = \"{function}\"\naddress = {}\n\
             type = \"{ty}\"\norder = \"{order}\"\nscale = {:?}\nunit = \"{}\"\n",
            d.signal, d.address, d.scale, d.unit
        );
    }
    s
}

/// Run by [`the_whole_job_opens_only_the_configured_sockets`] inside the namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside a network namespace, started by the_whole_job_opens_only_the_configured_sockets"]
async fn inner_whole_job_in_a_loopback_namespace() {
    assert_eq!(
        std::env::var(INNER).as_deref(),
        Ok("1"),
        "run through the_whole_job_opens_only_the_configured_sockets"
    );
    // Only loopback here: nothing can leave even if the node tried.
    let routes = std::fs::read_to_string("/proc/net/route").unwrap();
    assert_eq!(
        routes.lines().count(),
        1,
        "a route besides loopback: {routes}"
    );
    let devs = std::fs::read_to_string("/proc/net/dev").unwrap();
    let ifaces: Vec<&str> = devs
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    assert_eq!(ifaces, ["lo"], "interfaces in the namespace");

    let mosq = Mosquitto::start();
    let vm = Victoria::start();
    let asset = unique("EG-");
    let sim = MachineServer::start(
        "127.0.0.1:0".parse().unwrap(),
        MachineConfig::new(MachineKind::Pump, &asset, 1),
    )
    .await
    .unwrap();
    let vm_port: u16 = vm.url.rsplit(':').next().unwrap().parse().unwrap();
    let mport = free_port();
    let dir = std::env::temp_dir().join(unique("mw-egress-"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("millwright.toml");
    let mqtt_asset = format!("{asset}-M");
    std::fs::write(
        &cfg,
        format!(
            r#"[site]
name = "egress"
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "egress-node"
[[mqtt.subscriptions]]
topic = "egress/{{asset}}/{{signal}}"
format = "json"
unit = "bar"
[influxdb]
url = "{vm}"
org = "o"
bucket = "b"
flush_interval_ms = 200
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 1
metrics_interval_s = 1
[[assets]]
name = "{asset}"
profile = "{profile}"
[model]
files = ["{model}"]
threads = 1
[[modbus.devices]]
name = "{asset}"
asset = "{asset}"
host = "127.0.0.1"
port = {sim_port}
poll_interval_ms = 200
timeout_ms = 150
{fields}"#,
            mqtt_port = mosq.port(),
            vm = vm.url,
            profile = workspace_root()
                .join("pipelines/centrifugal-pump.toml")
                .display(),
            model = model_path().display(),
            sim_port = sim.local_addr().port(),
            fields = pump_fields(),
        ),
    )
    .unwrap();
    let log = dir.join("node.log");
    let mut node = run_checked_node(&cfg, &log);
    let pid = node.0.id();

    // Sample the node's sockets all along its run.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let sampler = std::thread::spawn(move || {
        let mut all: BTreeSet<Sock> = BTreeSet::new();
        let mut other: BTreeMap<String, usize> = BTreeMap::new();
        let mut inet = HashSet::new();
        loop {
            let (s, o) = sockets_of(pid, &mut inet);
            all.extend(s);
            for k in o {
                *other.entry(k).or_default() += 1;
            }
            if stop_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return (all, other);
            }
        }
    });

    let base = format!("http://127.0.0.1:{mport}");
    let b = base.clone();
    tokio::task::spawn_blocking(move || wait_subscribed(&b, Duration::from_secs(30)))
        .await
        .unwrap();
    let mut o = MqttOptions::new("egress-pub", "127.0.0.1", mosq.port());
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 100);
    let n = 20;
    let pump = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = el.poll().await {
                acked += 1;
            }
        }
    });
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for i in 0..n {
        c.publish(
            format!("egress/{mqtt_asset}/p_bar"),
            QoS::AtLeastOnce,
            false,
            format!(r#"{{"value":{i},"ts_ms":{}}}"#, now_ms - 10_000 + i as i64),
        )
        .await
        .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), pump)
        .await
        .unwrap()
        .unwrap();
    // MQTT readings and Modbus readings arrive in the database; the node's own metrics too.
    let url = vm.url.clone();
    let (ma, a) = (mqtt_asset.clone(), asset.clone());
    let (mqtt_pts, modbus_pts) = tokio::task::spawn_blocking(move || {
        let m = vm_wait_for(
            &url,
            &format!("{{asset=\"{ma}\"}}"),
            n,
            Duration::from_secs(30),
        );
        let d = vm_wait_for(
            &url,
            &format!("{{asset=\"{a}\"}}"),
            20,
            Duration::from_secs(30),
        );
        let count = |s: &[VmSeries]| s.iter().map(|x| x.values.len()).sum::<usize>();
        (count(&m), count(&d))
    })
    .await
    .unwrap();
    assert_eq!(mqtt_pts, n, "MQTT readings in VictoriaMetrics");
    assert!(
        modbus_pts >= 20,
        "Modbus readings in VictoriaMetrics: {modbus_pts}"
    );
    // Let the metrics writer, the status lines and the model thread run a while longer: the
    // model is loaded from its local file.
    let l = log.clone();
    tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        while !std::fs::read_to_string(&l)
            .unwrap_or_default()
            .contains("language model for explanations")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the model did not load"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = ureq::get(&format!("{base}/health")).call();
    stop_tx.send(()).unwrap();
    let (socks, other) = sampler.join().unwrap();
    assert!(node.0.try_wait().unwrap().is_none(), "the node exited");
    node.0.kill().unwrap();
    let _ = node.0.wait();

    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let allowed_peers: Vec<(SocketAddr, &str)> = vec![
        (SocketAddr::new(lo, mosq.port()), "mqtt.host"),
        (SocketAddr::new(lo, vm_port), "influxdb.url"),
        (sim.local_addr(), "modbus.devices[0].host"),
    ];
    let listener = SocketAddr::new(lo, mport);
    eprintln!("sockets the node opened:");
    let mut bad = Vec::new();
    let mut peers_used = BTreeSet::new();
    for s in &socks {
        let why = if s.kind.starts_with("tcp") && s.state == "0A" {
            (s.local == listener).then_some("node.metrics_listen")
        } else if s.kind.starts_with("tcp") {
            if s.local == listener {
                Some("a /metrics client")
            } else {
                allowed_peers
                    .iter()
                    .find(|(p, _)| *p == s.remote)
                    .map(|(_, f)| *f)
            }
        } else {
            None
        };
        eprintln!(
            "  {} {} -> {} state {}: {}",
            s.kind,
            s.local,
            s.remote,
            s.state,
            why.unwrap_or("NOT IN THE CONFIG")
        );
        match why {
            Some(f) if !f.starts_with("node.") && !f.starts_with("a /") => {
                peers_used.insert(f);
            }
            Some(_) => {}
            None => bad.push(s.clone()),
        }
    }
    eprintln!("other sockets (sampled): {other:?}");
    assert!(
        bad.is_empty(),
        "sockets to peers the config does not name: {bad:?}"
    );
    let not_local: Vec<&String> = other.keys().filter(|k| k.as_str() != "unix").collect();
    assert!(
        not_local.is_empty(),
        "non-inet, non-unix sockets: {not_local:?}"
    );
    assert_eq!(
        peers_used.into_iter().collect::<Vec<_>>(),
        ["influxdb.url", "modbus.devices[0].host", "mqtt.host"],
        "the node used each configured endpoint"
    );
    let logtext = std::fs::read_to_string(&log).unwrap();
    assert!(logtext.contains("egress policy"), "{logtext}");
    let model_line = logtext
        .lines()
        .find(|l| l.contains("language model for explanations"))
        .unwrap();
    assert!(
        !model_line.contains("fallback"),
        "the model fell back: {model_line}"
    );
    drop(sim);
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
