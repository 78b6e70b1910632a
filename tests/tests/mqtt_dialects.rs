//! End to end: the plant's MQTT dialects through the real Mosquitto, the `millwright` binary and
//! the real VictoriaMetrics, checked reading by reading.
//!
//! - Sparkplug B from an independent implementation (`mqtt-spb-wrapper` from PyPI, driven by
//!   `tests/data/sparkplug_publisher.py`): births, DATA by alias, a sequence gap and deaths.
//!   Every metric's name, value, unit and timestamp; exactly one rebirth request for the gap;
//!   the deaths mark node and device offline; a truncated protobuf, an unknown alias and a value
//!   of the wrong type are counted per reason and block nothing.
//! - Mapped JSON: Tasmota SENSOR, Shelly Gen2, Zigbee2MQTT, ESPHome and two nested vendor
//!   shapes (epoch ms, RFC 3339), each through its `[mqtt.subscriptions.json]` mapping, plus a
//!   payload whose path matches nothing, counted as `no_match` without blocking the rest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct NodeProc {
    _child: KillOnDrop,
    metrics: String,
}

fn start_node(mqtt_port: u16, vm: &str, subs: &str) -> NodeProc {
    let mport = free_port();
    let dir = std::env::temp_dir().join(unique("mw-dialects-"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("millwright.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[site]
name = "e2e"
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "{cid}"
clean_session = true
{subs}
[influxdb]
url = "{vm}"
org = "e2e"
bucket = "e2e"
batch_size = 500
flush_interval_ms = 100
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 0
"#,
            cid = unique("dialects-"),
        ),
    )
    .unwrap();
    let child = run_checked_node(&cfg, &dir.join("node.log"));
    let node = NodeProc {
        _child: child,
        metrics: format!("http://127.0.0.1:{mport}"),
    };
    wait_subscribed(&node.metrics, Duration::from_secs(30));
    node
}

fn base_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now - 600_000
}

/// Every exported point of the assets matching `asset_re`:
/// (asset, signal, ts_ms) -> (value, unit).
fn points(vm: &str, asset_re: &str, n: usize) -> BTreeMap<(String, String, i64), (f64, String)> {
    let sel = format!("{{asset=~\"{asset_re}\"}}");
    let series = vm_wait_for(vm, &sel, n, Duration::from_secs(60));
    let mut out = BTreeMap::new();
    for s in series {
        let name = s.metric["__name__"]
            .strip_suffix("_value")
            .unwrap_or(&s.metric["__name__"])
            .to_string();
        let unit = s.metric.get("unit").cloned().unwrap_or_default();
        for (v, t) in s.values.iter().zip(&s.timestamps_ms) {
            out.insert(
                (s.metric["asset"].clone(), name.clone(), *t),
                (*v, unit.clone()),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparkplug_b_from_an_independent_publisher() {
    let broker = mqtt_broker();
    let vm = victoria();
    let group = unique("G");
    let (edge, dev) = (unique("EN"), unique("Pump"));
    let node = start_node(
        broker.port,
        &vm,
        &format!(
            r#"
[[mqtt.subscriptions]]
topic = "spBv1.0/{group}/#"
format = "sparkplug_b"
[mqtt.subscriptions.sparkplug]
rebirth_min_interval_s = 60
"#
        ),
    );

    // Watch the node's commands to the edge node.
    let mut o = MqttOptions::new(unique("ncmd-"), "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 100);
    c.subscribe(format!("spBv1.0/{group}/NCMD/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let cmds: Arc<Mutex<Vec<SentCommand>>> = Arc::default();
    let (cm, subscribed) = (
        cmds.clone(),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let sub_flag = subscribed.clone();
    let watcher = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    sub_flag.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    cm.lock()
                        .unwrap()
                        .push((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let t_wait = Instant::now();
    while !subscribed.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(
            t_wait.elapsed() < Duration::from_secs(10),
            "NCMD watcher not subscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let t0 = base_ms();
    let script = workspace_root().join("tests/data/sparkplug_publisher.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--host", "127.0.0.1", "--port", &broker.port.to_string()])
        .args(["--group", &group, "--node", &edge, "--device", &dev])
        .args(["--t0", &t0.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the Sparkplug publisher failed (is `mqtt-spb-wrapper` installed? scripts/install-deps.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // (asset, signal, ts offset, value, unit); the NDEATH's time is the receive time.
    let e = edge.as_str();
    let d = dev.as_str();
    let mut want: Vec<(&str, &str, i64, f64, &str)> = vec![
        (e, "device_online", 0, 1.0, ""),
        (e, "Uptime", 0, 3600.0, "s"),
        (e, "Supply Voltage", 0, 24.25, "V"),
        (d, "device_online", 1, 1.0, ""),
        (d, "Temperature", 1, 61.25, "°C"),
        (d, "Speed", 1, 1480.0, "rpm"),
        (d, "Running", 1, 1.0, ""),
        (d, "Suction Pressure", 1, -120.0, "mbar"),
        (d, "Bearing/Vibration", 1, 2.5, "mm/s"),
        (d, "Starts", 1, 123456.0, ""),
        (d, "Offset", 1, -7.0, ""),
        (e, "Supply Voltage", 30, 23.75, "V"),
        (e, "Uptime", 30, 3700.0, "s"),
        (d, "Temperature", 40, 70.5, "°C"),
        (d, "Temperature", 50, 71.5, "°C"),
        (d, "device_online", 60, 0.0, ""),
    ];
    for k in 0..2i64 {
        let t = 10 + 10 * k;
        let kf = k as f64;
        want.extend([
            (d, "Temperature", t, 62.5 + kf, "°C"),
            (d, "Speed", t, 1490.0 + kf, "rpm"),
            (d, "Running", t, if k == 0 { 1.0 } else { 0.0 }, ""),
            (d, "Suction Pressure", t, -130.0 - kf, "mbar"),
            (d, "Bearing/Vibration", t, 2.75 + kf, "mm/s"),
        ]);
    }
    let got = points(&vm, &format!("{e}|{d}"), want.len() + 1);
    for (asset, sig, dt, v, unit) in &want {
        let key = (asset.to_string(), sig.to_string(), t0 + dt);
        let (gv, gu) = got
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} missing; got {got:#?}"));
        assert_eq!((*gv, gu.as_str()), (*v, *unit), "{key:?}");
    }
    // The node's death: device_online 0 at the receive time, after everything else.
    let node_online: Vec<_> = got
        .iter()
        .filter(|((a, s, _), _)| a == e && s == "device_online")
        .collect();
    assert_eq!(node_online.len(), 2, "{node_online:?}");
    assert_eq!(
        node_online[1].1 .0, 0.0,
        "NDEATH marks the edge node offline"
    );
    assert!(node_online[1].0 .2 > t0 + 60);
    assert_eq!(got.len(), want.len() + 1, "nothing else arrived: {got:#?}");

    // Exactly one rebirth request, for the gap (give a second one time to show up).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cmds = cmds.lock().unwrap().clone();
    assert_eq!(cmds.len(), 1, "rebirth requests: {cmds:?}");
    assert_eq!(cmds[0].0, format!("spBv1.0/{group}/NCMD/{edge}"));
    let needle = b"Node Control/Rebirth";
    assert!(cmds[0].1.windows(needle.len()).any(|w| w == needle));
    let m = |name: &str, f: &str| node_metric(&node.metrics, name, f).unwrap_or(-1.0);
    assert_eq!(m("millwright_mqtt_sparkplug_sequence_gaps_total", ""), 1.0);
    assert_eq!(
        m("millwright_mqtt_sparkplug_rebirth_requests_total", ""),
        1.0
    );
    assert_eq!(
        m("millwright_mqtt_skipped_total", "unsupported_type"),
        1.0,
        "the String metric"
    );
    assert_eq!(
        m("millwright_mqtt_skipped_total", "null"),
        1.0,
        "the is_null metric"
    );
    assert_eq!(m("millwright_mqtt_skipped_total", "unknown_alias"), 1.0);
    assert_eq!(m("millwright_mqtt_skipped_total", "wrong_type"), 1.0);
    assert_eq!(
        m("millwright_mqtt_rejected_total", "\"syntax\""),
        1.0,
        "the truncated protobuf"
    );
    assert_eq!(m("millwright_mqtt_rejected_total", ""), 1.0);
    watcher.abort();
}

/// A command the node published: (topic, payload).
type SentCommand = (String, Vec<u8>);

/// (topic, payload, mapping, expected readings as (asset, signal, value, unit, ts_ms)).
type Case = (
    String,
    String,
    String,
    Vec<(String, String, f64, String, i64)>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_json_real_world_shapes() {
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("mj");
    let t = base_ms() / 1000 * 1000; // whole seconds: Tasmota's time has none finer
    let iso = |ms: i64, off_h: i64| {
        // RFC 3339 text of `ms` at offset `off_h` hours, built without a date library.
        let s = (ms.div_euclid(1000)) + off_h * 3600;
        let days = s.div_euclid(86_400);
        let sod = s.rem_euclid(86_400);
        let (y, m, d) = civil(days);
        (
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                sod / 3600,
                sod / 60 % 60,
                sod % 60
            ),
            ms.rem_euclid(1000),
        )
    };
    let a = |s: &str| format!("{run}-{s}");
    let mut cases: Vec<Case> = Vec::new();
    // Tasmota SENSOR: local time without offset, the device one hour east of UTC.
    let (local, _) = iso(t, 1);
    cases.push((
        format!("{run}/tele/{}/SENSOR", a("plug")),
        format!(r#"{{"Time":"{local}","ENERGY":{{"TotalStartTime":"2024-01-01T00:00:00","Total":12.345,"Today":0.5,"Power":45,"Voltage":231,"Current":0.195}},"DS18B20":{{"Id":"0316A2790BFF","Temperature":23.4}},"TempUnit":"C"}}"#),
        format!("topic = \"{run}/tele/{{asset}}/SENSOR\"\n[mqtt.subscriptions.json]\nfields = \"$\"\ntime = \"$.Time\"\ntime_format = \"%Y-%m-%dT%H:%M:%S\"\ntimezone = \"+01:00\"\n"),
        [("DS18B20.Temperature", 23.4), ("ENERGY.Current", 0.195), ("ENERGY.Power", 45.0), ("ENERGY.Today", 0.5), ("ENERGY.Total", 12.345), ("ENERGY.Voltage", 231.0)]
            .iter().map(|(s, v)| (a("plug"), s.to_string(), *v, String::new(), t)).collect(),
    ));
    // Shelly Gen2 NotifyStatus: float seconds, asset in the payload.
    let ts_s = format!("{}.{:03}", (t + 520) / 1000, (t + 520) % 1000);
    cases.push((
        format!("{run}/shelly/events"),
        format!(r#"{{"src":"{}","dst":"x/events","method":"NotifyStatus","params":{{"ts":{ts_s},"switch:0":{{"id":0,"apower":12.5,"voltage":230.1,"current":0.061,"output":true,"aenergy":{{"total":1234.567,"by_minute":[1.2,3.4],"minute_ts":1732967940}},"temperature":{{"tC":45.2,"tF":113.4}}}}}}}}"#, a("shelly")),
        format!("topic = \"{run}/shelly/events\"\n[mqtt.subscriptions.json]\nasset = \"$.src\"\nfields = '$.params[\"switch:0\"]'\ntime = \"$.params.ts\"\ntime_format = \"unix_s\"\nskip = [\"id\", \"aenergy.minute_ts\", \"temperature.tF\"]\n"),
        [("aenergy.total", 1234.567), ("apower", 12.5), ("current", 0.061), ("output", 1.0), ("temperature.tC", 45.2), ("voltage", 230.1)]
            .iter().map(|(s, v)| (a("shelly"), s.to_string(), *v, String::new(), t + 520)).collect(),
    ));
    // Zigbee2MQTT with ISO last_seen.
    let (utc, _) = iso(t + 123, 0);
    cases.push((
        format!("{run}/z2m/{}", a("hall")),
        format!(r#"{{"battery":97,"humidity":48.21,"linkquality":134,"temperature":21.37,"voltage":2995,"occupancy":false,"last_seen":"{utc}.123Z","update":{{"state":"idle"}}}}"#),
        format!("topic = \"{run}/z2m/{{asset}}\"\n[mqtt.subscriptions.json]\nfields = \"$\"\ntime = \"$.last_seen\"\ntime_format = \"rfc3339\"\nskip = [\"linkquality\"]\n"),
        [("battery", 97.0), ("humidity", 48.21), ("occupancy", 0.0), ("temperature", 21.37), ("voltage", 2995.0)]
            .iter().map(|(s, v)| (a("hall"), s.to_string(), *v, String::new(), t + 123)).collect(),
    ));
    // ESPHome: a plain number per entity topic, unit from the subscription; receive time.
    cases.push((
        format!("{run}/esphome/{}/sensor/water_temp/state", a("boiler")),
        "63.5".into(),
        format!("topic = \"{run}/esphome/{{asset}}/sensor/{{signal}}/state\"\nunit = \"°C\"\n[mqtt.subscriptions.json]\nvalue = \"$\"\n"),
        vec![(a("boiler"), "water_temp".into(), 63.5, "°C".into(), -1)],
    ));
    // Vendor gateway: records with epoch ms and a units object.
    cases.push((
        format!("{run}/gw/up"),
        format!(r#"{{"gateway":{{"id":"GW-7"}},"data":[{{"device":"{}","ts":{},"measurements":{{"temp":61.2,"vib":3.1}},"units":{{"temp":"°C","vib":"mm/s"}}}},{{"device":"{}","ts":{},"measurements":{{"temp":59.8,"vib":2.7}},"units":{{"temp":"°C","vib":"mm/s"}}}}]}}"#, a("P101"), t + 7, a("P102"), t + 9),
        format!("topic = \"{run}/gw/up\"\n[mqtt.subscriptions.json]\nrecords = \"$.data\"\nasset = \"$.device\"\ntime = \"$.ts\"\ntime_format = \"unix_ms\"\nfields = \"$.measurements\"\nunits = \"$.units\"\n"),
        vec![
            (a("P101"), "temp".into(), 61.2, "°C".into(), t + 7),
            (a("P101"), "vib".into(), 3.1, "mm/s".into(), t + 7),
            (a("P102"), "temp".into(), 59.8, "°C".into(), t + 9),
            (a("P102"), "vib".into(), 2.7, "mm/s".into(), t + 9),
        ],
    ));
    // Vendor: one value, RFC 3339 with an offset, names and unit in the payload.
    let (local2, _) = iso(t + 500, 1);
    cases.push((
        format!("{run}/vendor/x"),
        format!(r#"{{"meta":{{"time":"{local2}.5+01:00","seq":4}},"payload":{{"asset":"{}","signal":"pressure","val":"4.25","unit":"bar"}}}}"#, a("K1")),
        format!("topic = \"{run}/vendor/x\"\n[mqtt.subscriptions.json]\nvalue = \"$.payload.val\"\ntime = \"$.meta.time\"\nasset = \"$.payload.asset\"\nsignal = \"$.payload.signal\"\nunit = \"$.payload.unit\"\n"),
        vec![(a("K1"), "pressure".into(), 4.25, "bar".into(), t + 500)],
    ));

    let subs: String = cases
        .iter()
        .map(|(_, _, m, _)| format!("[[mqtt.subscriptions]]\nformat = \"json\"\n{m}"))
        .collect();
    let node = start_node(broker.port, &vm, &subs);
    let mut o = MqttOptions::new(unique("mjpub-"), "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 100);
    let pump = tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let sent_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // A payload whose path matches nothing comes first and must not block the others.
    c.publish(format!("{run}/vendor/x"), QoS::AtLeastOnce, false, r#"{"meta":{"time":"2024-11-30T12:00:00Z"},"payload":{"asset":"x","signal":"s","value":1}}"#)
        .await
        .unwrap();
    for (topic, payload, _, _) in &cases {
        c.publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
    }
    let n: usize = cases.iter().map(|c| c.3.len()).sum();
    let got = points(&vm, &format!("{run}-.*"), n);
    assert_eq!(got.len(), n, "{got:#?}");
    for (_, _, _, want) in &cases {
        for (asset, sig, v, unit, ts) in want {
            let hit = got
                .iter()
                .find(|((a, s, t), _)| a == asset && s == sig && (*ts < 0 || *t == *ts))
                .unwrap_or_else(|| panic!("{asset}/{sig}@{ts} missing; got {got:#?}"));
            assert_eq!(
                (hit.1 .0, hit.1 .1.as_str()),
                (*v, unit.as_str()),
                "{asset}/{sig}"
            );
            if *ts < 0 {
                // Receive time: within the test's run.
                assert!(hit.0 .2 >= sent_at - 1000 && hit.0 .2 < sent_at + 60_000);
            }
        }
    }
    let t_wait = Instant::now();
    while node_metric(&node.metrics, "millwright_mqtt_rejected_total", "no_match").unwrap_or(0.0)
        != 1.0
    {
        assert!(
            t_wait.elapsed() < Duration::from_secs(10),
            "no_match not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        node_metric(&node.metrics, "millwright_mqtt_rejected_total", "").unwrap(),
        1.0
    );
    pump.abort();
}

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}
