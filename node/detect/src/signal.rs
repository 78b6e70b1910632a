//! The univariate detector set of one signal, in one struct so a reading costs O(1) work and
//! no allocation: robust adaptive baseline (winsorised EWMA mean and mean absolute deviation
//! after a learning period) with level-shift and spike detection, two-sided CUSUM drift, rate of
//! change, flatline, gap, and hard limits / normal range.
//!
//! Every sub-detector turns its statistic into a score in `[0, 1]` with the same rule:
//! `score = min(1, statistic / threshold / 2)`, so 0.5 is exactly the detector's threshold.
//! The reading's score is the largest of them. Time comes from the readings only.

use crate::event::{EventTracker, Hysteresis};
use millwright_core::{
    Anomaly, AnomalyKind, Detector, Evidence, Limits, Phase, Quality, Reading, Resolution,
    SensorId, Unit,
};
use millwright_profile::{DetectDefaults, Profile, SignalSpec};
use std::sync::Arc;

/// Normal σ from the mean absolute deviation of a normal distribution.
const MAD_TO_SIGMA: f64 = 1.253_314_137;
/// Residuals are clipped at this many σ before they update the baseline (robustness).
const WINSOR_Z: f64 = 3.0;
/// Residuals are clipped at this many σ before they enter the CUSUM.
const CUSUM_CLIP_Z: f64 = 8.0;

/// Resolved parameters of one signal's detectors (profile values with defaults filled in).
#[derive(Clone, Debug, PartialEq)]
pub struct SignalParams {
    /// Readings to learn the baseline.
    pub learn_n: u32,
    /// Baseline EWMA span (readings).
    pub baseline_n: u32,
    /// Fast EWMA span (readings).
    pub fast_n: u32,
    /// Trend EWMA span (readings).
    pub trend_n: u32,
    /// Spread floor in the unit.
    pub noise_floor: f64,
    /// Level shift threshold in σ (None: off).
    pub shift_z: Option<f64>,
    /// Spike threshold in σ (None: off).
    pub spike_z: Option<f64>,
    /// CUSUM allowance and threshold in σ (None: off).
    pub drift: Option<(f64, f64)>,
    /// Largest normal |rate| per minute (None: off).
    pub max_rate_per_min: Option<f64>,
    /// Flatline seconds and tolerance (None: off).
    pub flatline: Option<(f64, f64)>,
    /// Gap seconds (None: off).
    pub gap_s: Option<f64>,
    /// Hard limits scored (None: off).
    pub limits: Option<Limits>,
    /// Normal range (used by the limit score and as evidence).
    pub normal: Option<[f64; 2]>,
    /// Event thresholds.
    pub hysteresis: Hysteresis,
}

impl SignalParams {
    /// Parameters of `spec` with the profile's `defaults`.
    pub fn from_spec(spec: &SignalSpec, d: &DetectDefaults) -> Self {
        let limits_on = spec
            .detect
            .limits
            .unwrap_or(spec.limits.min.is_some() || spec.limits.max.is_some());
        let noise_floor = spec.noise_floor.unwrap_or_else(|| match spec.normal {
            Some([lo, hi]) => (hi - lo).abs() * 0.002,
            None => 1e-9,
        });
        Self {
            learn_n: d.learn_n,
            baseline_n: d.baseline_n,
            fast_n: d.fast_n,
            trend_n: d.trend_n,
            noise_floor: noise_floor.max(1e-12),
            shift_z: spec.detect.level.as_ref().map(|l| l.shift_z),
            spike_z: spec.detect.level.as_ref().map(|l| l.spike_z),
            drift: spec.detect.drift.as_ref().map(|c| (c.k, c.h)),
            max_rate_per_min: spec.detect.rate.as_ref().map(|r| r.max_per_min),
            flatline: spec
                .detect
                .flatline
                .as_ref()
                .map(|f| (f.after_s, f.tolerance)),
            gap_s: spec.detect.gap.as_ref().map(|g| g.after_s),
            limits: limits_on.then_some(spec.limits),
            normal: spec.normal,
            hysteresis: Hysteresis {
                open_score: d.open_score,
                close_score: d.close_score,
                close_after_ns: (d.close_after_s * 1e9) as i64,
            },
        }
    }
}

/// Counters of readings a detector did not use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalCounters {
    /// Readings used.
    pub readings: u64,
    /// Bad-quality or non-finite readings (skipped).
    pub bad: u64,
    /// Readings older than the previous one (skipped).
    pub out_of_order: u64,
    /// Gaps longer than the gap threshold.
    pub gaps: u64,
}

/// Per-reading scores of the sub-detectors (for tests and back-testing).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SubScores {
    /// Level shift.
    pub level_shift: f64,
    /// Spike.
    pub spike: f64,
    /// Drift (CUSUM).
    pub drift: f64,
    /// Rate of change.
    pub rate: f64,
    /// Flatline.
    pub flatline: f64,
    /// Gap / dropout.
    pub gap: f64,
    /// Hard limits.
    pub limit: f64,
}

/// All univariate detectors of one sensor.
#[derive(Clone, Debug)]
pub struct SignalDetector {
    sensor: SensorId,
    unit: Unit,
    profile: Arc<str>,
    p: SignalParams,
    a_base: f64,
    a_fast: f64,
    a_mid: f64,
    a_long: f64,
    inv_lag_diff: f64,
    inv_trend_lag_diff: f64,
    hold: bool,
    // state
    n: u64,
    has_last: bool,
    last_ts: i64,
    last_value: f64,
    dt_avg_s: f64,
    mean: f64,
    absdev: f64,
    fast: f64,
    mid: f64,
    long: f64,
    cusum_pos: f64,
    cusum_neg: f64,
    cusum_pos_since: i64,
    cusum_neg_since: i64,
    flat_since: i64,
    flat_value: f64,
    last_gap_s: f64,
    z: f64,
    z_fast: f64,
    sub: SubScores,
    score: f64,
    kind: AnomalyKind,
    event: EventTracker,
    counters: SignalCounters,
}

/// EWMA weight of a span of `n` readings.
fn alpha(n: u32) -> f64 {
    2.0 / (f64::from(n) + 1.0)
}

#[inline]
fn ratio_score(stat: f64, threshold: f64) -> f64 {
    (0.5 * stat / threshold).clamp(0.0, 1.0)
}

impl SignalDetector {
    /// A detector for `sensor` with resolved parameters.
    pub fn new(sensor: SensorId, unit: Unit, profile: Arc<str>, p: SignalParams) -> Self {
        let a_fast = alpha(p.fast_n);
        let a_mid = alpha(p.trend_n);
        // Steady-state lag of an EWMA on a ramp is (1 - a) / a readings.
        let lag = |a: f64| (1.0 - a) / a;
        let a_long = alpha(p.trend_n.saturating_mul(4));
        let trend_lag_diff = (lag(a_long) - lag(a_mid)).max(1e-9);
        let lag_diff = (lag(a_long) - lag(a_fast)).max(1e-9);
        Self {
            sensor,
            unit,
            profile,
            a_base: alpha(p.baseline_n),
            a_fast,
            a_mid,
            a_long,
            inv_lag_diff: 1.0 / lag_diff,
            inv_trend_lag_diff: 1.0 / trend_lag_diff,
            hold: false,
            p,
            n: 0,
            has_last: false,
            last_ts: 0,
            last_value: 0.0,
            dt_avg_s: 0.0,
            mean: 0.0,
            absdev: 0.0,
            fast: 0.0,
            mid: 0.0,
            long: 0.0,
            cusum_pos: 0.0,
            cusum_neg: 0.0,
            cusum_pos_since: 0,
            cusum_neg_since: 0,
            flat_since: 0,
            flat_value: f64::NAN,
            last_gap_s: 0.0,
            z: 0.0,
            z_fast: 0.0,
            sub: SubScores::default(),
            score: 0.0,
            kind: AnomalyKind::LevelShift,
            event: EventTracker::new(),
            counters: SignalCounters::default(),
        }
    }

    /// The detector of signal `spec` of `asset` under `profile`.
    pub fn from_profile(asset: &str, profile: &Profile, spec: &SignalSpec) -> Self {
        Self::new(
            SensorId::new(asset, spec.name.as_str()),
            Unit::new(spec.unit.as_str()),
            Arc::from(profile.name.as_str()),
            SignalParams::from_spec(spec, &profile.defaults),
        )
    }

    /// The sensor.
    pub fn sensor(&self) -> &SensorId {
        &self.sensor
    }

    /// The unit.
    pub fn unit(&self) -> &Unit {
        &self.unit
    }

    /// The parameters.
    pub fn params(&self) -> &SignalParams {
        &self.p
    }

    /// True once the baseline has been learned.
    pub fn learned(&self) -> bool {
        self.n >= u64::from(self.p.learn_n)
    }

    /// Smoothed deviation from the baseline in σ (0 while learning).
    pub fn z_fast(&self) -> f64 {
        self.z_fast
    }

    /// Time of the last used reading (None before the first).
    pub fn last_ts(&self) -> Option<i64> {
        self.has_last.then_some(self.last_ts)
    }

    /// Sub-detector scores of the last reading.
    pub fn sub_scores(&self) -> SubScores {
        self.sub
    }

    /// Kind of the highest sub-score of the last reading.
    pub fn current_kind(&self) -> AnomalyKind {
        self.kind
    }

    /// True while an event is open.
    pub fn event_open(&self) -> bool {
        self.event.open
    }

    /// Counters of used and skipped readings.
    pub fn counters(&self) -> SignalCounters {
        self.counters
    }

    fn sigma(&self) -> f64 {
        (self.absdev * MAD_TO_SIGMA).max(self.p.noise_floor)
    }

    /// Short-term rate of change in unit per minute (fast vs 4×trend EWMA: reacts at once,
    /// reaches the full rate after about 2×`trend_n` readings).
    pub fn rate_per_min(&self) -> f64 {
        if self.dt_avg_s <= 0.0 || self.n < 2 {
            return 0.0;
        }
        (self.fast - self.long) * self.inv_lag_diff / self.dt_avg_s * 60.0
    }

    /// Smoothed trend in unit per minute (trend vs 4×trend EWMA; steady, slower to react).
    pub fn trend_per_min(&self) -> f64 {
        if self.dt_avg_s <= 0.0 || self.n < 2 {
            return 0.0;
        }
        (self.mid - self.long) * self.inv_trend_lag_diff / self.dt_avg_s * 60.0
    }

    /// Holds the baseline (no learning) while `true`; the monitor sets it while a correlation
    /// group containing this signal has an open event, so the joint deviation is not absorbed.
    pub fn set_hold(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// The sensor's current state as evidence.
    pub fn evidence(&self) -> Evidence {
        let trend_ns = if self.cusum_pos > 0.0 && self.cusum_pos >= self.cusum_neg {
            self.last_ts - self.cusum_pos_since
        } else if self.cusum_neg > 0.0 {
            self.last_ts - self.cusum_neg_since
        } else if self.event.open {
            self.last_ts - self.event.since_ns
        } else {
            0
        };
        let flat_s = if self.p.flatline.is_some() && self.flat_value.is_finite() {
            (self.last_ts - self.flat_since) as f64 / 1e9
        } else {
            0.0
        };
        Evidence {
            value: self.last_value,
            baseline: self.mean,
            spread: self.sigma(),
            z: self.z_fast,
            // The fast estimate while the rate detector is over its threshold, else the trend.
            rate_per_min: if self.sub.rate >= 0.5 {
                self.rate_per_min()
            } else {
                self.trend_per_min()
            },
            trend_s: trend_ns.max(0) as f64 / 1e9,
            flat_s,
            gap_s: self.last_gap_s,
            limits: self.p.limits.unwrap_or_default(),
            normal: self.p.normal,
            learned: self.learned(),
        }
    }

    fn anomaly(&self, phase: Phase, ts_ns: i64) -> Anomaly {
        Anomaly {
            id: format!("{}@{}", self.sensor, self.event.since_ns),
            sensor: self.sensor.clone(),
            unit: self.unit.clone(),
            kind: self.event.main,
            kinds: self.event.kinds(),
            phase,
            since_ns: self.event.since_ns,
            ts_ns,
            score: self.score,
            peak_score: self.event.peak_score,
            evidence: self.evidence(),
            related: Vec::new(),
            profile: self.profile.clone(),
            resolution: (phase == Phase::Closed).then_some(Resolution::Normal),
        }
    }

    /// Feeds one value; the fast path without a [`Reading`]. Returns an event phase change.
    #[inline]
    pub fn observe_value(&mut self, ts_ns: i64, value: f64, quality: Quality) -> Option<Anomaly> {
        if quality == Quality::Bad || !value.is_finite() {
            self.counters.bad += 1;
            return None;
        }
        let mut gap_score = 0.0;
        if self.has_last {
            if ts_ns < self.last_ts {
                self.counters.out_of_order += 1;
                return None;
            }
            let dt_s = (ts_ns - self.last_ts) as f64 * 1e-9;
            self.last_gap_s = dt_s;
            match self.p.gap_s {
                Some(g) if dt_s > g => {
                    self.counters.gaps += 1;
                    gap_score = ratio_score(dt_s, g);
                }
                _ => {
                    self.dt_avg_s = if self.dt_avg_s == 0.0 {
                        dt_s
                    } else {
                        self.dt_avg_s + 0.05 * (dt_s - self.dt_avg_s)
                    };
                }
            }
        }
        self.counters.readings += 1;
        self.n += 1;

        // Smoothers for level shift and rate.
        if self.n == 1 {
            self.fast = value;
            self.mid = value;
            self.long = value;
        } else {
            self.fast += self.a_fast * (value - self.fast);
            self.mid += self.a_mid * (value - self.mid);
            self.long += self.a_long * (value - self.long);
        }

        let learn_n = u64::from(self.p.learn_n);
        let mut sub = SubScores {
            gap: gap_score,
            ..SubScores::default()
        };
        if self.n <= learn_n {
            // Learning: plain running mean and mean absolute deviation.
            let inv = 1.0 / self.n as f64;
            self.mean += (value - self.mean) * inv;
            self.absdev += ((value - self.mean).abs() - self.absdev) * inv;
            self.z = 0.0;
            self.z_fast = 0.0;
        } else {
            let sigma = self.sigma();
            let inv_sigma = 1.0 / sigma;
            let r = value - self.mean;
            let z = r * inv_sigma;
            let z_fast = (self.fast - self.mean) * inv_sigma;
            self.z = z;
            self.z_fast = z_fast;
            if let Some(t) = self.p.shift_z {
                sub.level_shift = ratio_score(z_fast.abs(), t);
            }
            if let Some(t) = self.p.spike_z {
                sub.spike = ratio_score(z.abs(), t);
            }
            if let Some((k, h)) = self.p.drift {
                let zc = z.clamp(-CUSUM_CLIP_Z, CUSUM_CLIP_Z);
                let cp = (self.cusum_pos + zc - k).max(0.0);
                let cn = (self.cusum_neg - zc - k).max(0.0);
                if self.cusum_pos == 0.0 && cp > 0.0 {
                    self.cusum_pos_since = ts_ns;
                }
                if self.cusum_neg == 0.0 && cn > 0.0 {
                    self.cusum_neg_since = ts_ns;
                }
                self.cusum_pos = cp;
                self.cusum_neg = cn;
                sub.drift = ratio_score(cp.max(cn), h);
            }
            if let Some(m) = self.p.max_rate_per_min {
                if self.dt_avg_s > 0.0 {
                    sub.rate = ratio_score(self.rate_per_min().abs(), m);
                }
            }
            // The baseline learns only while no event is open, from clipped residuals.
            if !self.event.open && !self.hold {
                let clip = WINSOR_Z * sigma;
                self.mean += self.a_base * r.clamp(-clip, clip);
                self.absdev += self.a_base * (r.abs().min(clip) - self.absdev);
            }
        }

        if let Some((after_s, tol)) = self.p.flatline {
            if !self.flat_value.is_finite() || (value - self.flat_value).abs() > tol {
                self.flat_value = value;
                self.flat_since = ts_ns;
            } else {
                let flat_s = (ts_ns - self.flat_since) as f64 * 1e-9;
                sub.flatline = ratio_score(flat_s, after_s);
            }
        }
        if let Some(l) = self.p.limits {
            sub.limit = limit_score(value, &l, self.p.normal);
        }

        self.has_last = true;
        self.last_ts = ts_ns;
        self.last_value = value;
        self.sub = sub;
        let (score, kind) = sub.max();
        self.score = score;
        self.kind = kind;
        let mut phase = self.event.step(ts_ns, score, kind, &self.p.hysteresis);
        if self.event.open && phase != Some(Phase::Opened) {
            let h = self.p.hysteresis;
            for (s, k) in sub.all() {
                if k != kind && s >= h.open_score {
                    if let Some(p) = self.event.note(s, k, &h) {
                        phase = phase.or(Some(p));
                    }
                }
            }
        }
        phase.map(|phase| self.anomaly(phase, ts_ns))
    }

    /// Checks for a dropout at `now_ns` (the caller's clock) without a reading: opens a
    /// dropout event when no reading came for longer than the gap threshold.
    pub fn tick(&mut self, now_ns: i64) -> Option<Anomaly> {
        let g = self.p.gap_s?;
        if !self.has_last || now_ns <= self.last_ts {
            return None;
        }
        let gap_s = (now_ns - self.last_ts) as f64 * 1e-9;
        if gap_s <= g {
            return None;
        }
        let s = ratio_score(gap_s, g);
        self.last_gap_s = gap_s;
        if self.event.open {
            // Keep the open event alive; a missing reading cannot close it.
            let _ = self
                .event
                .step(now_ns, s, AnomalyKind::Dropout, &self.p.hysteresis);
            return None;
        }
        self.score = s;
        self.kind = AnomalyKind::Dropout;
        self.event
            .step(now_ns, s, AnomalyKind::Dropout, &self.p.hysteresis)
            .map(|phase| self.anomaly(phase, now_ns))
    }
}

impl SubScores {
    /// Every score with its kind.
    #[inline]
    pub fn all(&self) -> [(f64, AnomalyKind); 7] {
        [
            (self.level_shift, AnomalyKind::LevelShift),
            (self.spike, AnomalyKind::Spike),
            (self.drift, AnomalyKind::Drift),
            (self.rate, AnomalyKind::RateOfChange),
            (self.flatline, AnomalyKind::Flatline),
            (self.gap, AnomalyKind::Dropout),
            (self.limit, AnomalyKind::Limit),
        ]
    }

    /// The largest score and its kind.
    #[inline]
    pub fn max(&self) -> (f64, AnomalyKind) {
        let mut best = (self.level_shift, AnomalyKind::LevelShift);
        for (s, k) in [
            (self.spike, AnomalyKind::Spike),
            (self.drift, AnomalyKind::Drift),
            (self.rate, AnomalyKind::RateOfChange),
            (self.flatline, AnomalyKind::Flatline),
            (self.gap, AnomalyKind::Dropout),
            (self.limit, AnomalyKind::Limit),
        ] {
            if s > best.0 {
                best = (s, k);
            }
        }
        best
    }
}

/// Score of a value against hard limits and the normal range: 0 inside the normal range,
/// rising linearly to 0.5 at the hard limit, 1 at one normal-range width beyond it.
#[inline]
pub fn limit_score(v: f64, l: &Limits, normal: Option<[f64; 2]>) -> f64 {
    let (lo_n, hi_n) = match normal {
        Some([lo, hi]) => (lo, hi),
        None => (f64::NEG_INFINITY, f64::INFINITY),
    };
    let width = match normal {
        Some([lo, hi]) => (hi - lo).abs().max(1e-12),
        None => 1.0,
    };
    if let Some(max) = l.max {
        if v > max {
            return (0.5 + 0.5 * (v - max) / width).min(1.0);
        }
        if v > hi_n && max > hi_n {
            return 0.5 * (v - hi_n) / (max - hi_n);
        }
    }
    if let Some(min) = l.min {
        if v < min {
            return (0.5 + 0.5 * (min - v) / width).min(1.0);
        }
        if v < lo_n && min < lo_n {
            return 0.5 * (lo_n - v) / (lo_n - min);
        }
    }
    0.0
}

impl Detector for SignalDetector {
    fn observe(&mut self, r: &Reading) -> Option<Anomaly> {
        self.observe_value(r.ts_ns, r.value, r.quality)
    }
    fn score(&self) -> f64 {
        self.score
    }
}
