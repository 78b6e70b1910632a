//! Mapped JSON (`format = "json"` with `[mqtt.subscriptions.json]`): payloads whose keys
//! someone else chose (Tasmota, Shelly, Zigbee2MQTT, ESPHome, vendor gateways).
//!
//! The mapping says where things are, as simple paths: `$` is the record, `.key` or
//! `["key"]` goes into an object, `[n]` into an array (`$.data[0].val`, `$["switch:0"].apower`).
//! - `records`: an array of records (else the payload is one record; a top-level array is a
//!   list of records).
//! - `value` (one reading per record) or `fields` (an object whose numeric leaves are readings,
//!   nested objects flattened as `outer.inner`; booleans are 0/1; strings, nulls and arrays are
//!   left out, as are keys listed in `skip`). Exactly one of the two.
//! - `time` with `time_format`: `unix_s`, `unix_ms`, `unix_us`, `unix_ns`, `rfc3339`, or a
//!   strftime pattern (`%Y-%m-%dT%H:%M:%S`); default: numbers are `unix_ms`, strings
//!   `rfc3339`. `timezone` (`UTC`, `+01:00`) applies to times that carry no offset. Without
//!   `time`, the receive time.
//! - `asset`, `signal`, `unit`: paths to strings (else the topic's `{asset}`/`{signal}`, else
//!   the subscription's `asset`/`signal`/`unit`); `units`: an object of field → unit.
//!
//! A configured path that matches nothing rejects the message as `no_match`, naming the path
//! and the keys that were there; a value of the wrong type is `schema`. Nothing else lives
//! here: the node's own JSON schema is `json.rs`, the paths are `path.rs`.

mod path;

use super::{check_finite, Decoder, PayloadError};
use crate::metrics::RejectReason;
use crate::mqtt::topic::TopicMatch;
use millwright_core::time::{parse_rfc3339_lenient_ns, parse_rfc3339_ns};
use millwright_core::{Quality, Reading, SensorId, ValidationError};
use path::{kind, parse_path, Path};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// `[mqtt.subscriptions.json]`: where the readings are in a payload.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonMapping {
    /// Path of an array of records (optional).
    #[serde(default)]
    pub records: Option<String>,
    /// Path of the value (one reading per record).
    #[serde(default)]
    pub value: Option<String>,
    /// Path of an object of signal → number (one reading per numeric leaf).
    #[serde(default)]
    pub fields: Option<String>,
    /// Path of an object of signal → unit, for `fields`.
    #[serde(default)]
    pub units: Option<String>,
    /// Path of the timestamp.
    #[serde(default)]
    pub time: Option<String>,
    /// `unix_s`, `unix_ms`, `unix_us`, `unix_ns`, `rfc3339` or a strftime pattern.
    #[serde(default)]
    pub time_format: Option<String>,
    /// Offset of times without one: `UTC` (default) or `±hh:mm`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Path of the asset name.
    #[serde(default)]
    pub asset: Option<String>,
    /// Path of the signal name (with `value`).
    #[serde(default)]
    pub signal: Option<String>,
    /// Path of the unit.
    #[serde(default)]
    pub unit: Option<String>,
    /// Field names (leaf keys or dotted names) `fields` leaves out.
    #[serde(default)]
    pub skip: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum TimeFormat {
    Auto,
    Unix(i64),
    Rfc3339,
    Pattern(String),
}

/// A mapping checked and ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Compiled {
    records: Option<Path>,
    value: Option<Path>,
    fields: Option<Path>,
    units: Option<Path>,
    time: Option<Path>,
    time_format: TimeFormat,
    offset_s: i64,
    asset: Option<Path>,
    signal: Option<Path>,
    unit: Option<Path>,
    skip: BTreeSet<String>,
}

fn parse_offset(tz: &str) -> Option<i64> {
    if matches!(tz, "UTC" | "utc" | "Z" | "z" | "GMT") {
        return Some(0);
    }
    let (sign, rest) = match tz.as_bytes().first()? {
        b'+' => (1, &tz[1..]),
        b'-' => (-1, &tz[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => (&rest[..2], &rest[2..]),
        None => (rest, "0"),
    };
    let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
    (h <= 18 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

impl JsonMapping {
    /// Checks the mapping; every problem as (key, message).
    pub(crate) fn compile(&self) -> Result<Compiled, Vec<(&'static str, String)>> {
        let mut errs = Vec::new();
        let mut path = |key: &'static str, p: &Option<String>| match p {
            None => None,
            Some(p) => match parse_path(p) {
                Ok(p) => Some(p),
                Err(e) => {
                    errs.push((key, e));
                    None
                }
            },
        };
        let records = path("records", &self.records);
        let value = path("value", &self.value);
        let fields = path("fields", &self.fields);
        let units = path("units", &self.units);
        let time = path("time", &self.time);
        let asset = path("asset", &self.asset);
        let signal = path("signal", &self.signal);
        let unit = path("unit", &self.unit);
        match (&self.value, &self.fields) {
            (None, None) => errs.push((
                "value",
                "the mapping needs `value` (one reading) or `fields` (an object of readings)"
                    .into(),
            )),
            (Some(_), Some(_)) => {
                errs.push(("fields", "give `value` or `fields`, not both".into()))
            }
            _ => {}
        }
        if self.units.is_some() && self.fields.is_none() {
            errs.push(("units", "only applies with `fields`".into()));
        }
        if self.signal.is_some() && self.fields.is_some() {
            errs.push((
                "signal",
                "with `fields` the signals are the field names".into(),
            ));
        }
        let time_format = match self.time_format.as_deref() {
            None => TimeFormat::Auto,
            Some("unix_s") => TimeFormat::Unix(1_000_000_000),
            Some("unix_ms") => TimeFormat::Unix(1_000_000),
            Some("unix_us") => TimeFormat::Unix(1_000),
            Some("unix_ns") => TimeFormat::Unix(1),
            Some("rfc3339") => TimeFormat::Rfc3339,
            Some(p) if p.contains('%') => {
                use chrono::format::{Item, StrftimeItems};
                if StrftimeItems::new(p).any(|i| matches!(i, Item::Error)) {
                    errs.push((
                        "time_format",
                        format!("`{p}` is not a valid strftime pattern"),
                    ));
                }
                TimeFormat::Pattern(p.to_string())
            }
            Some(p) => {
                errs.push((
                    "time_format",
                    format!(
                        "`{p}` is not unix_s, unix_ms, unix_us, unix_ns, rfc3339 or a strftime pattern"
                    ),
                ));
                TimeFormat::Auto
            }
        };
        if self.time_format.is_some() && self.time.is_none() {
            errs.push(("time_format", "set, but no `time` path".into()));
        }
        let offset_s = match self.timezone.as_deref() {
            None => 0,
            Some(tz) => parse_offset(tz).unwrap_or_else(|| {
                errs.push((
                    "timezone",
                    format!("`{tz}` is not UTC or a fixed offset like +01:00 (no zone database on the node)"),
                ));
                0
            }),
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Compiled {
            records,
            value,
            fields,
            units,
            time,
            time_format,
            offset_s,
            asset,
            signal,
            unit,
            skip: self.skip.iter().cloned().collect(),
        })
    }

    /// Problems of this mapping, paths under `prefix` (e.g. `mqtt.subscriptions[0].json`).
    pub fn validate(&self, prefix: &str) -> Vec<ValidationError> {
        match self.compile() {
            Ok(_) => Vec::new(),
            Err(errs) => errs
                .into_iter()
                .map(|(k, m)| ValidationError::new(format!("{prefix}.{k}"), m))
                .collect(),
        }
    }
}

impl Compiled {
    fn time_of(&self, v: &Value) -> Result<i64, PayloadError> {
        let path = self.time.as_ref().map(|p| p.text.as_str()).unwrap_or("$");
        let bad =
            |why: String| PayloadError::new(RejectReason::Schema, format!("time `{path}`: {why}"));
        let range = || {
            PayloadError::new(
                RejectReason::NonFinite,
                format!("time `{path}` out of range"),
            )
        };
        let unix = |x: f64, per: i64| -> Result<i64, PayloadError> {
            // Round to the µs for seconds (an f64 holds epoch seconds to ~0.2 µs).
            let ns = if per == 1_000_000_000 {
                (x * 1e6).round() * 1e3
            } else {
                (x * per as f64).round()
            };
            if ns.is_finite() && ns.abs() < 9.2e18 {
                Ok(ns as i64)
            } else {
                Err(range())
            }
        };
        let unix_int = |n: &serde_json::Number, per: i64| -> Result<i64, PayloadError> {
            match n.as_i64() {
                Some(i) => i.checked_mul(per).ok_or_else(range),
                None => unix(n.as_f64().unwrap_or(f64::NAN), per),
            }
        };
        match (&self.time_format, v) {
            (TimeFormat::Auto, Value::Number(n)) => unix_int(n, 1_000_000),
            (TimeFormat::Unix(per), Value::Number(n)) => unix_int(n, *per),
            (TimeFormat::Unix(per), Value::String(s)) => match s.trim().parse::<i64>() {
                Ok(i) => i.checked_mul(*per).ok_or_else(range),
                Err(_) => match s.trim().parse::<f64>() {
                    Ok(x) => unix(x, *per),
                    Err(_) => Err(bad(format!("`{s}` is not a number"))),
                },
            },
            (TimeFormat::Auto | TimeFormat::Rfc3339, Value::String(s)) => {
                if let Some(t) = parse_rfc3339_ns(s) {
                    return Ok(t);
                }
                let has_offset =
                    s.ends_with(['Z', 'z']) || s.get(11..).is_some_and(|t| t.contains(['+', '-']));
                match parse_rfc3339_lenient_ns(s) {
                    Some(t) if !has_offset => t
                        .checked_sub(self.offset_s.saturating_mul(1_000_000_000))
                        .ok_or_else(range),
                    _ => Err(bad(format!("`{s}` is not an RFC 3339 timestamp"))),
                }
            }
            (TimeFormat::Pattern(p), Value::String(s)) => self
                .pattern_time(p, s)
                .ok_or_else(|| bad(format!("`{s}` does not match the pattern `{p}`"))),
            (_, other) => Err(bad(format!("is {}, not a timestamp", kind(other)))),
        }
    }

    fn pattern_time(&self, p: &str, s: &str) -> Option<i64> {
        use chrono::{DateTime, NaiveDate, NaiveDateTime};
        if p.contains("z") && p.contains('%') {
            if let Ok(t) = DateTime::parse_from_str(s, p) {
                return t.timestamp_nanos_opt();
            }
        }
        let naive = NaiveDateTime::parse_from_str(s, p).ok().or_else(|| {
            NaiveDate::parse_from_str(s, p)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
        naive
            .and_utc()
            .timestamp_nanos_opt()?
            .checked_sub(self.offset_s.checked_mul(1_000_000_000)?)
    }
}

fn text_of(v: &Value, what: &str, path: &Path) -> Result<String, PayloadError> {
    match v {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(PayloadError::new(
            RejectReason::Schema,
            format!("{what} `{}` is {}, not a name", path.text, kind(other)),
        )),
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

impl Decoder {
    pub(super) fn decode_mapped(
        &mut self,
        topic: TopicMatch<'_>,
        payload: &[u8],
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), PayloadError> {
        let Some(map) = self.mapping.take() else {
            return self.decode_json(topic, payload, now_ns, out);
        };
        let res = self.mapped_payload(&map, topic, payload, now_ns, out);
        self.mapping = Some(map);
        res
    }

    fn mapped_payload(
        &mut self,
        map: &Compiled,
        topic: TopicMatch<'_>,
        payload: &[u8],
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), PayloadError> {
        if let Err(e) = std::str::from_utf8(payload) {
            return Err(PayloadError::new(
                RejectReason::InvalidUtf8,
                format!("at byte {}", e.valid_up_to()),
            ));
        }
        let root: Value =
            serde_json::from_slice(payload).map_err(|e| super::json::json_err(&e, payload))?;
        let records: Vec<&Value> = match &map.records {
            Some(p) => match p.get(&root)? {
                Value::Array(a) => a.iter().collect(),
                o @ Value::Object(_) => vec![o],
                other => {
                    return Err(PayloadError::new(
                        RejectReason::Schema,
                        format!("records `{}` is {}, not an array", p.text, kind(other)),
                    ))
                }
            },
            None => match &root {
                Value::Array(a) => a.iter().collect(),
                one => vec![one],
            },
        };
        if records.is_empty() {
            return Err(PayloadError::new(RejectReason::NoMatch, "no records"));
        }
        let many = records.len() > 1 || map.records.is_some();
        for (i, rec) in records.into_iter().enumerate() {
            self.mapped_record(map, topic, rec, now_ns, out)
                .map_err(|e| {
                    if many {
                        PayloadError::new(e.reason, format!("record {i}: {}", e.detail))
                    } else {
                        e
                    }
                })?;
        }
        Ok(())
    }

    fn mapped_record(
        &mut self,
        map: &Compiled,
        topic: TopicMatch<'_>,
        rec: &Value,
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), PayloadError> {
        let ts_ns = match &map.time {
            Some(p) => map.time_of(p.get(rec)?)?,
            None => now_ns,
        };
        let asset_name = match &map.asset {
            Some(p) => text_of(p.get(rec)?, "asset", p)?,
            None => topic
                .asset
                .or(self.defaults.asset.as_deref())
                .ok_or_else(|| {
                    PayloadError::new(
                        RejectReason::Schema,
                        "no asset: no `asset` path, and none in the topic or the subscription",
                    )
                })?
                .to_string(),
        };
        let asset = self.name(&asset_name);
        let unit_name = match &map.unit {
            Some(p) => Some(text_of(p.get(rec)?, "unit", p)?),
            None => None,
        };
        if let Some(vp) = &map.value {
            let v = vp.get(rec)?;
            let value = number_of(v).ok_or_else(|| {
                PayloadError::new(
                    RejectReason::Schema,
                    format!("value `{}` is {}, not a number", vp.text, kind(v)),
                )
            })?;
            check_finite(value, &vp.text)?;
            let sig = match &map.signal {
                Some(p) => text_of(p.get(rec)?, "signal", p)?,
                None => topic
                    .signal
                    .or(self.defaults.signal.as_deref())
                    .ok_or_else(|| {
                        PayloadError::new(
                            RejectReason::Schema,
                            "no signal: no `signal` path, and none in the topic or the subscription",
                        )
                    })?
                    .to_string(),
            };
            let signal = self.name(&sig);
            let unit = self.unit(unit_name.as_deref());
            out.push(Reading {
                sensor: SensorId { asset, signal },
                ts_ns,
                value,
                unit,
                quality: Quality::Good,
            });
            return Ok(());
        }
        let Some(fp) = &map.fields else {
            return Ok(());
        };
        let obj = fp.get(rec)?;
        let units = match &map.units {
            Some(p) => p.get(rec)?.as_object(),
            None => None,
        };
        let mut leaves = Vec::new();
        flatten(obj, &mut String::new(), &map.skip, &mut leaves, 0);
        if leaves.is_empty() {
            return Err(PayloadError::new(
                RejectReason::NoMatch,
                format!("fields `{}` ({}) holds no number", fp.text, kind(obj)),
            ));
        }
        let start = out.len();
        for (name, value) in leaves {
            if let Err(e) = check_finite(value, &name) {
                out.truncate(start);
                return Err(e);
            }
            let u = units
                .and_then(|m| m.get(&name))
                .and_then(Value::as_str)
                .or(unit_name.as_deref());
            let unit = self.unit(u);
            let signal = self.name(&name);
            out.push(Reading {
                sensor: SensorId {
                    asset: asset.clone(),
                    signal,
                },
                ts_ns,
                value,
                unit,
                quality: Quality::Good,
            });
        }
        Ok(())
    }
}

/// Numeric leaves of `v` as (dotted name, value); at most 8 levels deep.
fn flatten(
    v: &Value,
    prefix: &mut String,
    skip: &BTreeSet<String>,
    out: &mut Vec<(String, f64)>,
    depth: usize,
) {
    let Value::Object(m) = v else { return };
    for (k, val) in m {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(k);
        if !skip.contains(k.as_str()) && !skip.contains(prefix.as_str()) {
            match val {
                Value::Number(n) => {
                    if let Some(x) = n.as_f64() {
                        out.push((prefix.clone(), x));
                    }
                }
                Value::Bool(b) => out.push((prefix.clone(), f64::from(u8::from(*b)))),
                Value::Object(_) if depth < 8 => flatten(val, prefix, skip, out, depth + 1),
                _ => {}
            }
        }
        prefix.truncate(len);
    }
}

#[cfg(test)]
mod tests;
