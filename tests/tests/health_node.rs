//! Honest health of the node itself: a panicked MQTT source is noticed, reported and restarted;
//! a panicked pipeline makes the node exit non-zero (so the service manager restarts it); the
//! `/metrics` listener survives 200 idle connections and refuses a non-loopback address unless
//! told. The panics are injected with `MILLWRIGHT_FAULT_INJECT` (feature `fault-inject`, on in
//! the test build through `bench`, never in a production build).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn health(base: &str) -> Option<(u16, Value)> {
    let r = match ureq::get(&format!("{base}/health"))
        .timeout(Duration::from_secs(5))
        .call()
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let code = r.status();
    Some((code, serde_json::from_str(&r.into_string().ok()?).ok()?))
}

fn publish(port: u16, topic: &str, payload: &str) {
    let bin = ["/usr/bin/mosquitto_pub", "/usr/local/bin/mosquitto_pub"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mosquitto_pub is not installed; run `make deps`");
    let ok = Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", payload])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mosquitto_pub to {topic} failed");
}

/// Writes a config subscribing to `<run>/{asset}/{signal}` and starts the node with `fault`.
fn node(run: &str, fault: &str) -> (KillOnDrop, String, std::path::PathBuf) {
    let broker = mqtt_broker();
    let dir = std::env::temp_dir().join(unique("mw-sup-"));
    std::fs::create_dir_all(&dir).unwrap();
    let mport = free_port();
    let cfg = dir.join("millwright.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[site]
name = "e2e"
[mqtt]
host = "{h}"
port = {p}
client_id = "{cid}"
reconnect_min_ms = 50
[[mqtt.subscriptions]]
topic = "{run}/{{asset}}/{{signal}}"
format = "json"
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 0
metrics_interval_s = 0
"#,
            h = broker.host,
            p = broker.port,
            cid = unique("node-"),
        ),
    )
    .unwrap();
    let log = dir.join("node.log");
    let child = Command::new(millwright_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env("MILLWRIGHT_FAULT_INJECT", fault)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{mport}");
    // Connected and subscribed: a message published from now on reaches the node.
    wait_subscribed(&base, Duration::from_secs(30));
    (KillOnDrop(child), base, log)
}

#[test]
fn a_panicked_mqtt_source_is_reported_and_restarted() {
    let broker = mqtt_broker();
    let run = unique("panic-src");
    let boom = format!("{run}/BOOM/x");
    let (_node, base, log) = node(&run, &format!("mqtt_source:{boom}"));
    publish(broker.port, &boom, r#"{"value":1}"#);
    wait_for("the restart", Duration::from_secs(20), || {
        node_metric(&base, "millwright_task_restarts_total", "") == Some(1.0)
    });
    assert_eq!(
        node_metric(&base, "millwright_task_panics_total", ""),
        Some(1.0)
    );
    // Right after the restart it may still be connecting (503); the report is there anyway.
    let (_, h) = health(&base).unwrap();
    assert!(
        h["tasks"]["last_panic"]
            .as_str()
            .unwrap()
            .starts_with("mqtt source: fault injected"),
        "{h}"
    );
    assert!(h["tasks"]["fatal"].is_null(), "{h}");
    // The restarted source connects and brings data again.
    wait_for("connected again", Duration::from_secs(20), || {
        health(&base).is_some_and(|(_, h)| h["mqtt"]["connected"] == true)
    });
    let (code, h) = health(&base).unwrap();
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "degraded", "a recent panic degrades: {h}");
    publish(broker.port, &format!("{run}/P-1/flow"), r#"{"value":2}"#);
    wait_for(
        "a reading after the restart",
        Duration::from_secs(20),
        || node_metric(&base, "millwright_readings_total", "") == Some(1.0),
    );
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("a task of the node panicked"), "{text}");
    assert!(text.contains("mqtt source restarted"), "{text}");
}

#[test]
fn a_panicked_pipeline_makes_the_node_exit_non_zero() {
    let broker = mqtt_broker();
    let run = unique("panic-pipe");
    let (mut node, _base, log) = node(&run, "pipeline:BOOM");
    publish(broker.port, &format!("{run}/BOOM/x"), r#"{"value":1}"#);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = node.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the node kept running after its pipeline panicked"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "exit status {status}");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("the pipeline task panicked"), "{text}");
}

#[test]
fn two_hundred_idle_connections_do_not_take_the_node_down() {
    let run = unique("idle");
    let (mut node, base, _log) = node(&run, "");
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let idle: Vec<std::net::TcpStream> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(idle.len() >= 150, "only {} connections opened", idle.len());
    // While they are held open (they never send a request), /health answers: at once when a
    // slot is free, else once the idle ones time out (2 s).
    let t0 = Instant::now();
    wait_for(
        "/health while idle connections are open",
        Duration::from_secs(20),
        || health(&base).is_some_and(|(c, h)| c == 200 && h["status"] == "ok"),
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert!(node.0.try_wait().unwrap().is_none(), "the node died");
    drop(idle);
    assert!(health(&base).is_some());
}

#[test]
fn check_config_refuses_a_public_metrics_address_unless_told() {
    let dir = std::env::temp_dir().join(unique("mw-pub-"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("m.toml");
    let body = "[site]\nname = \"s\"\n[mqtt]\nhost = \"127.0.0.1\"\n[[mqtt.subscriptions]]\ntopic = \"a/{asset}/{signal}\"\n[node]\nmetrics_listen = \"0.0.0.0:9464\"\n";
    std::fs::write(&cfg, body).unwrap();
    let out = Command::new(millwright_bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node.metrics_listen") && err.contains("not a loopback address"),
        "{err}"
    );
    std::fs::write(&cfg, format!("{body}metrics_public = true\n")).unwrap();
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
}

/// utime + stime of `pid` in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn accept_errors_back_off_instead_of_spinning() {
    // The node gets few file descriptors; 200 connections exhaust them, so `accept` fails
    // (EMFILE) with connections waiting: a loop without back-off would spin a core.
    let broker = mqtt_broker();
    let run = unique("emfile");
    let dir = std::env::temp_dir().join(unique("mw-emfile-"));
    std::fs::create_dir_all(&dir).unwrap();
    let mport = free_port();
    let cfg = dir.join("millwright.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nname = \"e2e\"\n[mqtt]\nhost = \"{}\"\nport = {}\nclient_id = \"{}\"\n[[mqtt.subscriptions]]\ntopic = \"{run}/{{asset}}/{{signal}}\"\n[node]\nmetrics_listen = \"127.0.0.1:{mport}\"\nstatus_interval_s = 0\nmetrics_interval_s = 0\n",
            broker.host,
            broker.port,
            unique("node-")
        ),
    )
    .unwrap();
    let log = dir.join("node.log");
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {} run --config {}",
            millwright_bin().display(),
            cfg.display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut node = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{mport}");
    wait_for("the node connected", Duration::from_secs(20), || {
        health(&base).is_some_and(|(_, h)| h["mqtt"]["connected"] == true)
    });
    let pid = node.0.id();
    let idle: Vec<std::net::TcpStream> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", mport)).ok())
        .collect();
    wait_for("an accept error logged", Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("accept failed; backing off")
    });
    // While descriptors are exhausted: well under a tenth of a core (a spinning loop: ~1 core).
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let ticks = cpu_ticks(pid) - c0;
    let secs = ticks as f64 / 100.0; // USER_HZ
    assert!(
        secs < 0.5 * t0.elapsed().as_secs_f64(),
        "the node used {secs} s CPU in {:?} while accept failed",
        t0.elapsed()
    );
    assert!(node.0.try_wait().unwrap().is_none(), "the node died");
    drop(idle);
    wait_for("/health after the storm", Duration::from_secs(15), || {
        health(&base).is_some_and(|(c, _)| c == 200)
    });
}
