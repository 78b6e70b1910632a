//! The JSON payload codec.
//!
//! # JSON schema
//! A payload is one object or an array of objects. An object is either a *reading*
//! `{"value": 61.2, "asset"?: "P-101", "signal"?: "bearing_temp_c", "unit"?: "°C",
//! "quality"?: "good|uncertain|bad", <time>?}` or a *field set*
//! `{"fields": {"bearing_temp_c": 61.2, "speed_rpm": 1480}, "units"?: {"bearing_temp_c": "°C"},
//! "asset"?: "P-101", "quality"?: …, <time>?}` giving one reading per field with one timestamp.
//! `<time>` is one of `ts_ns` (integer ns), `ts_ms` (integer ms), `ts_s` (number, seconds,
//! rounded to the µs) or
//! `time` (RFC 3339 string); without one, the receive time is used. Other keys are ignored.
//! Asset and signal come from the object, else from the topic (`{asset}`, `{signal}`), else from
//! the subscription's `asset`/`signal`.

use super::{check_finite, Decoder, PayloadError};
use crate::metrics::RejectReason;
use millwright_core::time::parse_rfc3339_ns;
use millwright_core::{Quality, Reading, SensorId};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::mqtt::topic::TopicMatch;

#[derive(Deserialize)]
struct JsonObj<'a> {
    #[serde(borrow, default)]
    asset: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    unit: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    quality: Option<Cow<'a, str>>,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    ts_ns: Option<i64>,
    #[serde(default)]
    ts_ms: Option<i64>,
    #[serde(default)]
    ts_s: Option<f64>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fields: Option<BTreeMap<Cow<'a, str>, f64>>,
    #[serde(borrow, default)]
    units: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

impl Decoder {
    pub(super) fn decode_json(
        &mut self,
        topic: TopicMatch<'_>,
        payload: &[u8],
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), PayloadError> {
        if std::str::from_utf8(payload).is_err() {
            let at = std::str::from_utf8(payload)
                .err()
                .map(|e| e.valid_up_to())
                .unwrap_or(0);
            return Err(PayloadError::new(
                RejectReason::InvalidUtf8,
                format!("at byte {at}"),
            ));
        }
        let first = payload.iter().find(|b| !b.is_ascii_whitespace()).copied();
        match first {
            Some(b'[') => {
                // Element by element, straight into readings: no intermediate array of parsed
                // objects (~230 bytes each, so a 1 MiB array of tiny objects would take ~20 MiB
                // before the readings cap could refuse it), and decoding stops as soon as the
                // message has more readings than `max_readings`.
                let start = out.len();
                let mut elements = Elements {
                    dec: self,
                    topic,
                    now_ns,
                    out,
                    start,
                    failed: None,
                };
                let mut de = serde_json::Deserializer::from_slice(payload);
                let res = serde::Deserializer::deserialize_seq(&mut de, &mut elements)
                    .and_then(|n| de.end().map(|()| n));
                match (res, elements.failed.take()) {
                    (_, Some(e)) => Err(e),
                    (Err(e), None) => Err(json_err(&e, payload)),
                    (Ok(0), None) => Err(PayloadError::new(RejectReason::Schema, "empty array")),
                    (Ok(_), None) => Ok(()),
                }
            }
            Some(b'{') => {
                let obj: JsonObj<'_> =
                    serde_json::from_slice(payload).map_err(|e| json_err(&e, payload))?;
                self.json_obj(topic, obj, now_ns, out)
            }
            Some(_) => Err(PayloadError::new(
                RejectReason::Syntax,
                "expected a JSON object or array",
            )),
            None => Err(PayloadError::new(RejectReason::Syntax, "empty payload")),
        }
    }

    fn json_obj(
        &mut self,
        topic: TopicMatch<'_>,
        obj: JsonObj<'_>,
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), PayloadError> {
        let ts_ns = json_time(&obj)?.unwrap_or(now_ns);
        let quality = match obj.quality.as_deref() {
            None => Quality::Good,
            Some(q) => Quality::parse(q).ok_or_else(|| {
                PayloadError::new(
                    RejectReason::Schema,
                    format!("\"quality\": `{q}` is not good, uncertain or bad"),
                )
            })?,
        };
        let asset_name = obj
            .asset
            .as_deref()
            .or(topic.asset)
            .or(self.defaults.asset.as_deref())
            .ok_or_else(|| {
                PayloadError::new(
                    RejectReason::Schema,
                    "no asset: not in the payload, the topic or the subscription",
                )
            })?
            .to_owned();
        let asset = self.name(&asset_name);
        match (obj.value, obj.fields) {
            (Some(v), None) => {
                check_finite(v, "value")?;
                let sig = obj
                    .signal
                    .as_deref()
                    .or(topic.signal)
                    .or(self.defaults.signal.as_deref())
                    .ok_or_else(|| {
                        PayloadError::new(
                            RejectReason::Schema,
                            "no signal: not in the payload, the topic or the subscription",
                        )
                    })?
                    .to_owned();
                let signal = self.name(&sig);
                let unit = self.unit(obj.unit.as_deref());
                out.push(Reading {
                    sensor: SensorId { asset, signal },
                    ts_ns,
                    value: v,
                    unit,
                    quality,
                });
                Ok(())
            }
            (None, Some(fields)) => {
                if fields.is_empty() {
                    return Err(PayloadError::new(
                        RejectReason::Schema,
                        "\"fields\" is empty",
                    ));
                }
                for (k, v) in fields {
                    check_finite(v, &k)?;
                    let signal = self.name(&k);
                    let u = obj
                        .units
                        .as_ref()
                        .and_then(|m| m.get(&k))
                        .map(|c| c.as_ref())
                        .or(obj.unit.as_deref());
                    let unit = self.unit(u);
                    out.push(Reading {
                        sensor: SensorId {
                            asset: asset.clone(),
                            signal,
                        },
                        ts_ns,
                        value: v,
                        unit,
                        quality,
                    });
                }
                Ok(())
            }
            (Some(_), Some(_)) => Err(PayloadError::new(
                RejectReason::Schema,
                "both \"value\" and \"fields\": use one",
            )),
            (None, None) => Err(PayloadError::new(
                RejectReason::Schema,
                "missing \"value\" (or \"fields\")",
            )),
        }
    }
}

/// Decodes the elements of a JSON array one at a time ([`Decoder::decode_json`]).
struct Elements<'d, 'o, 't> {
    dec: &'d mut Decoder,
    topic: TopicMatch<'t>,
    now_ns: i64,
    out: &'o mut Vec<Reading>,
    start: usize,
    /// Why decoding stopped, when it was not the JSON itself.
    failed: Option<PayloadError>,
}

impl<'de> serde::de::Visitor<'de> for &mut Elements<'_, '_, '_> {
    /// Elements decoded.
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        use serde::de::Error;
        let max = self.dec.defaults.max_readings;
        let mut i = 0;
        while let Some(obj) = seq.next_element::<JsonObj<'de>>()? {
            if let Err(e) = self.dec.json_obj(self.topic, obj, self.now_ns, self.out) {
                self.failed = Some(PayloadError::new(
                    e.reason,
                    format!("element {i}: {}", e.detail),
                ));
                return Err(A::Error::custom("element refused"));
            }
            let n = self.out.len().saturating_sub(self.start);
            if n > max {
                self.failed = Some(PayloadError::new(
                    RejectReason::TooLarge,
                    format!(
                        "more than {max} readings by element {i}, limit is \
                         max_readings_per_message = {max}"
                    ),
                ));
                return Err(A::Error::custom("too many readings"));
            }
            i += 1;
        }
        Ok(i)
    }
}

pub(super) fn json_err(e: &serde_json::Error, payload: &[u8]) -> PayloadError {
    let msg = e.to_string();
    let reason = if msg.contains("out of range") {
        RejectReason::NonFinite
    } else if e.is_data() {
        RejectReason::Schema
    } else if e.is_syntax() && (contains(payload, b"NaN") || contains(payload, b"Infinity")) {
        RejectReason::NonFinite
    } else {
        RejectReason::Syntax
    };
    PayloadError::new(reason, msg)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn json_time(obj: &JsonObj<'_>) -> Result<Option<i64>, PayloadError> {
    let overflow =
        |k: &str| PayloadError::new(RejectReason::NonFinite, format!("\"{k}\" out of range"));
    if let Some(ns) = obj.ts_ns {
        return Ok(Some(ns));
    }
    if let Some(ms) = obj.ts_ms {
        return ms
            .checked_mul(1_000_000)
            .map(Some)
            .ok_or_else(|| overflow("ts_ms"));
    }
    if let Some(s) = obj.ts_s {
        // An f64 holds today's epoch seconds to about 0.2 µs: round to the microsecond so
        // that `1732426400.123` means exactly .123000 s.
        let us = (s * 1e6).round();
        if !us.is_finite() || us.abs() > 9.2e15 {
            return Err(overflow("ts_s"));
        }
        return Ok(Some(us as i64 * 1_000));
    }
    if let Some(t) = &obj.time {
        return parse_rfc3339_ns(t).map(Some).ok_or_else(|| {
            PayloadError::new(
                RejectReason::Schema,
                format!("\"time\": `{t}` is not an RFC 3339 timestamp"),
            )
        });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{dec, tm};
    use super::super::PayloadFormat;
    use super::*;

    #[test]
    fn json_single_array_and_fields() {
        let mut d = dec(PayloadFormat::Json);
        let mut out = vec![];
        let n = d
            .decode(
                tm(Some("P-1"), Some("t")),
                r#"{"value": 1.5, "ts_ms": 1000, "unit": "°C"}"#.as_bytes(),
                7,
                &mut out,
            )
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(out[0].ts_ns, 1_000_000_000);
        assert_eq!(&*out[0].sensor.asset, "P-1");
        assert_eq!(out[0].unit.symbol(), "°C");
        let n = d
            .decode(tm(None, None), br#"[{"asset":"A","signal":"s","value":2},{"asset":"B","signal":"s","value":3,"quality":"bad"}]"#, 7, &mut out)
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(out[1].ts_ns, 7);
        assert_eq!(out[2].quality, Quality::Bad);
        let n = d
            .decode(
                tm(Some("M"), None),
                br#"{"ts_ns": 5, "fields": {"a": 1, "b": 2.5}, "units": {"a": "A"}}"#,
                7,
                &mut out,
            )
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            (out[3].value, out[3].unit.symbol(), out[4].value),
            (1.0, "A", 2.5)
        );
    }

    #[test]
    fn json_errors_are_classified_and_atomic() {
        let mut d = dec(PayloadFormat::Json);
        let mut out = vec![];
        let cases: &[(&[u8], RejectReason)] = &[
            (b"{not json", RejectReason::Syntax),
            (br#"{"value": "12"}"#, RejectReason::Schema),
            (br#"{"value": NaN}"#, RejectReason::NonFinite),
            (br#"{"value": 1e999}"#, RejectReason::NonFinite),
            (b"\xff\xfe", RejectReason::InvalidUtf8),
            (br#"[{"value": 1}, {"value": "x"}]"#, RejectReason::Schema),
            (br#"{"signal": "s"}"#, RejectReason::Schema),
            (br#"{"value": 1, "quality": "meh"}"#, RejectReason::Schema),
            (
                br#"{"value": 1, "time": "yesterday"}"#,
                RejectReason::Schema,
            ),
        ];
        for (p, want) in cases {
            let e = d
                .decode(tm(Some("A"), Some("s")), p, 0, &mut out)
                .unwrap_err();
            assert_eq!(e.reason, *want, "{:?}: {e}", String::from_utf8_lossy(p));
        }
        assert!(out.is_empty());
        let e = d
            .decode(tm(None, Some("s")), br#"{"value": 1}"#, 0, &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("no asset"), "{e}");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2024-02-29T14:00:00.5+02:00"),
            Some(1_709_208_000_500_000_000)
        );
        assert_eq!(parse_rfc3339_ns("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ns("2024-01-01 00:00:00"), None);
    }

    proptest::proptest! {
        #[test]
        fn json_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let mut d = dec(PayloadFormat::Json);
            let _ = d.decode(tm(Some("a"), Some("b")), &bytes, 0, &mut vec![]);
        }
        #[test]
        fn json_value_round_trips(v in proptest::num::f64::NORMAL, ts in 0i64..4_000_000_000_000) {
            let mut d = dec(PayloadFormat::Json);
            let mut out = vec![];
            let p = format!(r#"{{"asset":"a","signal":"b","value":{v:?},"ts_ms":{ts}}}"#);
            d.decode(tm(None, None), p.as_bytes(), 0, &mut out).unwrap();
            proptest::prop_assert_eq!(out[0].value, v);
            proptest::prop_assert_eq!(out[0].ts_ns, ts * 1_000_000);
        }
    }
}
