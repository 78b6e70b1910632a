//! Broker TLS and authentication end to end: the test makes a CA, a server certificate and a
//! client certificate (openssl CLI), starts its own Mosquitto with a mutual-TLS listener
//! (`require_certificate true`), a TLS listener with a password file (`mosquitto_passwd`) and a
//! plain loopback listener for the test's publisher, and runs the node against each TLS
//! listener: readings arrive in VictoriaMetrics. A wrong password, a wrong CA and a missing
//! client certificate each give a clear error naming the cause in the node's log and a counted
//! connection error in `/metrics` — the node keeps running, it neither hangs nor crashes.
//! The password never appears in the log, `/metrics` or check-config output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret-Broker-pw-7781";

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} is not installed (needed for the broker TLS test; it comes with mosquitto/openssl)"
    )
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>-ca.pem`, `<name>-ca.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    sh(Command::new(tool("openssl"))
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN=millwright test {name} CA"))
        .args([
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
}

/// A leaf certificate `<name>.pem` / `<name>.key` signed by the CA `ca`.
fn make_leaf(dir: &Path, ca: &str, name: &str, ext: &str) {
    sh(Command::new(tool("openssl"))
        .current_dir(dir)
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]));
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    sh(Command::new(tool("openssl"))
        .current_dir(dir)
        .args(["x509", "-req", "-in", &format!("{name}.csr"), "-days", "2"])
        .args([
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
        ])
        .args(["-CAcreateserial", "-out", &format!("{name}.pem")])
        .args(["-extfile", &format!("{name}.ext")]));
}

struct Broker {
    child: Child,
    mtls: u16,
    password: u16,
    plain: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_port(port: u16) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "mosquitto port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_broker(dir: &Path) -> Broker {
    sh(Command::new(tool("mosquitto_passwd"))
        .args(["-b", "-c"])
        .arg(dir.join("passwd"))
        .args(["edge", PASSWORD]));
    // Mosquitto started as root reads its files as the `mosquitto` user: make the test's
    // throwaway keys and password file readable.
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (mtls, password, plain) = (free_port(), free_port(), free_port());
    let d = dir.display();
    let conf = format!(
        "per_listener_settings true\n\
         persistence false\n\
         log_dest stderr\n\
         listener {mtls} 127.0.0.1\n\
         cafile {d}/site-ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
         require_certificate true\nallow_anonymous true\n\
         listener {password} 127.0.0.1\n\
         cafile {d}/site-ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
         password_file {d}/passwd\nallow_anonymous false\n\
         listener {plain} 127.0.0.1\nallow_anonymous true\n"
    );
    std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
    let child = Command::new(tool("mosquitto"))
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("mosquitto.log")).unwrap())
        .spawn()
        .expect("starting mosquitto");
    let b = Broker {
        child,
        mtls,
        password,
        plain,
    };
    for p in [mtls, password, plain] {
        wait_port(p);
    }
    b
}

/// The node's config: MQTT on `port` with the given `[mqtt]` extras and `[mqtt.tls]`, InfluxDB
/// to `vm`, `/metrics` on `mport`.
fn node_config(
    dir: &Path,
    name: &str,
    port: u16,
    mqtt_extra: &str,
    tls: &str,
    mport: u16,
) -> PathBuf {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            r#"
[site]
name = "tls-e2e"
[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "{cid}"
reconnect_min_ms = 200
reconnect_max_ms = 1000
{mqtt_extra}
[[mqtt.subscriptions]]
topic = "{name}/{{asset}}/{{signal}}"
format = "json"
unit = "bar"
[mqtt.tls]
{tls}
[influxdb]
url = "{vm}"
org = "e2e"
bucket = "e2e"
flush_interval_ms = 200
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 0
metrics_interval_s = 0
"#,
            cid = unique("tls-node-"),
            vm = victoria(),
        ),
    )
    .unwrap();
    cfg
}

fn start_node(cfg: &Path, log: &Path) -> KillOnDrop {
    let check = Command::new(millwright_bin())
        .arg("check-config")
        .arg(cfg)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.status.success(), "{out}");
    assert!(
        !out.contains(PASSWORD),
        "check-config printed the password: {out}"
    );
    let child = Command::new(millwright_bin())
        .args(["run", "--config"])
        .arg(cfg)
        .env("MILLWRIGHT_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn publish(port: u16, topic_root: &str, asset: &str, n: usize) {
    let mut o = MqttOptions::new(unique("tls-pub-"), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 100);
    let pump = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("test publisher: {e}"),
            }
        }
    });
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    for i in 0..n {
        c.publish(
            format!("{topic_root}/{asset}/p_bar"),
            QoS::AtLeastOnce,
            false,
            format!(r#"{{"value":{}.5,"ts_ms":{}}}"#, i, t0 + i as i64),
        )
        .await
        .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), pump)
        .await
        .expect("broker acks")
        .unwrap();
}

fn metric(mport: u16, name: &str) -> Option<f64> {
    node_metric(&format!("http://127.0.0.1:{mport}"), name, "")
}

fn metrics_text(mport: u16) -> String {
    ureq::get(&format!("http://127.0.0.1:{mport}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

/// Runs the node against a TLS listener and checks readings reach VictoriaMetrics.
async fn readings_arrive(
    dir: &Path,
    name: &str,
    port: u16,
    mqtt_extra: &str,
    tls: &str,
    plain: u16,
) {
    const N: usize = 20;
    let mport = free_port();
    let cfg = node_config(dir, name, port, mqtt_extra, tls, mport);
    let log = dir.join(format!("{name}.log"));
    let mut node = start_node(&cfg, &log);
    let connected = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if metric(mport, "millwright_mqtt_connected") == Some(1.0) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    })
    .await
    .unwrap();
    assert!(
        connected,
        "{name}: the node did not connect over TLS; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // SUBACK
    let asset = unique(&format!("{name}-"));
    publish(plain, name, &asset, N).await;
    let vm = victoria();
    let a = asset.clone();
    let series = tokio::task::spawn_blocking(move || {
        vm_wait_for(
            &vm,
            &format!("{{asset=\"{a}\"}}"),
            N,
            Duration::from_secs(30),
        )
    })
    .await
    .unwrap();
    let mut values: Vec<f64> = series.iter().flat_map(|s| s.values.clone()).collect();
    values.sort_by(f64::total_cmp);
    let want: Vec<f64> = (0..N).map(|i| i as f64 + 0.5).collect();
    assert_eq!(values, want, "{name}: readings in VictoriaMetrics");
    let text = metrics_text(mport);
    assert!(!text.contains(PASSWORD), "/metrics shows the password");
    node.0.kill().unwrap();
    let _ = node.0.wait();
    let logtext = std::fs::read_to_string(&log).unwrap();
    assert!(logtext.contains("DEBUG"), "the node ran at debug level");
    assert!(
        !logtext.contains(PASSWORD),
        "{name}: the log shows the password"
    );
}

/// Runs the node with a bad setting: it keeps running, counts connection errors and logs an
/// error that names `cause`.
async fn refused(dir: &Path, name: &str, port: u16, mqtt_extra: &str, tls: &str, causes: &[&str]) {
    let mport = free_port();
    let cfg = node_config(dir, name, port, mqtt_extra, tls, mport);
    let log = dir.join(format!("{name}.log"));
    let mut node = start_node(&cfg, &log);
    let l = log.clone();
    let causes_owned: Vec<String> = causes.iter().map(ToString::to_string).collect();
    let name_owned = name.to_string();
    tokio::task::spawn_blocking(move || {
        let name = name_owned;
        wait_for(
            &format!("{name}: connection errors"),
            Duration::from_secs(20),
            || metric(mport, "millwright_mqtt_connection_errors_total").unwrap_or(0.0) >= 2.0,
        );
        wait_for(
            &format!("{name}: the cause in the log"),
            Duration::from_secs(10),
            || {
                let t = std::fs::read_to_string(&l).unwrap_or_default();
                causes_owned.iter().any(|c| t.contains(c.as_str()))
            },
        );
    })
    .await
    .unwrap();
    assert_eq!(metric(mport, "millwright_mqtt_connected"), Some(0.0));
    assert!(
        node.0.try_wait().unwrap().is_none(),
        "{name}: the node exited"
    );
    let text = metrics_text(mport);
    assert!(!text.contains(PASSWORD));
    node.0.kill().unwrap();
    let _ = node.0.wait();
    let logtext = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logtext.contains(PASSWORD),
        "{name}: the log shows the password"
    );
    assert!(!logtext.contains("panicked"), "{name}: {logtext}");
    let line = logtext
        .lines()
        .find(|l| causes.iter().any(|c| l.contains(c)))
        .unwrap();
    eprintln!("{name}: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_tls_client_certificates_and_passwords() {
    let dir = std::env::temp_dir().join(unique("mw-tls-"));
    std::fs::create_dir_all(&dir).unwrap();
    make_ca(&dir, "site");
    make_ca(&dir, "other");
    make_leaf(
        &dir,
        "site",
        "server",
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n\
         extendedKeyUsage=serverAuth\n",
    );
    make_leaf(
        &dir,
        "site",
        "client",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    let broker = start_broker(&dir);
    let d = dir.display();
    let ca = format!("ca_file = \"{d}/site-ca.pem\"");
    let mtls = format!(
        "{ca}\nclient_cert_file = \"{d}/client.pem\"\nclient_key_file = \"{d}/client.key\""
    );
    // The password comes from a file, the way systemd credentials hand it over.
    std::fs::write(dir.join("mqtt-password"), format!("{PASSWORD}\n")).unwrap();
    let login = format!("username = \"edge\"\npassword_file = \"{d}/mqtt-password\"");

    readings_arrive(&dir, "mtls", broker.mtls, "", &mtls, broker.plain).await;
    readings_arrive(&dir, "login", broker.password, &login, &ca, broker.plain).await;

    refused(
        &dir,
        "badpw",
        broker.password,
        "username = \"edge\"\npassword = \"not-the-password\"",
        &ca,
        &["check mqtt.username and mqtt.password"],
    )
    .await;
    refused(
        &dir,
        "wrongca",
        broker.mtls,
        "",
        &format!(
            "ca_file = \"{d}/other-ca.pem\"\nclient_cert_file = \"{d}/client.pem\"\nclient_key_file = \"{d}/client.key\""
        ),
        &["not signed by a CA in mqtt.tls.ca_file"],
    )
    .await;
    refused(
        &dir,
        "nocert",
        broker.mtls,
        "",
        &ca,
        &["check mqtt.tls.client_cert_file"],
    )
    .await;
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}
