//! Honest health over MQTT, against the real Mosquitto: a subscription that goes silent while
//! connected is reported and recovered without operator action; a subscription the broker
//! refuses (SUBACK failure) is reported, counted and retried; the retained status topics exist
//! without any asset configured.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bin(name: &str) -> PathBuf {
    for d in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(d).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed; run `make deps`")
}

/// `/health` as JSON, whatever its HTTP status (200 or 503), with the status code.
fn health(base: &str) -> Option<(u16, Value)> {
    let r = match ureq::get(&format!("{base}/health")).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let code = r.status();
    Some((code, serde_json::from_str(&r.into_string().ok()?).ok()?))
}

fn sub_health<'a>(h: &'a Value, topic: &str) -> &'a Value {
    h["mqtt"]["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["topic"] == topic)
        .unwrap_or_else(|| panic!("no subscription {topic} in {h}"))
}

fn publish(port: u16, topic: &str, payload: &str) {
    let ok = Command::new(bin("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", payload])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mosquitto_pub to {topic} failed");
}

fn start_node(dir: &Path, body: &str) -> (KillOnDrop, String) {
    let mport = free_port();
    let cfg = dir.join("millwright.toml");
    std::fs::write(
        &cfg,
        format!("{body}\n[node]\nmetrics_listen = \"127.0.0.1:{mport}\"\nstatus_interval_s = 1\nmetrics_interval_s = 0\n"),
    )
    .unwrap();
    let node = run_checked_node(&cfg, &dir.join("node.log"));
    let base = format!("http://127.0.0.1:{mport}");
    wait_for("/health", Duration::from_secs(20), || {
        health(&base).is_some()
    });
    (node, base)
}

#[test]
fn a_silent_subscription_is_reported_and_recovered_without_operator_action() {
    let broker = mqtt_broker();
    let run = unique("silence");
    let dir = std::env::temp_dir().join(unique("mw-silence-"));
    std::fs::create_dir_all(&dir).unwrap();
    let pattern = format!("{run}/{{asset}}/{{signal}}");
    let (_node, base) = start_node(
        &dir,
        &format!(
            r#"[site]
name = "e2e"
[mqtt]
host = "{h}"
port = {p}
client_id = "{cid}"
keep_alive_s = 5
[[mqtt.subscriptions]]
topic = "{pattern}"
format = "json"
expected_interval_s = 0.3
silence_factor = 5
"#,
            h = broker.host,
            p = broker.port,
            cid = unique("node-"),
        ),
    );
    // A publisher every 100 ms until told to stop.
    let on = Arc::new(AtomicBool::new(true));
    let pubber = |on: Arc<AtomicBool>, port: u16, topic: String| {
        std::thread::spawn(move || {
            let mut i = 0;
            while on.load(Ordering::Relaxed) {
                publish(port, &topic, &format!(r#"{{"value":{i}}}"#));
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let topic = format!("{run}/P-1/flow");
    wait_for("the node to connect", Duration::from_secs(20), || {
        health(&base).is_some_and(|(_, h)| h["mqtt"]["connected"] == true)
    });
    let t = pubber(on.clone(), broker.port, topic.clone());
    wait_for("messages counted", Duration::from_secs(20), || {
        health(&base).is_some_and(|(_, h)| {
            sub_health(&h, &pattern)["last_message_age_s"]
                .as_f64()
                .is_some_and(|a| a < 1.0)
        })
    });
    let (code, h) = health(&base).unwrap();
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(sub_health(&h, &pattern)["silent"], false);
    let connections0 = node_metric(&base, "millwright_mqtt_connections_total", "").unwrap();

    // The publisher stops: after 5 × 0.3 s the subscription is silent, reported and the node
    // reconnects and re-subscribes on its own.
    on.store(false, Ordering::Relaxed);
    t.join().unwrap();
    // (While the node reconnects, for a moment, it is `failing`: not connected.)
    let mut got = None;
    wait_for(
        "the silence reported, connected again",
        Duration::from_secs(15),
        || {
            got = health(&base).filter(|(_, h)| {
                sub_health(h, &pattern)["silent"] == true && h["mqtt"]["connected"] == true
            });
            got.is_some()
        },
    );
    let (code, h) = got.unwrap();
    assert_eq!(code, 200, "silence degrades, it does not fail: {h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("silent")),
        "{h}"
    );
    assert!(
        sub_health(&h, &pattern)["last_message_age_s"]
            .as_f64()
            .unwrap()
            >= 1.5
    );
    wait_for(
        "a reconnect for the silence",
        Duration::from_secs(15),
        || node_metric(&base, "millwright_mqtt_connections_total", "").unwrap() > connections0,
    );
    assert!(
        node_metric(&base, "millwright_mqtt_subscription_silences_total", &run).unwrap() >= 1.0
    );
    assert_eq!(
        node_metric(&base, "millwright_mqtt_subscription_silent", &run),
        Some(1.0)
    );

    // The publisher resumes: data flows again, the silence clears, nobody touched the node.
    let readings0 = node_metric(&base, "millwright_readings_total", "").unwrap();
    on.store(true, Ordering::Relaxed);
    let t = pubber(on.clone(), broker.port, topic);
    wait_for("readings again", Duration::from_secs(20), || {
        node_metric(&base, "millwright_readings_total", "").unwrap() >= readings0 + 5.0
    });
    wait_for("the silence cleared", Duration::from_secs(10), || {
        health(&base).is_some_and(|(c, h)| {
            c == 200 && h["status"] == "ok" && sub_health(&h, &pattern)["silent"] == false
        })
    });
    on.store(false, Ordering::Relaxed);
    t.join().unwrap();
}

/// A Mosquitto of the test whose dynamic-security plugin lets anonymous clients subscribe to
/// `open/#` only (an `acl_file` never refuses a SUBSCRIBE in Mosquitto: it only filters
/// deliveries, so the plugin is the broker's way to refuse one).
struct RefusingBroker {
    port: u16,
    dir: PathBuf,
    child: std::process::Child,
}

impl RefusingBroker {
    fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("mw-refuse-"));
        std::fs::create_dir_all(&dir).unwrap();
        let plugin = [
            "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
            "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
            "/usr/lib/mosquitto_dynamic_security.so",
            "/usr/local/lib/mosquitto_dynamic_security.so",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mosquitto's dynamic-security plugin is not installed (package mosquitto)");
        std::fs::write(
            dir.join("dynsec.json"),
            r#"{"defaultACLAccess":{"publishClientSend":true,"publishClientReceive":true,"subscribe":false,"unsubscribe":true},
 "anonymousGroup":"anon","clients":[],
 "groups":[{"groupname":"anon","roles":[{"rolename":"reader"}],"clients":[]}],
 "roles":[{"rolename":"reader","acls":[{"acltype":"subscribePattern","topic":"open/#","allow":true}]}]}"#,
        )
        .unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nplugin {plugin}\nplugin_opt_config_file {}\n",
                dir.join("dynsec.json").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("mosquitto.log")).unwrap())
            .spawn()
            .unwrap();
        wait_for("mosquitto", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self { port, dir, child }
    }
}

impl Drop for RefusingBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn refused_subscription_case(protocol: &str, reason: &str) {
    let broker = RefusingBroker::start();
    let dir = std::env::temp_dir().join(unique("mw-suback-"));
    std::fs::create_dir_all(&dir).unwrap();
    let (_node, base) = start_node(
        &dir,
        &format!(
            r#"[site]
name = "e2e"
[mqtt]
host = "127.0.0.1"
port = {p}
protocol = "{protocol}"
[[mqtt.subscriptions]]
topic = "open/{{asset}}/{{signal}}"
format = "json"
[[mqtt.subscriptions]]
topic = "secret/{{asset}}/{{signal}}"
format = "json"
"#,
            p = broker.port
        ),
    );
    // Refused, counted and retried with back-off (1 s, 2 s, ...): at least two refusals soon.
    wait_for("two SUBACK refusals", Duration::from_secs(20), || {
        node_metric(&base, "millwright_mqtt_suback_failures_total", "secret/").unwrap_or(0.0) >= 2.0
    });
    assert_eq!(
        node_metric(&base, "millwright_mqtt_suback_failures_total", "open/"),
        Some(0.0)
    );
    let (code, h) = health(&base).unwrap();
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    let s = sub_health(&h, "secret/{asset}/{signal}");
    assert!(
        s["refused"].as_str().unwrap().contains(reason),
        "refusal names the reason code: {s}"
    );
    assert!(sub_health(&h, "open/{asset}/{signal}")["refused"].is_null());
    assert_eq!(sub_health(&h, "open/{asset}/{signal}")["subscribed"], true);
    assert_eq!(s["subscribed"], false, "refused: not subscribed");
    assert_eq!(
        node_metric(&base, "millwright_mqtt_subscribed", "secret/"),
        Some(0.0)
    );
    assert_eq!(
        node_metric(&base, "millwright_mqtt_subscribed", "open/"),
        Some(1.0)
    );
    // The accepted subscription still brings data.
    publish(broker.port, "open/P-1/flow", r#"{"value":1.5}"#);
    wait_for(
        "a reading on the accepted subscription",
        Duration::from_secs(10),
        || node_metric(&base, "millwright_readings_total", "") == Some(1.0),
    );
}

#[test]
fn a_refused_subscription_is_an_error_reported_counted_and_retried_mqtt_311() {
    refused_subscription_case("3.1.1", "0x80");
}

#[test]
fn a_refused_subscription_is_an_error_reported_counted_and_retried_mqtt_5() {
    refused_subscription_case("5", "NotAuthorized");
}

#[test]
fn the_status_topics_exist_without_assets() {
    let broker = mqtt_broker();
    let site = unique("st");
    let dir = std::env::temp_dir().join(unique("mw-status-"));
    std::fs::create_dir_all(&dir).unwrap();
    let (_node, base) = start_node(
        &dir,
        &format!(
            r#"[site]
name = "{site}"
[mqtt]
host = "{h}"
port = {p}
client_id = "{cid}"
[[mqtt.subscriptions]]
topic = "{site}/{{asset}}/{{signal}}"
format = "json"
"#,
            h = broker.host,
            p = broker.port,
            cid = unique("node-"),
        ),
    );
    wait_for("connected", Duration::from_secs(20), || {
        health(&base).is_some_and(|(_, h)| h["mqtt"]["connected"] == true)
    });
    // Retained: a subscriber that comes later gets both at once.
    let read = |topic: &str| {
        let out = Command::new(bin("mosquitto_sub"))
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
            .args(["-t", topic, "-C", "1", "-W", "10"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut status = String::new();
    wait_for("status online", Duration::from_secs(15), || {
        status = read(&format!("millwright/{site}/status"));
        status == "online"
    });
    // The node checks its state once a second and republishes the document when it changes,
    // so the retained copy may still be the one from before the source connected.
    let mut doc = Value::Null;
    wait_for("status/health says ok", Duration::from_secs(10), || {
        doc = serde_json::from_str(&read(&format!("millwright/{site}/status/health")))
            .expect("status/health is JSON");
        doc["status"] == "ok"
    });
    assert_eq!(doc["status"], "ok", "{doc}");
    assert_eq!(doc["mqtt"]["connected"], true, "{doc}");
    assert!(doc["tasks"]["panics"] == 0, "{doc}");
}
