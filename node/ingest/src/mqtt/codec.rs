//! Payload codecs: JSON and InfluxDB line protocol to readings.
//!
//! A message is accepted whole or rejected whole: when any part of it is bad, no reading of it
//! is produced and the error says which part and why. Decoding is pure (the receive time is
//! passed in) and allocation-light: asset and signal names are interned per subscription.
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
//!
//! # Line protocol
//! `measurement[,tag=v…] field=v[,field=v…] [timestamp]`: each numeric field (float, `i`/`u`
//! integer, boolean as 1/0) is a reading whose signal is the field key; the asset is the `asset`
//! tag, else the topic's `{asset}`, else the subscription's `asset`, else the measurement; the
//! `unit` tag sets the unit. String fields are skipped. Timestamps are in the subscription's
//! `precision` (default ns).

use crate::metrics::RejectReason;
use millwright_core::{Quality, Reading, SensorId, Unit};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::topic::TopicMatch;

/// How a subscription's payloads are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// JSON (see the module docs for the schema).
    #[default]
    Json,
    /// InfluxDB line protocol, one or more lines.
    LineProtocol,
}

/// Timestamp unit of line-protocol payloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Nanoseconds (InfluxDB's default).
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl Precision {
    fn to_ns(self, v: i64) -> Option<i64> {
        match self {
            Precision::Ns => Some(v),
            Precision::Us => v.checked_mul(1_000),
            Precision::Ms => v.checked_mul(1_000_000),
            Precision::S => v.checked_mul(1_000_000_000),
        }
    }
}

/// Why a payload was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason_text}: {detail}")]
pub struct DecodeError {
    /// Counter category.
    pub reason: RejectReason,
    reason_text: &'static str,
    /// What exactly was wrong and where (e.g. `element 3: field "value": invalid type`).
    pub detail: String,
}

impl DecodeError {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        let reason_text = match reason {
            RejectReason::InvalidUtf8 => "invalid UTF-8",
            RejectReason::Syntax => "syntax error",
            RejectReason::Schema => "wrong shape",
            RejectReason::NonFinite => "value not a finite number",
            RejectReason::TooLarge => "payload too large",
            RejectReason::UnknownTopic => "unknown topic",
            RejectReason::Dropped => "dropped",
        };
        Self {
            reason,
            reason_text,
            detail: detail.into(),
        }
    }
}

/// Static context of one subscription that the decoder applies to every message.
#[derive(Clone, Debug, Default)]
pub struct DecodeDefaults {
    /// Asset when neither payload nor topic names one.
    pub asset: Option<String>,
    /// Signal when neither payload nor topic names one.
    pub signal: Option<String>,
    /// Unit when the payload names none.
    pub unit: Option<String>,
    /// Line-protocol timestamp precision.
    pub precision: Precision,
    /// Largest accepted payload in bytes.
    pub max_payload_bytes: usize,
}

/// Decodes payloads of one subscription, interning names so readings share their strings.
#[derive(Debug)]
pub struct Decoder {
    format: PayloadFormat,
    defaults: DecodeDefaults,
    names: HashMap<Box<str>, Arc<str>>,
    units: HashMap<Box<str>, Unit>,
    default_unit: Unit,
}

/// Interned names are capped so a publisher inventing names cannot grow memory without bound.
const MAX_INTERNED: usize = 65_536;

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
    /// A decoder for one subscription.
    pub fn new(format: PayloadFormat, defaults: DecodeDefaults) -> Self {
        let default_unit = defaults
            .unit
            .as_deref()
            .map(Unit::new)
            .unwrap_or_else(Unit::none);
        Self {
            format,
            defaults,
            names: HashMap::new(),
            units: HashMap::new(),
            default_unit,
        }
    }

    fn name(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        if self.names.len() >= MAX_INTERNED {
            self.names.clear();
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(Box::from(s), a.clone());
        a
    }

    fn unit(&mut self, s: Option<&str>) -> Unit {
        match s {
            None => self.default_unit.clone(),
            Some(s) => {
                if let Some(u) = self.units.get(s) {
                    return u.clone();
                }
                if self.units.len() >= MAX_INTERNED {
                    self.units.clear();
                }
                let u = Unit::new(s);
                self.units.insert(Box::from(s), u.clone());
                u
            }
        }
    }

    /// Decodes one payload, appending its readings to `out`. On error `out` is left as it was.
    pub fn decode(
        &mut self,
        topic: TopicMatch<'_>,
        payload: &[u8],
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<usize, DecodeError> {
        if payload.len() > self.defaults.max_payload_bytes {
            return Err(DecodeError::new(
                RejectReason::TooLarge,
                format!(
                    "{} bytes, limit is max_payload_bytes = {}",
                    payload.len(),
                    self.defaults.max_payload_bytes
                ),
            ));
        }
        let start = out.len();
        let res = match self.format {
            PayloadFormat::Json => self.decode_json(topic, payload, now_ns, out),
            PayloadFormat::LineProtocol => self.decode_line_protocol(topic, payload, now_ns, out),
        };
        match res {
            Ok(()) => Ok(out.len() - start),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    fn decode_json(
        &mut self,
        topic: TopicMatch<'_>,
        payload: &[u8],
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), DecodeError> {
        if std::str::from_utf8(payload).is_err() {
            let at = std::str::from_utf8(payload)
                .err()
                .map(|e| e.valid_up_to())
                .unwrap_or(0);
            return Err(DecodeError::new(
                RejectReason::InvalidUtf8,
                format!("at byte {at}"),
            ));
        }
        let first = payload.iter().find(|b| !b.is_ascii_whitespace()).copied();
        match first {
            Some(b'[') => {
                let items: Vec<JsonObj<'_>> =
                    serde_json::from_slice(payload).map_err(|e| json_err(&e, payload))?;
                if items.is_empty() {
                    return Err(DecodeError::new(RejectReason::Schema, "empty array"));
                }
                out.reserve(items.len());
                for (i, obj) in items.into_iter().enumerate() {
                    self.json_obj(topic, obj, now_ns, out).map_err(|e| {
                        DecodeError::new(e.reason, format!("element {i}: {}", e.detail))
                    })?;
                }
                Ok(())
            }
            Some(b'{') => {
                let obj: JsonObj<'_> =
                    serde_json::from_slice(payload).map_err(|e| json_err(&e, payload))?;
                self.json_obj(topic, obj, now_ns, out)
            }
            Some(_) => Err(DecodeError::new(
                RejectReason::Syntax,
                "expected a JSON object or array",
            )),
            None => Err(DecodeError::new(RejectReason::Syntax, "empty payload")),
        }
    }

    fn json_obj(
        &mut self,
        topic: TopicMatch<'_>,
        obj: JsonObj<'_>,
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), DecodeError> {
        let ts_ns = json_time(&obj)?.unwrap_or(now_ns);
        let quality = match obj.quality.as_deref() {
            None => Quality::Good,
            Some(q) => Quality::parse(q).ok_or_else(|| {
                DecodeError::new(
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
                DecodeError::new(
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
                        DecodeError::new(
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
                    return Err(DecodeError::new(
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
            (Some(_), Some(_)) => Err(DecodeError::new(
                RejectReason::Schema,
                "both \"value\" and \"fields\": use one",
            )),
            (None, None) => Err(DecodeError::new(
                RejectReason::Schema,
                "missing \"value\" (or \"fields\")",
            )),
        }
    }

    fn decode_line_protocol(
        &mut self,
        topic: TopicMatch<'_>,
        payload: &[u8],
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(payload).map_err(|e| {
            DecodeError::new(
                RejectReason::InvalidUtf8,
                format!("at byte {}", e.valid_up_to()),
            )
        })?;
        let mut any = false;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            any = true;
            self.lp_line(topic, line, now_ns, out)
                .map_err(|e| DecodeError::new(e.reason, format!("line {}: {}", n + 1, e.detail)))?;
        }
        if !any {
            return Err(DecodeError::new(RejectReason::Syntax, "no lines"));
        }
        Ok(())
    }

    fn lp_line(
        &mut self,
        topic: TopicMatch<'_>,
        line: &str,
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), DecodeError> {
        let syntax = |d: &str| DecodeError::new(RejectReason::Syntax, d.to_string());
        let parts = split_unescaped(line, ' ', true);
        if parts.len() < 2 || parts.len() > 3 {
            return Err(syntax("expected `measurement[,tags] fields [timestamp]`"));
        }
        let head = split_unescaped(parts[0], ',', false);
        let measurement = unescape(head[0]);
        if measurement.is_empty() {
            return Err(syntax("empty measurement"));
        }
        let mut tag_asset = None;
        let mut tag_unit = None;
        for t in &head[1..] {
            let kv = split_unescaped(t, '=', false);
            if kv.len() != 2 || kv[0].is_empty() || kv[1].is_empty() {
                return Err(syntax(&format!("bad tag `{t}`")));
            }
            match kv[0] {
                "asset" => tag_asset = Some(unescape(kv[1])),
                "unit" => tag_unit = Some(unescape(kv[1])),
                _ => {}
            }
        }
        let ts_ns = match parts.get(2) {
            None => now_ns,
            Some(t) => {
                let v: i64 = t
                    .parse()
                    .map_err(|_| syntax(&format!("bad timestamp `{t}`")))?;
                self.defaults.precision.to_ns(v).ok_or_else(|| {
                    DecodeError::new(
                        RejectReason::NonFinite,
                        format!("timestamp `{t}` overflows"),
                    )
                })?
            }
        };
        let asset_name = tag_asset
            .or_else(|| topic.asset.map(Cow::Borrowed))
            .or_else(|| self.defaults.asset.clone().map(Cow::Owned))
            .unwrap_or(measurement);
        let asset = self.name(&asset_name);
        let unit = self.unit(tag_unit.as_deref());
        let mut n = 0;
        for f in split_unescaped(parts[1], ',', true) {
            let kv = split_unescaped(f, '=', true);
            if kv.len() != 2 || kv[0].is_empty() || kv[1].is_empty() {
                return Err(syntax(&format!("bad field `{f}`")));
            }
            let key = unescape(kv[0]);
            let raw = kv[1];
            let value = if raw.starts_with('"') {
                if raw.len() < 2 || !raw.ends_with('"') {
                    return Err(syntax(&format!("unterminated string in field `{key}`")));
                }
                continue; // string fields carry no measurement
            } else if let Some(i) = raw.strip_suffix('i') {
                i.parse::<i64>().map(|v| v as f64).map_err(|_| {
                    DecodeError::new(
                        RejectReason::Schema,
                        format!("field `{key}`: bad integer `{raw}`"),
                    )
                })?
            } else if let Some(u) = raw.strip_suffix('u') {
                u.parse::<u64>().map(|v| v as f64).map_err(|_| {
                    DecodeError::new(
                        RejectReason::Schema,
                        format!("field `{key}`: bad unsigned integer `{raw}`"),
                    )
                })?
            } else {
                match raw {
                    "t" | "T" | "true" | "True" | "TRUE" => 1.0,
                    "f" | "F" | "false" | "False" | "FALSE" => 0.0,
                    _ => {
                        let v: f64 = raw.parse().map_err(|_| {
                            DecodeError::new(
                                RejectReason::Schema,
                                format!("field `{key}`: `{raw}` is not a number"),
                            )
                        })?;
                        check_finite(v, &key)?;
                        v
                    }
                }
            };
            let signal = self.name(&key);
            out.push(Reading {
                sensor: SensorId {
                    asset: asset.clone(),
                    signal,
                },
                ts_ns,
                value,
                unit: unit.clone(),
                quality: Quality::Good,
            });
            n += 1;
        }
        if n == 0 {
            return Err(DecodeError::new(
                RejectReason::Schema,
                "no numeric field".to_string(),
            ));
        }
        Ok(())
    }
}

fn check_finite(v: f64, what: &str) -> Result<(), DecodeError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(DecodeError::new(
            RejectReason::NonFinite,
            format!("`{what}` is {v}"),
        ))
    }
}

fn json_err(e: &serde_json::Error, payload: &[u8]) -> DecodeError {
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
    DecodeError::new(reason, msg)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn json_time(obj: &JsonObj<'_>) -> Result<Option<i64>, DecodeError> {
    let overflow =
        |k: &str| DecodeError::new(RejectReason::NonFinite, format!("\"{k}\" out of range"));
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
            DecodeError::new(
                RejectReason::Schema,
                format!("\"time\": `{t}` is not an RFC 3339 timestamp"),
            )
        });
    }
    Ok(None)
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00.123Z`, `…+02:00`) to ns since the epoch.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':'
        || b[16] != b':'
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || se > 60
    {
        return None;
    }
    let mut i = 19;
    let mut frac_ns: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(st..i)?;
        if digits.is_empty() {
            return None;
        }
        let mut padded: String = digits.chars().take(9).collect();
        while padded.len() < 9 {
            padded.push('0');
        }
        frac_ns = padded.parse().ok()?;
    }
    let offset_s: i64 = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 3600 + om * 60;
            if *c == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Splits on `sep` outside backslash escapes (and, if `quotes`, outside double quotes).
fn split_unescaped(s: &str, sep: char, quotes: bool) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut esc = false;
    let mut inq = false;
    for (i, c) in s.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '"' if quotes => inq = !inq,
            c if c == sep && !inq => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    if sep == ' ' {
        parts.retain(|p| !p.is_empty());
    }
    parts
}

fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                o.push(n);
            }
        } else {
            o.push(c);
        }
    }
    Cow::Owned(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(format: PayloadFormat) -> Decoder {
        Decoder::new(
            format,
            DecodeDefaults {
                max_payload_bytes: 1 << 20,
                ..Default::default()
            },
        )
    }
    fn tm<'a>(a: Option<&'a str>, s: Option<&'a str>) -> TopicMatch<'a> {
        TopicMatch {
            asset: a,
            signal: s,
        }
    }

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
    fn too_large_is_rejected_before_parsing() {
        let mut d = Decoder::new(
            PayloadFormat::Json,
            DecodeDefaults {
                max_payload_bytes: 10,
                ..Default::default()
            },
        );
        let e = d
            .decode(tm(None, None), &[b' '; 11], 0, &mut vec![])
            .unwrap_err();
        assert_eq!(e.reason, RejectReason::TooLarge);
    }

    #[test]
    fn line_protocol() {
        let mut d = dec(PayloadFormat::LineProtocol);
        let mut out = vec![];
        let p = b"pump,asset=P-101,unit=bar discharge=4.5,count=3i,on=t,label=\"x y\" 1700000000000000000\nmotor speed=1480 1700000000000000001\n";
        assert_eq!(d.decode(tm(None, None), p, 0, &mut out).unwrap(), 4);
        assert_eq!(&*out[0].sensor.asset, "P-101");
        assert_eq!(&*out[0].sensor.signal, "discharge");
        assert_eq!(out[0].unit.symbol(), "bar");
        assert_eq!((out[1].value, out[2].value), (3.0, 1.0));
        assert_eq!(&*out[3].sensor.asset, "motor");
        assert_eq!(out[3].ts_ns, 1_700_000_000_000_000_001);
        for bad in [
            &b"m"[..],
            b"m f=abc",
            b"m f=1 notatime",
            b"m f=NaN",
            b"m,t f=1",
            b"m s=\"x\"",
        ] {
            assert!(
                d.decode(tm(None, None), bad, 0, &mut out).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(out.len(), 4);
        let mut e = Decoder::new(
            PayloadFormat::LineProtocol,
            DecodeDefaults {
                max_payload_bytes: 100,
                precision: Precision::Ms,
                ..Default::default()
            },
        );
        e.decode(tm(None, None), br"m\ x,asset=a\,b v=1 5", 0, &mut out)
            .unwrap();
        assert_eq!(
            (&*out[4].sensor.asset, &*out[4].sensor.signal, out[4].ts_ns),
            ("a,b", "v", 5_000_000)
        );
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
        fn lp_never_panics(s in "\\PC{0,200}") {
            let mut d = dec(PayloadFormat::LineProtocol);
            let _ = d.decode(tm(None, None), s.as_bytes(), 0, &mut vec![]);
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
