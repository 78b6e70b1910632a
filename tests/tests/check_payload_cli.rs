//! `millwright check-payload`: the readings a payload gives under a config, or exactly why none,
//! for mapped JSON and for Sparkplug B payloads built by `mqtt-spb-wrapper` (PyPI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const CONFIG: &str = r#"
[site]
name = "cp"
[mqtt]
host = "127.0.0.1"
[[mqtt.subscriptions]]
topic = "tele/{asset}/SENSOR"
[mqtt.subscriptions.json]
fields = "$"
time = "$.Time"
time_format = "%Y-%m-%dT%H:%M:%S"
timezone = "+01:00"
[[mqtt.subscriptions]]
topic = "vendor/x"
[mqtt.subscriptions.json]
value = "$.payload.val"
asset = "$.payload.asset"
signal = "$.payload.signal"
[[mqtt.subscriptions]]
topic = "spBv1.0/G/#"
format = "sparkplug_b"
"#;

/// Runs check-payload; (exit success, stdout + stderr).
fn check(cfg: &Path, topic: &str, payload: &[u8], extra: &[&str]) -> (bool, String) {
    let mut child = Command::new(millwright_bin())
        .args(["check-payload", "--config"])
        .arg(cfg)
        .args(["--topic", topic])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_payload_shows_readings_or_exactly_why_none() {
    let dir = std::env::temp_dir().join(unique("mw-cp-"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("millwright.toml");
    std::fs::write(&cfg, CONFIG).unwrap();

    let (ok, out) = check(
        &cfg,
        "tele/plug-7/SENSOR",
        br#"{"Time":"2024-11-30T13:00:05","ENERGY":{"Power":45,"Voltage":231.5},"TempUnit":"C"}"#,
        &[],
    );
    assert!(ok, "{out}");
    assert!(out.contains("2 reading(s)"), "{out}");
    assert!(
        out.contains(
            "plug-7\tENERGY.Voltage\t231.5\t\t2024-11-30T12:00:05Z (1732968005000000000 ns)"
        ),
        "{out}"
    );

    let (ok, out) = check(
        &cfg,
        "vendor/x",
        br#"{"payload":{"asset":"A","signal":"s","value":1}}"#,
        &[],
    );
    assert!(!ok);
    assert!(out.contains("no_match"), "{out}");
    assert!(
        out.contains("`$.payload.val`") && out.contains("keys there: asset, signal, value"),
        "{out}"
    );

    let (ok, out) = check(&cfg, "elsewhere/x", b"{}", &[]);
    assert!(!ok);
    assert!(
        out.contains("matches no subscription") && out.contains("vendor/x"),
        "{out}"
    );

    // Sparkplug B payloads from the independent implementation.
    let gen = r#"
import sys
from mqtt_spb_wrapper.spb_protobuf import MetricDataType as T, addMetric, getNodeBirthPayload, getDdataPayload
b = getNodeBirthPayload()
m = addMetric(b, "Temperature", 7, T.Double, 20.5, 1732968000000)
m.properties.keys.append("engUnit"); v = m.properties.values.add(); v.type = T.String; v.string_value = "°C"
addMetric(b, "Label", 8, T.String, "x", 1732968000000)
open(sys.argv[1] + "/nbirth.bin", "wb").write(b.SerializeToString())
d = getDdataPayload()
addMetric(d, None, 7, T.Double, 21.75, 1732968001000)
addMetric(d, None, 9, T.Double, 1.0, 1732968001000)
open(sys.argv[1] + "/ndata.bin", "wb").write(d.SerializeToString())
"#;
    let st = Command::new("python3")
        .args(["-c", gen])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "mqtt-spb-wrapper missing? run scripts/install-deps.sh"
    );
    let ndata = std::fs::read(dir.join("ndata.bin")).unwrap();
    let (ok, out) = check(&cfg, "spBv1.0/G/NDATA/E1", &ndata, &[]);
    assert!(!ok);
    assert!(
        out.contains("no_birth") && out.contains("rebirth request"),
        "{out}"
    );
    let birth = dir.join("nbirth.bin");
    let (ok, out) = check(
        &cfg,
        "spBv1.0/G/NDATA/E1",
        &ndata,
        &["--birth", birth.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    assert!(out.contains("1 reading(s)"), "{out}");
    assert!(
        out.contains("E1\tTemperature\t21.75\t°C\t2024-11-30T12:00:01Z"),
        "{out}"
    );
    assert!(out.contains("skipped 1 metric(s): unknown_alias"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
