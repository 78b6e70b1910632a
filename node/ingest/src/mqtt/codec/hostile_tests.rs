//! Unit tests of the codecs' name and time checks: hostile asset and signal names and readings
//! dated beyond the subscription's skew are refused with their reason, in every format.

use super::testing::tm;
use super::*;
use millwright_core::TimeWindow;

const NOW: i64 = 1_800_000_000_000_000_000;

fn dec(format: PayloadFormat) -> Decoder {
    Decoder::new(
        format,
        DecodeDefaults {
            max_payload_bytes: 1 << 20,
            max_name_bytes: 16,
            time_window: TimeWindow::from_secs(300, 3600),
            ..Default::default()
        },
    )
}

fn json(a: Option<&str>, s: Option<&str>, p: &str) -> Result<Vec<Reading>, PayloadError> {
    let mut out = vec![];
    dec(PayloadFormat::Json)
        .decode(tm(a, s), p.as_bytes(), NOW, &mut out)
        .map(|_| out)
}

fn lp(p: &str) -> Result<Vec<Reading>, PayloadError> {
    let mut out = vec![];
    dec(PayloadFormat::LineProtocol)
        .decode(tm(None, None), p.as_bytes(), NOW, &mut out)
        .map(|_| out)
}

fn reason(r: Result<Vec<Reading>, PayloadError>) -> RejectReason {
    match r {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => e.reason,
    }
}

#[test]
fn empty_names_from_topic_or_payload_are_refused() {
    // `plant//temp`: the asset level is empty.
    let e = json(Some(""), Some("temp"), r#"{"value":1}"#).unwrap_err();
    assert_eq!(e.reason, RejectReason::BadName);
    assert!(
        e.detail.contains("asset") && e.detail.contains("empty"),
        "{e}"
    );
    let e = json(Some("P1"), None, r#"{"signal":"","value":1}"#).unwrap_err();
    assert!(
        e.detail.contains("signal") && e.detail.contains("empty"),
        "{e}"
    );
    assert_eq!(
        reason(json(Some("P1"), None, r#"{"fields":{"":1}}"#)),
        RejectReason::BadName
    );
    assert_eq!(
        json(Some("P1"), Some("temp"), r#"{"value":1}"#)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn newline_control_hash_and_long_names_are_refused_with_the_reason() {
    for (sig, why) in [
        ("a\\nb", "control character at byte 1"),
        ("a\\u0000", "control character"),
        ("tab\\there", "control character at byte 3"),
        ("\\u0085x", "control character at byte 0"),
        ("#temp", "starts with `#`"),
        ("a_name_longer_than_16", "max_name_bytes = 16"),
    ] {
        let e = json(
            Some("P1"),
            None,
            &format!(r#"{{"signal":"{sig}","value":1}}"#),
        )
        .unwrap_err();
        assert_eq!(e.reason, RejectReason::BadName, "{sig}: {e}");
        assert!(e.to_string().contains(why), "{sig}: {e}");
    }
    let e = json(Some("P1"), Some("s"), r#"{"unit":"°C\n","value":1}"#).unwrap_err();
    assert!(e.detail.contains("unit"), "{e}");
    let e = json(None, Some("s"), r#"{"asset":"P+1","value":1}"#).unwrap_err();
    assert!(e.detail.contains("wildcard"), "{e}");
    // A name the line encoder escapes is fine: spaces, commas, equals, backslashes, Unicode.
    let ok = json(
        None,
        None,
        r#"{"asset":"P 1,=\\","signal":"t °C/x","value":1}"#,
    )
    .unwrap();
    assert_eq!(&*ok[0].sensor.asset, "P 1,=\\");
}

#[test]
fn one_bad_name_rejects_the_whole_json_array() {
    let e = json(
        Some("P1"),
        None,
        r#"[{"signal":"ok","value":1},{"signal":"x\ny","value":2}]"#,
    )
    .unwrap_err();
    assert_eq!(e.reason, RejectReason::BadName);
}

#[test]
fn line_protocol_names_are_checked() {
    assert_eq!(reason(lp("m,asset=P\\ 1 a\tb=1")), RejectReason::BadName);
    assert_eq!(
        reason(lp("m,asset=P1 a_very_long_field_key_here=1")),
        RejectReason::BadName
    );
    assert_eq!(reason(lp("m,asset=P#1 t=1")), RejectReason::BadName);
    let ok = lp("m,asset=P\\ 1 t=1").unwrap();
    assert_eq!(&*ok[0].sensor.asset, "P 1");
}

#[test]
fn readings_beyond_the_skew_are_refused_either_way() {
    let fut = NOW + 301_000_000_000;
    let e = json(
        Some("P1"),
        Some("t"),
        &format!(r#"{{"value":1,"ts_ns":{fut}}}"#),
    )
    .unwrap_err();
    assert_eq!(e.reason, RejectReason::BadTime);
    assert!(e.detail.contains("301 s in the future"), "{e}");
    let old = NOW - 3_601_000_000_000;
    assert_eq!(
        reason(json(
            Some("P1"),
            Some("t"),
            &format!(r#"{{"value":1,"ts_ns":{old}}}"#)
        )),
        RejectReason::BadTime
    );
    assert_eq!(reason(lp(&format!("m t=1 {fut}"))), RejectReason::BadTime);
    assert_eq!(
        reason(json(
            Some("P1"),
            Some("t"),
            r#"{"value":1,"time":"2200-01-01T00:00:00Z"}"#
        )),
        RejectReason::BadTime
    );
    let near = NOW + 299_000_000_000;
    assert_eq!(
        json(
            Some("P1"),
            Some("t"),
            &format!(r#"{{"value":1,"ts_ns":{near}}}"#)
        )
        .unwrap()
        .len(),
        1
    );
}

#[test]
fn long_names_are_not_interned() {
    let mut d = dec(PayloadFormat::Json);
    for i in 0..100 {
        let p = format!(
            r#"{{"asset":"P1","signal":"{}{i}","value":1}}"#,
            "x".repeat(1000)
        );
        assert!(d
            .decode(tm(None, None), p.as_bytes(), NOW, &mut vec![])
            .is_err());
    }
    assert!(d.names.len() <= 1, "{}", d.names.len());
}

#[test]
fn a_message_with_more_readings_than_the_cap_is_too_large() {
    let mut d = Decoder::new(
        PayloadFormat::Json,
        DecodeDefaults {
            max_payload_bytes: 1 << 20,
            max_readings: 3,
            ..Default::default()
        },
    );
    let p = r#"[{"value":1},{"value":2},{"value":3},{"value":4}]"#;
    let e = d
        .decode(tm(Some("A"), Some("s")), p.as_bytes(), NOW, &mut vec![])
        .unwrap_err();
    assert_eq!(e.reason, RejectReason::TooLarge);
    assert!(e.detail.contains("max_readings_per_message = 3"), "{e}");
    let p = r#"[{"value":1},{"value":2},{"value":3}]"#;
    assert_eq!(
        d.decode(tm(Some("A"), Some("s")), p.as_bytes(), NOW, &mut vec![])
            .unwrap(),
        3
    );
}

#[test]
fn a_json_array_over_the_cap_is_refused_without_parsing_the_rest() {
    let mut d = Decoder::new(
        PayloadFormat::Json,
        DecodeDefaults {
            max_payload_bytes: 1 << 20,
            max_readings: 3,
            ..Default::default()
        },
    );
    // Decoding stops at the fourth reading: the broken tail is never reached.
    let p = r#"[{"value":1},{"value":2},{"value":3},{"value":4},{"value":5},{"value":"#;
    let mut out = vec![];
    let e = d
        .decode(tm(Some("A"), Some("s")), p.as_bytes(), NOW, &mut out)
        .unwrap_err();
    assert_eq!(e.reason, RejectReason::TooLarge, "{e}");
    assert!(e.detail.contains("by element 3"), "{e}");
    assert!(out.is_empty());
    // Under the cap, the same broken tail is a syntax error; trailing garbage too.
    let p = r#"[{"value":1},{"value":"#;
    let e = d
        .decode(tm(Some("A"), Some("s")), p.as_bytes(), NOW, &mut out)
        .unwrap_err();
    assert_eq!(e.reason, RejectReason::Syntax, "{e}");
    let p = r#"[{"value":1}] x"#;
    let e = d
        .decode(tm(Some("A"), Some("s")), p.as_bytes(), NOW, &mut out)
        .unwrap_err();
    assert_eq!(e.reason, RejectReason::Syntax, "{e}");
    assert!(out.is_empty());
}
