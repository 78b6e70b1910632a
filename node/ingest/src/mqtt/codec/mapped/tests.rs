//! Golden tests of mapped JSON with real-world payload shapes (Tasmota, Shelly, Zigbee2MQTT,
//! ESPHome, nested vendor gateways), and its errors.

use super::*;
use crate::mqtt::codec::{DecodeDefaults, PayloadFormat};

fn dec(mapping: &str, unit: Option<&str>) -> Decoder {
    let m: JsonMapping = toml::from_str(mapping).unwrap();
    m.compile().unwrap();
    Decoder::new(
        PayloadFormat::Json,
        DecodeDefaults {
            max_payload_bytes: 1 << 20,
            mapping: Some(m),
            unit: unit.map(Into::into),
            ..Default::default()
        },
    )
}

fn tm<'a>(topic: &'a str, asset: Option<&'a str>, signal: Option<&'a str>) -> TopicMatch<'a> {
    TopicMatch {
        topic,
        asset,
        signal,
    }
}

const NOW: i64 = 7;

/// (asset, signal, value, unit, ts_ns) of every reading.
fn golden(
    d: &mut Decoder,
    t: TopicMatch<'_>,
    payload: &str,
) -> Vec<(String, String, f64, String, i64)> {
    let mut out = vec![];
    d.decode(t, payload.as_bytes(), NOW, &mut out)
        .unwrap_or_else(|e| panic!("{e}"));
    out.iter()
        .map(|r| {
            (
                r.sensor.asset.to_string(),
                r.sensor.signal.to_string(),
                r.value,
                r.unit.symbol().to_string(),
                r.ts_ns,
            )
        })
        .collect()
}

fn row(a: &str, s: &str, v: f64, u: &str, ts: i64) -> (String, String, f64, String, i64) {
    (a.into(), s.into(), v, u.into(), ts)
}

pub(crate) const TASMOTA: &str = r#"{"Time":"2024-11-30T13:00:05","ENERGY":{"TotalStartTime":"2024-01-01T00:00:00","Total":12.345,"Yesterday":1.2,"Today":0.5,"Power":45,"Voltage":231,"Current":0.195},"DS18B20":{"Id":"0316A2790BFF","Temperature":23.4},"TempUnit":"C"}"#;

#[test]
fn tasmota_sensor_local_time_with_a_fixed_offset() {
    let mut d = dec(
        r#"fields = "$"
time = "$.Time"
time_format = "%Y-%m-%dT%H:%M:%S"
timezone = "+01:00""#,
        None,
    );
    let ts = 1_732_968_005_000_000_000; // 2024-11-30T12:00:05Z
    assert_eq!(
        golden(
            &mut d,
            tm("tele/plug-7/SENSOR", Some("plug-7"), None),
            TASMOTA
        ),
        vec![
            row("plug-7", "DS18B20.Temperature", 23.4, "", ts),
            row("plug-7", "ENERGY.Current", 0.195, "", ts),
            row("plug-7", "ENERGY.Power", 45.0, "", ts),
            row("plug-7", "ENERGY.Today", 0.5, "", ts),
            row("plug-7", "ENERGY.Total", 12.345, "", ts),
            row("plug-7", "ENERGY.Voltage", 231.0, "", ts),
            row("plug-7", "ENERGY.Yesterday", 1.2, "", ts),
        ]
    );
}

pub(crate) const SHELLY: &str = r#"{"src":"shellyplus1pm-a8032ab12345","dst":"shellyplus1pm-a8032ab12345/events","method":"NotifyStatus","params":{"ts":1732968000.52,"switch:0":{"id":0,"apower":12.5,"voltage":230.1,"current":0.061,"output":true,"aenergy":{"total":1234.567,"by_minute":[1.2,3.4,5.6],"minute_ts":1732967940},"temperature":{"tC":45.2,"tF":113.4}}}}"#;

#[test]
fn shelly_gen2_notify_status_float_seconds() {
    let mut d = dec(
        r#"asset = "$.src"
fields = '$.params["switch:0"]'
time = "$.params.ts"
time_format = "unix_s"
skip = ["id", "aenergy.minute_ts", "temperature.tF"]"#,
        None,
    );
    let ts = 1_732_968_000_520_000_000;
    let a = "shellyplus1pm-a8032ab12345";
    assert_eq!(
        golden(&mut d, tm("shellies/events", None, None), SHELLY),
        vec![
            row(a, "aenergy.total", 1234.567, "", ts),
            row(a, "apower", 12.5, "", ts),
            row(a, "current", 0.061, "", ts),
            row(a, "output", 1.0, "", ts),
            row(a, "temperature.tC", 45.2, "", ts),
            row(a, "voltage", 230.1, "", ts),
        ]
    );
}

pub(crate) const ZIGBEE2MQTT: &str = r#"{"battery":97,"humidity":48.21,"linkquality":134,"temperature":21.37,"voltage":2995,"occupancy":false,"last_seen":"2024-11-30T12:00:00.123Z","update":{"state":"idle"}}"#;

#[test]
fn zigbee2mqtt_iso_last_seen() {
    let mut d = dec(
        r#"fields = "$"
time = "$.last_seen"
time_format = "rfc3339"
skip = ["linkquality"]"#,
        None,
    );
    let ts = 1_732_968_000_123_000_000;
    assert_eq!(
        golden(
            &mut d,
            tm("zigbee2mqtt/hall", Some("hall"), None),
            ZIGBEE2MQTT
        ),
        vec![
            row("hall", "battery", 97.0, "", ts),
            row("hall", "humidity", 48.21, "", ts),
            row("hall", "occupancy", 0.0, "", ts),
            row("hall", "temperature", 21.37, "", ts),
            row("hall", "voltage", 2995.0, "", ts),
        ]
    );
}

#[test]
fn esphome_plain_number_state() {
    let mut d = dec(r#"value = "$""#, Some("°C"));
    assert_eq!(
        golden(
            &mut d,
            tm(
                "esphome/boiler/sensor/water_temp/state",
                Some("boiler"),
                Some("water_temp")
            ),
            "63.5"
        ),
        vec![row("boiler", "water_temp", 63.5, "°C", NOW)]
    );
}

pub(crate) const VENDOR_MS: &str = r#"{"gateway":{"id":"GW-7","fw":"2.1"},"data":[{"device":"P-101","ts":1732968000123,"measurements":{"temp":61.2,"vib":3.1},"units":{"temp":"°C","vib":"mm/s"}},{"device":"P-102","ts":1732968000456,"measurements":{"temp":59.8,"vib":2.7},"units":{"temp":"°C","vib":"mm/s"}}]}"#;

#[test]
fn nested_vendor_records_with_epoch_ms() {
    let mut d = dec(
        r#"records = "$.data"
asset = "$.device"
time = "$.ts"
time_format = "unix_ms"
fields = "$.measurements"
units = "$.units""#,
        None,
    );
    assert_eq!(
        golden(&mut d, tm("gw/GW-7/up", None, None), VENDOR_MS),
        vec![
            row("P-101", "temp", 61.2, "°C", 1_732_968_000_123_000_000),
            row("P-101", "vib", 3.1, "mm/s", 1_732_968_000_123_000_000),
            row("P-102", "temp", 59.8, "°C", 1_732_968_000_456_000_000),
            row("P-102", "vib", 2.7, "mm/s", 1_732_968_000_456_000_000),
        ]
    );
}

pub(crate) const VENDOR_RFC3339: &str = r#"{"meta":{"time":"2024-11-30T13:00:00.5+01:00","seq":4},"payload":{"asset":"K-1","signal":"pressure","val":"4.25","unit":"bar"}}"#;

#[test]
fn nested_vendor_single_value_with_rfc3339() {
    let mut d = dec(
        r#"value = "$.payload.val"
time = "$.meta.time"
asset = "$.payload.asset"
signal = "$.payload.signal"
unit = "$.payload.unit""#,
        None,
    );
    assert_eq!(
        golden(&mut d, tm("v/x", None, None), VENDOR_RFC3339),
        vec![row(
            "K-1",
            "pressure",
            4.25,
            "bar",
            1_732_968_000_500_000_000
        )]
    );
}

#[test]
fn errors_name_the_path_and_are_counted_by_reason() {
    let mut d = dec(
        r#"value = "$.payload.val"
time = "$.meta.time"
asset = "$.payload.asset"
signal = "$.payload.signal""#,
        None,
    );
    let mut out = vec![];
    let mut err = |p: &str| {
        d.decode(tm("t", None, None), p.as_bytes(), NOW, &mut out)
            .unwrap_err()
    };
    let e = err(
        r#"{"meta":{"time":"2024-11-30T12:00:00Z"},"payload":{"asset":"A","signal":"s","value":1}}"#,
    );
    assert_eq!(e.reason, RejectReason::NoMatch);
    assert!(
        e.detail.contains("`$.payload.val`") && e.detail.contains("asset, signal, value"),
        "{e}"
    );
    let e = err(r#"{"meta":{"time":"noon"},"payload":{"asset":"A","signal":"s","val":1}}"#);
    assert_eq!(e.reason, RejectReason::Schema, "{e}");
    let e = err(
        r#"{"meta":{"time":"2024-11-30T12:00:00Z"},"payload":{"asset":"A","signal":"s","val":"hot"}}"#,
    );
    assert_eq!(e.reason, RejectReason::Schema, "{e}");
    assert!(e.detail.contains("not a number"), "{e}");
    let e = err(
        r#"{"meta":{"time":"2024-11-30T12:00:00Z"},"payload":{"asset":["A"],"signal":"s","val":1}}"#,
    );
    assert_eq!(e.reason, RejectReason::Schema, "{e}");
    assert_eq!(err("{oops").reason, RejectReason::Syntax);
    assert!(out.is_empty());
    let mut d = dec(r#"fields = "$.f""#, None);
    let e = d
        .decode(
            tm("t", Some("A"), None),
            br#"{"f":{"name":"x"}}"#,
            NOW,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.reason, RejectReason::NoMatch, "{e}");
    // A record list keeps all or nothing.
    let mut d = dec(
        r#"records = "$.r"
value = "$.v"
signal = "$.s""#,
        None,
    );
    let e = d
        .decode(
            tm("t", Some("A"), None),
            br#"{"r":[{"v":1,"s":"a"},{"v":2}]}"#,
            NOW,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e.reason, RejectReason::NoMatch);
    assert!(e.detail.starts_with("record 1:"), "{e}");
    assert!(out.is_empty());
}

#[test]
fn bad_mappings_are_named() {
    let bad = |t: &str| {
        let m: JsonMapping = toml::from_str(t).unwrap();
        m.validate("mqtt.subscriptions[0].json")
            .into_iter()
            .map(|e| e.path)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        bad(r#"time = "$.t""#),
        vec!["mqtt.subscriptions[0].json.value"]
    );
    assert_eq!(
        bad(r#"value = "x.y""#),
        vec!["mqtt.subscriptions[0].json.value"]
    );
    assert_eq!(
        bad(r#"value = "$.a[x]""#),
        vec!["mqtt.subscriptions[0].json.value"]
    );
    assert_eq!(
        bad(r#"value = "$.v"
fields = "$.f""#),
        vec!["mqtt.subscriptions[0].json.fields"]
    );
    assert_eq!(
        bad(r#"value = "$.v"
time = "$.t"
time_format = "unix_minutes""#),
        vec!["mqtt.subscriptions[0].json.time_format"]
    );
    assert_eq!(
        bad(r#"value = "$.v"
time = "$.t"
timezone = "Europe/Berlin""#),
        vec!["mqtt.subscriptions[0].json.timezone"]
    );
    assert!(bad(r#"value = "$.v"
time = "$.t"
time_format = "%d.%m.%Y %H:%M"
timezone = "-05:30""#)
    .is_empty());
}

#[test]
fn strftime_with_its_own_offset_and_date_only() {
    let mut d = dec(
        r#"value = "$.v"
time = "$.t"
time_format = "%d.%m.%Y %H:%M:%S %z""#,
        None,
    );
    assert_eq!(
        golden(
            &mut d,
            tm("t", Some("A"), Some("s")),
            r#"{"v":1,"t":"30.11.2024 13:00:00 +0100"}"#
        )[0]
        .4,
        1_732_968_000_000_000_000
    );
}

proptest::proptest! {
    #[test]
    fn mapped_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let mut d = dec(r#"records = "$.r"
fields = "$.f"
time = "$.t"
asset = "$.a""#, None);
        let _ = d.decode(tm("t", None, None), &bytes, 0, &mut vec![]);
    }
}
