//! Secrets from outside the config file: `${VAR}` in `mqtt.password`, `token_file` under
//! `${CREDENTIALS_DIRECTORY}` (the way systemd hands over credentials). The node runs with
//! them against the real broker and VictoriaMetrics, and neither secret appears in
//! `check-config`'s output, the node's log at debug level or `/metrics`. A missing file or
//! variable is a config error naming the field, the file or variable and the line — without
//! the other secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "pw-from-env-Zq81x";
const TOKEN: &str = "token-from-credential-file-Kk27";

fn config(broker: &Broker, vm: &str, mport: u16, topic: &str) -> String {
    format!(
        r#"[site]
name = "secrets-e2e"
[mqtt]
host = "{host}"
port = {port}
client_id = "{cid}"
username = "edge"
password = "${{MW_TEST_MQTT_PASSWORD}}"
[[mqtt.subscriptions]]
topic = "{topic}/{{asset}}/{{signal}}"
format = "json"
[influxdb]
url = "{vm}"
org = "e2e"
bucket = "e2e"
token_file = "${{CREDENTIALS_DIRECTORY}}/influx-token"
flush_interval_ms = 200
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 1
metrics_interval_s = 1
"#,
        host = broker.host,
        port = broker.port,
        cid = unique("secrets-node-"),
    )
}

fn check_config(cfg: &Path, creds: &Path, with_env: bool) -> Output {
    let mut c = Command::new(millwright_bin());
    c.arg("check-config").arg(cfg);
    c.env("CREDENTIALS_DIRECTORY", creds);
    if with_env {
        c.env("MW_TEST_MQTT_PASSWORD", PASSWORD);
    } else {
        c.env_remove("MW_TEST_MQTT_PASSWORD");
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_clean(what: &str, t: &str) {
    assert!(
        !t.contains(PASSWORD),
        "{what} shows the MQTT password:\n{t}"
    );
    assert!(!t.contains(TOKEN), "{what} shows the InfluxDB token:\n{t}");
}

#[test]
fn secrets_from_env_and_credential_files_never_show() {
    let broker = mqtt_broker();
    let vm = victoria();
    let dir = std::env::temp_dir().join(unique("mw-secrets-"));
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("influx-token"), format!("{TOKEN}\n")).unwrap();
    let mport = free_port();
    let topic = unique("secrets");
    let cfg = dir.join("millwright.toml");
    std::fs::write(&cfg, config(&broker, &vm, mport, &topic)).unwrap();

    // check-config: OK, and no secret in its output.
    let ok = check_config(&cfg, &creds, true);
    assert!(ok.status.success(), "{}", text(&ok));
    assert_clean("check-config", &text(&ok));

    // A missing variable: named with its field and line; the token read fine is not shown.
    let bad = check_config(&cfg, &creds, false);
    assert!(!bad.status.success());
    let t = text(&bad);
    assert!(
        t.contains(
            "line 8: mqtt.password: environment variable `MW_TEST_MQTT_PASSWORD` is not set"
        ),
        "{t}"
    );
    assert_clean("check-config (missing variable)", &t);

    // A missing credential file: named with its field, path and line.
    let empty = dir.join("no-credentials");
    let bad = check_config(&cfg, &empty, true);
    assert!(!bad.status.success());
    let t = text(&bad);
    assert!(
        t.contains("line 16: influxdb.token_file: cannot read"),
        "{t}"
    );
    assert!(
        t.contains(&format!("{}/influx-token", empty.display())),
        "{t}"
    );
    assert_clean("check-config (missing file)", &t);

    // The node at debug level with both secrets: connected, writing, and never showing them.
    let log = dir.join("node.log");
    let child = Command::new(millwright_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("MW_TEST_MQTT_PASSWORD", PASSWORD)
        .env("MILLWRIGHT_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut node = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{mport}");
    let t0 = Instant::now();
    while node_metric(&base, "millwright_mqtt_connected", "") != Some(1.0)
        || node_metric(&base, "millwright_influx_written_points_total", "").unwrap_or(0.0) < 1.0
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the node did not connect and write; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500)); // a status line and a metrics write
    let metrics = ureq::get(&format!("{base}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_clean("/metrics", &metrics);
    let health = ureq::get(&format!("{base}/health"))
        .call()
        .map(|r| r.into_string().unwrap())
        .unwrap_or_else(|e| format!("{e}"));
    assert_clean("/health", &health);
    node.0.kill().unwrap();
    let _ = node.0.wait();
    let logtext = std::fs::read_to_string(&log).unwrap();
    assert!(logtext.contains("DEBUG"), "the log is at debug level");
    assert_clean("the node's log", &logtext);
    std::fs::remove_dir_all(&dir).unwrap();
}
