//! Resolved parameters of one signal's detectors ([`SignalParams`]: profile values with the
//! defaults, operating-state settle time and drivers filled in) and the detector's counters.
//! Plain data; no detection here.

use crate::event::Hysteresis;
use crate::regress::{DriverScale, MAX_DRIVERS};
use millwright_core::Limits;
use millwright_profile::{DetectDefaults, Profile, SignalSpec};

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
    /// Smallest drift that counts, in the unit (0: no minimum).
    pub min_delta: f64,
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
    /// An event open this long on a stable level closes as the new normal (ns).
    pub relearn_after_ns: i64,
    /// Baseline detectors stay silent this long after a start (ns).
    pub settle_ns: i64,
    /// Backward time steps up to this are clock corrections, accepted (ns).
    pub clock_tolerance_ns: i64,
    /// Scales of the drivers of a dependent signal (empty: not dependent).
    pub drivers: Vec<DriverScale>,
    /// Lag (time constant, s) between the drivers and the signal.
    pub depends_lag_s: f64,
    /// Least learning time (s) of a dependent signal's regression.
    pub learn_dependent_s: f64,
}

impl Default for SignalParams {
    fn default() -> Self {
        let d = DetectDefaults::default();
        Self {
            learn_n: d.learn_n,
            baseline_n: d.baseline_n,
            fast_n: d.fast_n,
            trend_n: d.trend_n,
            noise_floor: 1e-9,
            shift_z: None,
            spike_z: None,
            drift: None,
            min_delta: 0.0,
            max_rate_per_min: None,
            flatline: None,
            gap_s: None,
            limits: None,
            normal: None,
            hysteresis: Hysteresis {
                open_score: d.open_score,
                close_score: d.close_score,
                close_after_ns: (d.close_after_s * 1e9) as i64,
            },
            relearn_after_ns: (d.relearn_after_s * 1e9) as i64,
            settle_ns: 0,
            clock_tolerance_ns: (d.clock_tolerance_s * 1e9) as i64,
            drivers: Vec::new(),
            depends_lag_s: 0.0,
            learn_dependent_s: d.learn_dependent_s,
        }
    }
}

impl SignalParams {
    /// Parameters of `spec` with the profile's `defaults` (drivers are resolved by
    /// [`SignalParams::from_profile`], which knows the drivers' ranges).
    pub fn from_spec(spec: &SignalSpec, d: &DetectDefaults) -> Self {
        let limits_on = spec
            .detect
            .limits
            .unwrap_or(spec.limits.min.is_some() || spec.limits.max.is_some());
        let noise_floor = spec.noise_floor.unwrap_or_else(|| match spec.normal {
            Some([lo, hi]) => (hi - lo).abs() * 0.002,
            None => 1e-9,
        });
        let min_delta = spec
            .detect
            .drift
            .as_ref()
            .and_then(|c| c.min_delta)
            .unwrap_or_else(|| match spec.normal {
                Some([lo, hi]) => 0.05 * (hi - lo).abs(),
                None => 0.0,
            });
        let secs = |s: f64| (s * 1e9) as i64;
        Self {
            learn_n: d.learn_n,
            baseline_n: d.baseline_n,
            fast_n: d.fast_n,
            trend_n: d.trend_n,
            noise_floor: noise_floor.max(1e-12),
            shift_z: spec.detect.level.as_ref().map(|l| l.shift_z),
            spike_z: spec.detect.level.as_ref().map(|l| l.spike_z),
            drift: spec.detect.drift.as_ref().map(|c| (c.k, c.h)),
            min_delta,
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
                close_after_ns: secs(d.close_after_s),
            },
            relearn_after_ns: secs(spec.relearn_after_s.unwrap_or(d.relearn_after_s)),
            settle_ns: secs(spec.settle_s.unwrap_or(0.0)),
            clock_tolerance_ns: secs(d.clock_tolerance_s),
            drivers: Vec::new(),
            depends_lag_s: spec.depends_lag_s.unwrap_or(0.0),
            learn_dependent_s: d.learn_dependent_s,
        }
    }

    /// Parameters of `spec` in `profile`: defaults, operating-state settle time and drivers.
    pub fn from_profile(profile: &Profile, spec: &SignalSpec) -> Self {
        let mut p = Self::from_spec(spec, &profile.defaults);
        if let Some(st) = &profile.states {
            p.settle_ns = (spec.settle_s.unwrap_or(st.settle_s) * 1e9) as i64;
        }
        p.drivers = spec
            .depends_on
            .iter()
            .filter_map(|d| profile.signal(d)?.normal)
            .take(MAX_DRIVERS)
            .map(|[lo, hi]| DriverScale::from_range(lo, hi))
            .collect();
        p
    }
}

/// Counters of readings a detector did not use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalCounters {
    /// Readings used.
    pub readings: u64,
    /// Bad-quality or non-finite readings (skipped).
    pub bad: u64,
    /// Readings older than the previous one by more than the clock tolerance (skipped).
    pub out_of_order: u64,
    /// Readings older than the previous one within the clock tolerance (used).
    pub clock_corrections: u64,
    /// Times the detector re-anchored on readings that kept coming behind one far-ahead
    /// reading (that reading's clock was wrong).
    pub clock_resyncs: u64,
    /// Gaps longer than the gap threshold.
    pub gaps: u64,
    /// Events closed as the new normal (the baseline re-learned).
    pub relearned: u64,
    /// Times a dependent signal met an operating point its regression had not learned and
    /// adapted to it (not judged meanwhile).
    pub adapted: u64,
}
