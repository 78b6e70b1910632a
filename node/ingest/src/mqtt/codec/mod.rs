//! Payload codecs: JSON (the node's schema or a configured mapping), InfluxDB line protocol
//! and Sparkplug B to readings.
//!
//! A message is accepted whole or rejected whole: when any part of it is bad, no reading of it
//! is produced and the error says which part and why. The exception is Sparkplug B, whose
//! metrics are independent: a metric that gives no number is skipped and counted
//! ([`DecodeTally`], taken with [`Decoder::take_tally`]) and the rest is used. Decoding is pure
//! (the receive time is passed in) and allocation-light: asset and signal names are interned
//! per subscription. Sparkplug B is stateful (birth tables, sequence numbers) and may ask the
//! source to publish a rebirth request ([`Decoder::take_outgoing`]).
//!
//! - this file: the formats, [`PayloadError`], the per-subscription [`Decoder`] (interning,
//!   size limit, all-or-nothing) and what the formats share.
//! - `json.rs`: the JSON schema (one reading, a field set, or an array of them).
//! - `mapped.rs`: JSON whose keys someone else chose, through `[mqtt.subscriptions.json]`.
//! - `line_protocol.rs`: InfluxDB line protocol.
//! - `sparkplug/`: Sparkplug B (the vendored `.proto`, its license, the prost messages).

mod json;
mod line_protocol;
pub mod mapped;
pub mod sparkplug;

pub use crate::metrics::DecodeTally;
use crate::metrics::{RejectReason, SkipReason};
use millwright_core::validate::DEFAULT_MAX_NAME_BYTES;
use millwright_core::{check_name, NameKind, Reading, TimeWindow, Unit};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

use super::topic::TopicMatch;

/// How a subscription's payloads are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// JSON (the schema is in the docs of `codec/json.rs`).
    #[default]
    Json,
    /// InfluxDB line protocol, one or more lines.
    LineProtocol,
    /// Sparkplug B protobuf on `spBv1.0/<group>/…` (see `codec/sparkplug/`).
    SparkplugB,
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
pub struct PayloadError {
    /// Counter category.
    pub reason: RejectReason,
    reason_text: &'static str,
    /// What exactly was wrong and where (e.g. `element 3: field "value": invalid type`).
    pub detail: String,
}

impl PayloadError {
    pub(crate) fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        let reason_text = match reason {
            RejectReason::InvalidUtf8 => "invalid UTF-8",
            RejectReason::Syntax => "syntax error",
            RejectReason::Schema => "wrong shape",
            RejectReason::NonFinite => "value not a finite number",
            RejectReason::TooLarge => "payload too large",
            RejectReason::UnknownTopic => "unknown topic",
            RejectReason::Dropped => "dropped",
            RejectReason::NoBirth => "no birth certificate",
            RejectReason::NoMatch => "mapping matched nothing",
            RejectReason::BadName => "bad name",
            RejectReason::BadTime => "time out of range",
        };
        Self {
            reason,
            reason_text,
            detail: detail.into(),
        }
    }
}

/// Static context of one subscription that the decoder applies to every message.
#[derive(Clone, Debug)]
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
    /// JSON mapping (`[mqtt.subscriptions.json]`); `None`: the node's own JSON schema.
    pub mapping: Option<mapped::JsonMapping>,
    /// Sparkplug B options (`[mqtt.subscriptions.sparkplug]`).
    pub sparkplug: sparkplug::SparkplugOptions,
    /// Longest asset or signal name accepted, in bytes.
    pub max_name_bytes: usize,
    /// How far from the node's clock a reading may be dated.
    pub time_window: TimeWindow,
    /// Most readings one message may give (a count cap on what one message puts on the bus).
    pub max_readings: usize,
}

impl Default for DecodeDefaults {
    fn default() -> Self {
        Self {
            asset: None,
            signal: None,
            unit: None,
            precision: Precision::default(),
            max_payload_bytes: 0,
            mapping: None,
            sparkplug: sparkplug::SparkplugOptions::default(),
            max_name_bytes: DEFAULT_MAX_NAME_BYTES,
            time_window: TimeWindow::unlimited(),
            max_readings: usize::MAX,
        }
    }
}

/// Decodes payloads of one subscription, interning names so readings share their strings.
#[derive(Debug)]
pub struct Decoder {
    format: PayloadFormat,
    defaults: DecodeDefaults,
    names: HashMap<Box<str>, Arc<str>>,
    units: HashMap<Box<str>, Unit>,
    default_unit: Unit,
    mapping: Option<mapped::Compiled>,
    spb: sparkplug::SpbState,
    tally: DecodeTally,
    outgoing: Vec<sparkplug::Outgoing>,
}

/// Interned names are capped so a publisher inventing names cannot grow memory without bound.
const MAX_INTERNED: usize = 65_536;

impl Decoder {
    /// A decoder for one subscription.
    pub fn new(format: PayloadFormat, defaults: DecodeDefaults) -> Self {
        let default_unit = defaults
            .unit
            .as_deref()
            .map(Unit::new)
            .unwrap_or_else(Unit::none);
        let mapping = defaults.mapping.as_ref().and_then(|m| m.compile().ok());
        Self {
            format,
            defaults,
            names: HashMap::new(),
            units: HashMap::new(),
            default_unit,
            mapping,
            spb: sparkplug::SpbState::default(),
            tally: DecodeTally::default(),
            outgoing: Vec::new(),
        }
    }

    /// What the messages decoded since the last call noticed besides their readings (skipped
    /// parts, Sparkplug B sequence gaps and rebirth requests); resets it.
    pub fn take_tally(&mut self) -> DecodeTally {
        std::mem::take(&mut self.tally)
    }

    /// Messages the source should publish (Sparkplug B rebirth requests); drains them.
    pub fn take_outgoing(&mut self) -> Vec<sparkplug::Outgoing> {
        std::mem::take(&mut self.outgoing)
    }

    /// The subscription's format.
    pub fn format(&self) -> PayloadFormat {
        self.format
    }

    fn name(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        if s.len() > self.defaults.max_name_bytes {
            // Refused after decoding (`check`); not interned, so long names cannot fill memory.
            return Arc::from(s);
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
                if s.len() > self.defaults.max_name_bytes {
                    // Refused after decoding (`check`); not interned.
                    return Unit::new(s);
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
    ) -> Result<usize, PayloadError> {
        if payload.len() > self.defaults.max_payload_bytes {
            return Err(PayloadError::new(
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
            PayloadFormat::Json if self.mapping.is_some() => {
                self.decode_mapped(topic, payload, now_ns, out)
            }
            PayloadFormat::Json => self.decode_json(topic, payload, now_ns, out),
            PayloadFormat::LineProtocol => self.decode_line_protocol(topic, payload, now_ns, out),
            PayloadFormat::SparkplugB => self.decode_sparkplug(topic, payload, now_ns, out),
        };
        let res = res.and_then(|()| {
            let n = out.len().saturating_sub(start);
            if n > self.defaults.max_readings {
                return Err(PayloadError::new(
                    RejectReason::TooLarge,
                    format!(
                        "{n} readings, limit is max_readings_per_message = {}",
                        self.defaults.max_readings
                    ),
                ));
            }
            self.check(out, start, now_ns)
        });
        match res {
            Ok(()) => Ok(out.len() - start),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Checks the names and times of the readings decoded from one message (`out[start..]`).
    /// A bad one rejects the whole message, except in Sparkplug B, whose metrics are
    /// independent: there it is dropped and counted as skipped.
    fn check(
        &mut self,
        out: &mut Vec<Reading>,
        start: usize,
        now_ns: i64,
    ) -> Result<(), PayloadError> {
        let max = self.defaults.max_name_bytes;
        let window = self.defaults.time_window;
        let problem = |r: &Reading| -> Option<PayloadError> {
            if let Err(p) = check_name(&r.sensor.asset, NameKind::Asset, max) {
                return Some(PayloadError::new(
                    RejectReason::BadName,
                    format!("asset `{}` {p}", shorten(&r.sensor.asset)),
                ));
            }
            if let Err(p) = check_name(&r.sensor.signal, NameKind::Signal, max) {
                return Some(PayloadError::new(
                    RejectReason::BadName,
                    format!(
                        "signal `{}` of asset `{}` {p}",
                        shorten(&r.sensor.signal),
                        shorten(&r.sensor.asset)
                    ),
                ));
            }
            let unit = r.unit.symbol();
            // A unit is a tag value only: any text the encoder escapes, but bounded and on one line.
            if unit.len() > max || unit.chars().any(char::is_control) {
                return Some(PayloadError::new(
                    RejectReason::BadName,
                    format!(
                        "unit `{}` of `{}` is longer than max_name_bytes = {max} or has a control character",
                        shorten(unit),
                        shorten(&r.sensor.signal)
                    ),
                ));
            }
            window.check(r.ts_ns, now_ns).err().map(|p| {
                PayloadError::new(
                    RejectReason::BadTime,
                    format!(
                        "reading of `{}/{}` {p}",
                        shorten(&r.sensor.asset),
                        shorten(&r.sensor.signal)
                    ),
                )
            })
        };
        if self.format != PayloadFormat::SparkplugB {
            return match out
                .get(start..)
                .unwrap_or_default()
                .iter()
                .find_map(problem)
            {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        let tail = out.split_off(start);
        for r in tail {
            match problem(&r) {
                Some(e) if e.reason == RejectReason::BadTime => {
                    self.tally.skip(SkipReason::BadTime)
                }
                Some(_) => self.tally.skip(SkipReason::BadName),
                None => out.push(r),
            }
        }
        Ok(())
    }
}

/// A name as shown in an error: control characters escaped, at most 64 characters.
fn shorten(s: &str) -> String {
    let mut o: String = s.chars().take(64).flat_map(char::escape_debug).collect();
    if s.chars().count() > 64 {
        o.push('…');
    }
    o
}

fn check_finite(v: f64, what: &str) -> Result<(), PayloadError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(PayloadError::new(
            RejectReason::NonFinite,
            format!("`{what}` is {v}"),
        ))
    }
}

#[cfg(test)]
mod testing {
    use super::*;

    pub(super) fn dec(format: PayloadFormat) -> Decoder {
        Decoder::new(
            format,
            DecodeDefaults {
                max_payload_bytes: 1 << 20,
                ..Default::default()
            },
        )
    }
    pub(super) fn tm<'a>(a: Option<&'a str>, s: Option<&'a str>) -> TopicMatch<'a> {
        TopicMatch {
            topic: "",
            asset: a,
            signal: s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::tm;
    use super::*;

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
}

#[cfg(test)]
mod hostile_tests;
