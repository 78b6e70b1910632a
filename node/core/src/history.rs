//! Recent history as the readers of it see it: the [`History`] trait (what reports and answers
//! ask of the local store) and the plain data it answers with ([`Sample`], [`Stats`],
//! [`SensorHealth`]).
//!
//! Only the trait and data live here; the bounded in-memory store that implements it is
//! `millwright-store`. Nothing here does I/O or keeps state.

use crate::reading::{Quality, SensorId, Unit};
use serde::Serialize;

/// Signal name of a device's online status (defined in [`crate::schema`]).
pub use crate::schema::DEVICE_ONLINE_SIGNAL;

/// One stored sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Nanoseconds since the epoch.
    pub ts_ns: i64,
    /// Value in the sensor's unit.
    pub value: f64,
    /// Quality.
    pub quality: Quality,
}

/// Summary statistics of good samples in a time range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// Good samples in range.
    pub count: usize,
    /// Samples of uncertain or bad quality in range (not in the statistics).
    pub not_good: usize,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Latest good value and its time.
    pub last: f64,
    /// Time of `last`.
    pub last_ts_ns: i64,
    /// Time of the first good sample in range.
    pub first_ts_ns: i64,
    /// Value of the first good sample in range.
    pub first: f64,
}

/// Data-quality counters of one sensor.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SensorHealth {
    /// Readings received.
    pub total: u64,
    /// Readings of bad or uncertain quality.
    pub not_good: u64,
    /// Readings older than the latest one (stored in order anyway).
    pub out_of_order: u64,
    /// Largest gap between consecutive readings seen, in ns.
    pub largest_gap_ns: i64,
    /// Time of the latest reading.
    pub last_ts_ns: Option<i64>,
}

/// Read access to the recent history of every sensor.
///
/// Every answer is an owned value, so an implementation may take a lock per call.
pub trait History {
    /// Sensors of one asset, sorted.
    fn signals_of(&self, asset: &str) -> Vec<SensorId>;
    /// Unit last seen for a sensor.
    fn unit(&self, sensor: &SensorId) -> Option<Unit>;
    /// The latest sample of a sensor (any quality).
    fn last(&self, sensor: &SensorId) -> Option<Sample>;
    /// Statistics of good samples with `from_ns <= ts < to_ns`; `None` when there are none.
    fn stats(&self, sensor: &SensorId, from_ns: i64, to_ns: i64) -> Option<Stats>;
    /// Data-quality counters of a sensor.
    fn health(&self, sensor: &SensorId) -> Option<SensorHealth>;
}
