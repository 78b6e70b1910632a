//! The fuzz targets' entry points (`fuzz/`) as bounded property tests, run by `make test`:
//! random bytes and structured hostile payloads through the JSON, mapped-JSON and
//! line-protocol decoders, topic patterns and the `[mqtt]` / `[modbus]` TOML. Never a panic;
//! every reading that comes out has a name line protocol and MQTT can carry and a time inside
//! the subscription's window.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{check_name, NameKind, Reading};
use millwright_ingest::mqtt::codec::{DecodeDefaults, Decoder, PayloadFormat};
use millwright_ingest::mqtt::{MqttConfig, SubscriptionConfig, TopicPattern};
use proptest::prelude::*;

const NOW: i64 = 1_800_000_000_000_000_000;

fn decoder(format: PayloadFormat, mapped: bool) -> Decoder {
    let mut sub = SubscriptionConfig::new("plant/{asset}/{signal}", format);
    if mapped {
        sub.json = Some(
            toml::from_str(
                r#"value = "$.payload.v"
asset = "$.payload.a"
signal = "$.payload.s"
time = "$.meta.time""#,
            )
            .unwrap(),
        );
    }
    Decoder::new(format, sub.decode_defaults())
}

fn check_out(out: &[Reading]) -> Result<(), TestCaseError> {
    let d: DecodeDefaults = SubscriptionConfig::new("x", PayloadFormat::Json).decode_defaults();
    for r in out {
        prop_assert!(
            check_name(&r.sensor.asset, NameKind::Asset, d.max_name_bytes).is_ok(),
            "{r:?}"
        );
        prop_assert!(
            check_name(&r.sensor.signal, NameKind::Signal, d.max_name_bytes).is_ok(),
            "{r:?}"
        );
        prop_assert!(d.time_window.check(r.ts_ns, NOW).is_ok(), "{r:?}");
        prop_assert!(r.value.is_finite());
    }
    Ok(())
}

fn decode_all(payload: &[u8], topic: &str) -> Result<(), TestCaseError> {
    let pat = TopicPattern::parse("plant/{asset}/{signal}").unwrap();
    let m = pat.matches(topic).unwrap_or_default();
    for (f, mapped) in [
        (PayloadFormat::Json, false),
        (PayloadFormat::Json, true),
        (PayloadFormat::LineProtocol, false),
        (PayloadFormat::SparkplugB, false),
    ] {
        let mut out = Vec::new();
        let mut d = decoder(f, mapped);
        if d.decode(m, payload, NOW, &mut out).is_ok() {
            check_out(&out)?;
        } else {
            prop_assert!(out.is_empty());
        }
    }
    Ok(())
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("#x".to_string()),
        Just("a\\nb".to_string()),
        Just("a\\u0000b".to_string()),
        Just("x".repeat(300)),
        Just("P+1".to_string()),
        "[a-z_ ,=\\\\]{1,12}",
        "\\PC{0,16}",
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1e308".to_string()),
        Just("-1.7976931348623157e308".to_string()),
        Just("5e-324".to_string()),
        Just("1e309".to_string()),
        Just("NaN".to_string()),
        Just("\"1\"".to_string()),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:?}")),
    ]
}

fn time_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        any::<i64>().prop_map(|t| format!(r#","ts_ns":{t}"#)),
        any::<i64>().prop_map(|t| format!(r#","ts_ms":{t}"#)),
        Just(r#","ts_s":1e300"#.to_string()),
        Just(r#","time":"2200-01-01T00:00:00Z""#.to_string()),
        Just(r#","time":"１９７０-01-01T00:00:00Z""#.to_string()),
        (0i64..600).prop_map(|s| format!(r#","ts_ns":{}"#, NOW + s * 1_000_000_000)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024), topic in "\\PC{0,40}") {
        decode_all(&bytes, &topic)?;
    }

    #[test]
    fn hostile_json_is_refused_or_clean(
        a in name(), s in name(), v in number(), t in time_key(), ta in name(), ts in name(),
    ) {
        let esc = |x: &str| serde_json::to_string(x).unwrap();
        let p = format!(r#"{{"asset":{},"signal":{},"value":{v}{t}}}"#, esc(&a), esc(&s));
        decode_all(p.as_bytes(), &format!("plant/{ta}/{ts}"))?;
        let p = format!(r#"[{{"fields":{{{}:{v}}}{t}}}]"#, esc(&s));
        decode_all(p.as_bytes(), &format!("plant/{ta}/{ts}"))?;
        let p = format!(r#"{{"payload":{{"a":{},"s":{},"v":{v}}},"meta":{{"time":"x"}}}}"#, esc(&a), esc(&s));
        decode_all(p.as_bytes(), "plant/a/b")?;
    }

    #[test]
    fn hostile_line_protocol_is_refused_or_clean(
        m in name(), a in name(), k in name(), v in number(), t in proptest::option::of(any::<i64>()),
    ) {
        let t = t.map(|t| format!(" {t}")).unwrap_or_default();
        let p = format!("{m},asset={a} {k}={v}{t}\n{m} {k}={v}i");
        decode_all(p.as_bytes(), "plant/a/b")?;
    }

    #[test]
    fn config_text_never_panics(text in "\\PC{0,300}") {
        if let Ok(c) = toml::from_str::<MqttConfig>(&text) {
            let _ = c.validate("mqtt");
        }
        if let Ok(c) = toml::from_str::<millwright_ingest::modbus::ModbusConfig>(&text) {
            let _ = c.validate();
        }
        let _ = TopicPattern::parse(&text);
    }
}
