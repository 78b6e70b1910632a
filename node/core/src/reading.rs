//! Readings and sensor identity: what flows down the reading bus.
//!
//! A [`Reading`] is one value of one sensor at one instant. Time is nanoseconds since the Unix
//! epoch (UTC) and always comes from the source (device, payload) or, failing that, from the
//! moment the node received it — never from a later stage.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Identifies a sensor as `asset` + `signal`, e.g. `P-101` / `bearing_temp_c`.
///
/// Both parts are reference-counted so cloning a reading on the hot path does not allocate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SensorId {
    /// The machine or asset tag, e.g. `P-101`.
    pub asset: Arc<str>,
    /// The measured quantity on that asset, e.g. `bearing_temp_c`.
    pub signal: Arc<str>,
}

impl SensorId {
    /// Builds a sensor id from an asset and a signal name.
    pub fn new(asset: impl Into<Arc<str>>, signal: impl Into<Arc<str>>) -> Self {
        Self {
            asset: asset.into(),
            signal: signal.into(),
        }
    }
}

impl fmt::Display for SensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.asset, self.signal)
    }
}

/// Engineering unit as its usual symbol (`°C`, `mm/s`, `bar`, `m³/h`, `A`, `rpm`, `%`).
///
/// An empty unit means dimensionless or unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unit(pub Arc<str>);

impl Unit {
    /// A unit from its symbol.
    pub fn new(symbol: impl Into<Arc<str>>) -> Self {
        Self(symbol.into())
    }
    /// No unit.
    pub fn none() -> Self {
        Self(Arc::from(""))
    }
    /// The symbol, e.g. `°C`.
    pub fn symbol(&self) -> &str {
        &self.0
    }
    /// True when no unit is known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far a value can be trusted (OPC UA-style good / uncertain / bad).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// The value was measured and is believed correct.
    #[default]
    Good,
    /// The value exists but may be wrong (sensor out of range, stale, substituted).
    Uncertain,
    /// The value must not be used as a measurement (device error, exception, offline).
    Bad,
}

impl Quality {
    /// Lower-case name as written to sinks: `good`, `uncertain`, `bad`.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Uncertain => "uncertain",
            Quality::Bad => "bad",
        }
    }
    /// Parses `good`/`uncertain`/`bad` (case-insensitive), also OPC-style `ok`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "good" | "ok" => Some(Quality::Good),
            "uncertain" => Some(Quality::Uncertain),
            "bad" => Some(Quality::Bad),
            _ => None,
        }
    }
}

/// One value of one sensor at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Which sensor.
    pub sensor: SensorId,
    /// Nanoseconds since the Unix epoch, UTC.
    pub ts_ns: i64,
    /// The value in `unit`.
    pub value: f64,
    /// Engineering unit of `value`.
    pub unit: Unit,
    /// Whether the value can be trusted.
    pub quality: Quality,
}

impl Reading {
    /// A good-quality reading.
    pub fn new(sensor: SensorId, ts_ns: i64, value: f64, unit: Unit) -> Self {
        Self {
            sensor,
            ts_ns,
            value,
            unit,
            quality: Quality::Good,
        }
    }
}

/// Readings handed down the bus together (one MQTT message, one Modbus poll).
pub type Batch = Vec<Reading>;

/// Normal operating range and hard limits of a sensor, in its unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Lowest plausible / allowed value.
    pub min: Option<f64>,
    /// Highest plausible / allowed value.
    pub max: Option<f64>,
}

impl Limits {
    /// True when `v` lies inside the limits that are set.
    pub fn contains(&self, v: f64) -> bool {
        self.min.is_none_or(|lo| v >= lo) && self.max.is_none_or(|hi| v <= hi)
    }
}

/// What the node knows about a sensor besides its readings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorMeta {
    /// Which sensor.
    pub sensor: SensorId,
    /// Engineering unit.
    pub unit: Unit,
    /// Limits from the asset profile or config.
    pub limits: Limits,
    /// Free-text description for people.
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_round_trips() {
        for q in [Quality::Good, Quality::Uncertain, Quality::Bad] {
            assert_eq!(Quality::parse(q.as_str()), Some(q));
        }
        assert_eq!(Quality::parse("OK"), Some(Quality::Good));
        assert_eq!(Quality::parse("meh"), None);
    }

    #[test]
    fn limits_contain() {
        let l = Limits {
            min: Some(0.0),
            max: Some(10.0),
        };
        assert!(l.contains(0.0) && l.contains(10.0));
        assert!(!l.contains(-0.1) && !l.contains(10.1));
        assert!(Limits::default().contains(f64::MAX));
    }

    #[test]
    fn reading_serialises_with_lowercase_quality() {
        let r = Reading::new(SensorId::new("P-101", "temp_c"), 5, 1.5, Unit::new("°C"));
        let j = serde_json::to_string(&r).unwrap();
        assert!(j.contains("\"quality\":\"good\""), "{j}");
        assert_eq!(SensorId::new("a", "b").to_string(), "a/b");
    }
}
