//! Local store: recent history per sensor in bounded memory, queryable by sensor and time range.
//!
//! Each sensor keeps a ring of `(ts_ns, value, quality)` samples covering at most `window_s`
//! seconds and at most `max_points_per_sensor` samples; the number of sensors is capped too, so
//! memory is bounded whatever the publishers send. The store keeps its own data-quality counters
//! (bad readings, out-of-order samples, gaps) that reports and answers draw on.
//!
//! It is synchronous and does no I/O; the node wraps it in a lock shared by the pipeline and the
//! readers (assistant, reports). Readers that need only history take it as
//! [`millwright_core::History`], which the store implements.

pub use millwright_core::history::{Sample, SensorHealth, Stats};
use millwright_core::{History, Quality, Reading, SensorId, Unit};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Local store settings (`[store]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// How much history to keep per sensor, in seconds.
    #[serde(default = "default_window_s")]
    pub window_s: u64,
    /// Most samples kept per sensor (oldest dropped first).
    #[serde(default = "default_max_points")]
    pub max_points_per_sensor: usize,
    /// Most sensors tracked; readings of further sensors are counted and not stored.
    #[serde(default = "default_max_sensors")]
    pub max_sensors: usize,
}

fn default_window_s() -> u64 {
    24 * 3600
}
fn default_max_points() -> usize {
    10_000
}
fn default_max_sensors() -> usize {
    1_000
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            window_s: default_window_s(),
            max_points_per_sensor: default_max_points(),
            max_sensors: default_max_sensors(),
        }
    }
}

impl StoreConfig {
    /// Every problem in this section.
    pub fn validate(&self, prefix: &str) -> Vec<millwright_core::ValidationError> {
        use millwright_core::ValidationError as E;
        let mut e = Vec::new();
        if self.window_s == 0 {
            e.push(E::new(format!("{prefix}.window_s"), "must be > 0"));
        }
        if !(2..=10_000_000).contains(&self.max_points_per_sensor) {
            e.push(E::new(
                format!("{prefix}.max_points_per_sensor"),
                "must be 2–10000000",
            ));
        }
        if self.max_sensors == 0 {
            e.push(E::new(format!("{prefix}.max_sensors"), "must be > 0"));
        }
        e
    }

    /// Upper bound of the memory the samples can take, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_sensors * self.max_points_per_sensor * std::mem::size_of::<Sample>()
    }
}

#[derive(Debug)]
struct Series {
    unit: Unit,
    samples: VecDeque<Sample>,
    total: u64,
    bad: u64,
    out_of_order: u64,
    largest_gap_ns: i64,
    /// Out-of-order samples in a row that landed just before the newest one.
    behind_newest: u32,
}

/// Samples that keep landing just before the newest one make it the odd one out (a reading
/// dated far ahead): after this many in a row it is dropped, so the sensor's history follows
/// the other readings again.
const RESYNC_AFTER: u32 = 3;
/// ... when the newest is at least this far ahead of them (ordinary reordering is kept).
const RESYNC_MIN_AHEAD_NS: i64 = 300 * 1_000_000_000;

/// Recent history of every sensor.
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    window_ns: i64,
    series: HashMap<SensorId, Series>,
    rejected_sensors: u64,
}

impl Store {
    /// An empty store.
    pub fn new(cfg: StoreConfig) -> Self {
        let window_ns = i64::try_from(cfg.window_s)
            .unwrap_or(i64::MAX / 1_000_000_000)
            .saturating_mul(1_000_000_000);
        Self {
            cfg,
            window_ns,
            series: HashMap::new(),
            rejected_sensors: 0,
        }
    }

    /// Adds readings. Returns how many were stored (the rest belong to sensors over the cap).
    pub fn insert(&mut self, readings: &[Reading]) -> usize {
        let mut stored = 0;
        for r in readings {
            if self.insert_one(r) {
                stored += 1;
            }
        }
        stored
    }

    fn insert_one(&mut self, r: &Reading) -> bool {
        let max_points = self.cfg.max_points_per_sensor;
        let window_ns = self.window_ns;
        let series = match self.series.get_mut(&r.sensor) {
            Some(s) => s,
            None => {
                if self.series.len() >= self.cfg.max_sensors {
                    self.rejected_sensors += 1;
                    return false;
                }
                self.series
                    .entry(r.sensor.clone())
                    .or_insert_with(|| Series {
                        unit: r.unit.clone(),
                        samples: VecDeque::new(),
                        total: 0,
                        bad: 0,
                        out_of_order: 0,
                        largest_gap_ns: 0,
                        behind_newest: 0,
                    })
            }
        };
        series.total += 1;
        if r.quality != Quality::Good {
            series.bad += 1;
        }
        if series.unit != r.unit && !r.unit.is_empty() {
            series.unit = r.unit.clone();
        }
        let s = Sample {
            ts_ns: r.ts_ns,
            value: r.value,
            quality: r.quality,
        };
        match series.samples.back() {
            Some(last) if last.ts_ns > r.ts_ns => {
                series.out_of_order += 1;
                let pos = series.samples.partition_point(|x| x.ts_ns <= r.ts_ns);
                let just_before_newest = pos + 1 == series.samples.len()
                    && last.ts_ns.saturating_sub(r.ts_ns) > RESYNC_MIN_AHEAD_NS;
                series.samples.insert(pos, s);
                series.behind_newest = if just_before_newest {
                    series.behind_newest + 1
                } else {
                    0
                };
                if series.behind_newest >= RESYNC_AFTER
                    && series.samples.len() > RESYNC_AFTER as usize
                {
                    series.samples.pop_back();
                    series.behind_newest = 0;
                }
            }
            Some(last) => {
                series.behind_newest = 0;
                series.largest_gap_ns = series
                    .largest_gap_ns
                    .max(r.ts_ns.saturating_sub(last.ts_ns));
                series.samples.push_back(s);
            }
            None => series.samples.push_back(s),
        }
        // A newest sample more than the window ahead of the one before it does not evict the
        // history by itself: it may be dated far ahead, which the next readings show.
        let n = series.samples.len();
        let at = |i: usize| series.samples.get(i).map(|x| x.ts_ns);
        let newest = match (at(n.wrapping_sub(1)), at(n.wrapping_sub(2))) {
            (Some(a), Some(b)) if a.saturating_sub(b) > window_ns => b,
            (Some(a), _) => a,
            _ => r.ts_ns,
        };
        let horizon = newest.saturating_sub(window_ns);
        while series.samples.len() > max_points
            || series.samples.front().is_some_and(|x| x.ts_ns < horizon)
        {
            series.samples.pop_front();
        }
        true
    }

    /// Sensors known to the store, sorted.
    pub fn sensors(&self) -> Vec<SensorId> {
        let mut v: Vec<SensorId> = self.series.keys().cloned().collect();
        v.sort();
        v
    }

    /// Sensors of one asset, sorted.
    pub fn signals_of(&self, asset: &str) -> Vec<SensorId> {
        let mut v: Vec<SensorId> = self
            .series
            .keys()
            .filter(|s| &*s.asset == asset)
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Unit last seen for a sensor.
    pub fn unit(&self, sensor: &SensorId) -> Option<&Unit> {
        self.series.get(sensor).map(|s| &s.unit)
    }

    /// The latest sample of a sensor (any quality).
    pub fn last(&self, sensor: &SensorId) -> Option<Sample> {
        self.series
            .get(sensor)
            .and_then(|s| s.samples.back().copied())
    }

    /// Samples of a sensor with `from_ns <= ts < to_ns`, oldest first.
    pub fn range(&self, sensor: &SensorId, from_ns: i64, to_ns: i64) -> Vec<Sample> {
        let Some(s) = self.series.get(sensor) else {
            return Vec::new();
        };
        let a = s.samples.partition_point(|x| x.ts_ns < from_ns);
        let b = s.samples.partition_point(|x| x.ts_ns < to_ns);
        s.samples.range(a..b).copied().collect()
    }

    /// Statistics of good samples with `from_ns <= ts < to_ns`; `None` when there are none.
    pub fn stats(&self, sensor: &SensorId, from_ns: i64, to_ns: i64) -> Option<Stats> {
        let s = self.series.get(sensor)?;
        let a = s.samples.partition_point(|x| x.ts_ns < from_ns);
        let b = s.samples.partition_point(|x| x.ts_ns < to_ns);
        let mut st: Option<Stats> = None;
        let mut not_good = 0;
        // Welford for a stable variance.
        let mut m2 = 0.0;
        for x in s.samples.range(a..b) {
            if x.quality != Quality::Good {
                not_good += 1;
                continue;
            }
            match &mut st {
                None => {
                    st = Some(Stats {
                        count: 1,
                        not_good: 0,
                        min: x.value,
                        max: x.value,
                        mean: x.value,
                        std: 0.0,
                        last: x.value,
                        last_ts_ns: x.ts_ns,
                        first_ts_ns: x.ts_ns,
                        first: x.value,
                    })
                }
                Some(t) => {
                    t.count += 1;
                    t.min = t.min.min(x.value);
                    t.max = t.max.max(x.value);
                    let d = x.value - t.mean;
                    t.mean += d / t.count as f64;
                    m2 += d * (x.value - t.mean);
                    t.last = x.value;
                    t.last_ts_ns = x.ts_ns;
                }
            }
        }
        st.map(|mut t| {
            t.not_good = not_good;
            t.std = (m2 / t.count as f64).sqrt();
            t
        })
    }

    /// Data-quality counters of a sensor.
    pub fn health(&self, sensor: &SensorId) -> Option<SensorHealth> {
        self.series.get(sensor).map(|s| SensorHealth {
            total: s.total,
            not_good: s.bad,
            out_of_order: s.out_of_order,
            largest_gap_ns: s.largest_gap_ns,
            last_ts_ns: s.samples.back().map(|x| x.ts_ns),
        })
    }

    /// Readings not stored because the sensor cap was reached.
    pub fn rejected_sensors(&self) -> u64 {
        self.rejected_sensors
    }

    /// Series (sensors) held now.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Most series kept (`max_sensors`).
    pub fn max_series(&self) -> usize {
        self.cfg.max_sensors
    }

    /// Samples held in memory now.
    pub fn len(&self) -> usize {
        self.series.values().map(|s| s.samples.len()).sum()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// The store answers reports and answers through the trait of `core` (owned values).
impl History for Store {
    fn signals_of(&self, asset: &str) -> Vec<SensorId> {
        Store::signals_of(self, asset)
    }
    fn unit(&self, sensor: &SensorId) -> Option<Unit> {
        Store::unit(self, sensor).cloned()
    }
    fn last(&self, sensor: &SensorId) -> Option<Sample> {
        Store::last(self, sensor)
    }
    fn stats(&self, sensor: &SensorId, from_ns: i64, to_ns: i64) -> Option<Stats> {
        Store::stats(self, sensor, from_ns, to_ns)
    }
    fn health(&self, sensor: &SensorId) -> Option<SensorHealth> {
        Store::health(self, sensor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_core::SensorId;

    fn r(sig: &str, ts: i64, v: f64) -> Reading {
        Reading::new(SensorId::new("A", sig), ts, v, Unit::new("°C"))
    }
    const S: i64 = 1_000_000_000;

    #[test]
    fn one_sample_dated_far_ahead_neither_evicts_nor_hides_the_history() {
        let cfg = StoreConfig {
            window_s: 3600,
            ..StoreConfig::default()
        };
        let mut st = Store::new(cfg);
        let t0 = 1_800_000_000 * S;
        for i in 0..100 {
            st.insert(&[r("t", t0 + i * S, i as f64)]);
        }
        // A publisher's clock ten hours ahead, once.
        st.insert(&[r("t", t0 + 36_000 * S, -1.0)]);
        let id = SensorId::new("A", "t");
        assert_eq!(
            st.range(&id, t0, t0 + 100 * S).len(),
            100,
            "history evicted"
        );
        for i in 100..110 {
            st.insert(&[r("t", t0 + i * S, i as f64)]);
        }
        assert_eq!(
            st.last(&id).map(|s| (s.ts_ns, s.value)),
            Some((t0 + 109 * S, 109.0))
        );
        assert_eq!(st.range(&id, t0, i64::MAX).len(), 110);
        // Ordinary reordering keeps every sample.
        let mut st = Store::new(StoreConfig::default());
        for ts in [10, 14, 11, 12, 13, 15] {
            st.insert(&[r("t", ts * S, 0.0)]);
        }
        assert_eq!(st.range(&id, 0, i64::MAX).len(), 6);
        // Extreme times do not overflow.
        for ts in [i64::MIN, i64::MAX, 0, i64::MIN] {
            st.insert(&[r("x", ts, 0.0)]);
        }
    }

    #[test]
    fn history_trait_answers_like_the_store() {
        let mut st = Store::new(StoreConfig::default());
        for i in 0..5 {
            st.insert(&[r("t", i * S, i as f64), r("p", i * S, 2.0)]);
        }
        let h: &dyn History = &st;
        let sigs = h.signals_of("A");
        assert_eq!(sigs.len(), 2);
        assert!(h.signals_of("B").is_empty());
        let id = SensorId::new("A", "t");
        assert_eq!(h.unit(&id), Some(Unit::new("°C")));
        assert_eq!(h.last(&id).map(|s| s.value), Some(4.0));
        assert_eq!(h.stats(&id, 0, i64::MAX), st.stats(&id, 0, i64::MAX));
        assert_eq!(h.health(&id).map(|x| x.total), Some(5));
    }

    #[test]
    fn stats_over_range() {
        let mut st = Store::new(StoreConfig::default());
        for i in 0..10 {
            st.insert(&[r("t", i * S, i as f64)]);
        }
        let mut bad = r("t", 10 * S, 1000.0);
        bad.quality = Quality::Bad;
        st.insert(&[bad]);
        let id = SensorId::new("A", "t");
        let s = st.stats(&id, 2 * S, 11 * S).unwrap();
        assert_eq!(
            (s.count, s.not_good, s.min, s.max, s.last),
            (8, 1, 2.0, 9.0, 9.0)
        );
        assert!((s.mean - 5.5).abs() < 1e-12);
        assert!((s.std - (5.25f64).sqrt()).abs() < 1e-12);
        assert!(st.stats(&id, 100 * S, 200 * S).is_none());
        assert_eq!(st.range(&id, 0, 3 * S).len(), 3);
        assert_eq!(st.health(&id).unwrap().not_good, 1);
    }

    #[test]
    fn memory_is_bounded_by_window_points_and_sensors() {
        let mut st = Store::new(StoreConfig {
            window_s: 10,
            max_points_per_sensor: 5,
            max_sensors: 2,
        });
        for i in 0..100 {
            st.insert(&[r("a", i * S, 1.0)]);
        }
        assert_eq!(st.len(), 5);
        let mut st = Store::new(StoreConfig {
            window_s: 10,
            max_points_per_sensor: 1000,
            max_sensors: 2,
        });
        for i in 0..100 {
            st.insert(&[r("a", i * S, 1.0)]);
        }
        assert_eq!(st.len(), 11); // 89..=99 inside the 10 s window
        st.insert(&[r("b", 0, 1.0)]);
        assert_eq!(st.insert(&[r("c", 0, 1.0)]), 0);
        assert_eq!(st.rejected_sensors(), 1);
    }

    #[test]
    fn out_of_order_is_kept_sorted() {
        let mut st = Store::new(StoreConfig::default());
        st.insert(&[r("a", 3 * S, 3.0), r("a", S, 1.0), r("a", 2 * S, 2.0)]);
        let id = SensorId::new("A", "a");
        let v: Vec<f64> = st.range(&id, 0, 10 * S).iter().map(|s| s.value).collect();
        assert_eq!(v, vec![1.0, 2.0, 3.0]);
        assert_eq!(st.health(&id).unwrap().out_of_order, 2);
    }

    proptest::proptest! {
        #[test]
        fn stats_match_naive(vals in proptest::collection::vec(-1e6f64..1e6, 1..200)) {
            let mut st = Store::new(StoreConfig::default());
            for (i, v) in vals.iter().enumerate() {
                st.insert(&[r("x", i as i64, *v)]);
            }
            let s = st.stats(&SensorId::new("A", "x"), 0, i64::MAX).unwrap();
            let n = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            proptest::prop_assert!((s.mean - mean).abs() < 1e-6);
            proptest::prop_assert!((s.std - var.sqrt()).abs() < 1e-6);
            proptest::prop_assert_eq!(s.count, vals.len());
        }
    }
}
