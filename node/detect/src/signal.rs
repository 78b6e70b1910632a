//! The univariate detector set of one signal, in one struct so a reading costs O(1) work and
//! no allocation: robust adaptive baseline (winsorised EWMA mean and mean absolute deviation
//! after a learning period) with level-shift and spike detection, two-sided CUSUM drift (with a
//! minimum effect in the unit), rate of change, flatline, gap, and hard limits / normal range.
//!
//! A dependent signal (`depends_on`) is judged on its residual: the baseline detectors see
//! `value − expected`, the expected value coming from the online regression on its drivers
//! (`regress`). Operating states: while the machine is stopped or starting (set by the asset
//! monitor), the baseline detectors are silent and the baseline does not learn. Re-learning: an
//! event open for `relearn_after_s` on a stable new level closes as the new normal and the
//! baseline moves there. Readings going back in time by up to the clock tolerance are accepted
//! in arrival order (clock corrections).
//!
//! Every sub-detector turns its statistic into a score in `[0, 1]` with the same rule:
//! `score = min(1, statistic / threshold / 2)`, so 0.5 is exactly the detector's threshold.
//! The reading's score is the largest of them. Time comes from the readings only. Parameters
//! live in `params`. This file is a little over 600 lines because the detector's hot path is
//! kept in one place on purpose.

use crate::event::EventTracker;
pub use crate::params::{SignalCounters, SignalParams};
use crate::regress::{Regression, MAX_DRIVERS};
use crate::scores::limit_score_sided;
pub use crate::scores::{limit_score, SubScores};
use millwright_core::{
    Anomaly, AnomalyKind, Detector, Evidence, Phase, Quality, Reading, Resolution, SensorId, Unit,
};
use millwright_profile::{Profile, SignalSpec};
use std::sync::Arc;

/// Normal σ from the mean absolute deviation of a normal distribution.
const MAD_TO_SIGMA: f64 = 1.253_314_137;
/// Residuals are clipped at this many σ before they update the baseline (robustness).
const WINSOR_Z: f64 = 3.0;
/// Residuals are clipped at this many σ before they enter the CUSUM.
const CUSUM_CLIP_Z: f64 = 8.0;
/// Values are clamped to ±this for the statistics (limits see the true value), so readings near
/// ±f64::MAX, alternating, cannot overflow a mean, a difference or a square into inf or NaN.
const VALUE_CAP: f64 = 1e100;
/// Readings in order among themselves that keep arriving behind one far-ahead reading (but
/// after the readings before it) re-anchor time after this many: one reading dated hours
/// ahead must not make every later one `out_of_order` (blind the detector and its dropout check).
const RESYNC_AFTER: u32 = 3;
/// Once learned, a value further than this many σ (or 10 × `min_delta`) from the baseline that
/// is not near the previous value (an isolated extreme, alternating extremes) enters the
/// smoothers clipped there, so one absurd reading cannot hold them away for thousands of
/// readings; a reading back inside that band pulls smoothers left outside it back at once.
const SMOOTH_CLIP_Z: f64 = 100.0;
/// A signal with a flatline check whose value repeated exactly (within the tolerance) this many
/// readings in a row is suspect: its baseline detectors are silent and it does not learn until
/// it moves again (a frozen transmitter first shows as a level shift against its drivers; it
/// must show as the flatline it is, not as a process symptom).
const FLAT_SUSPECT_N: u32 = 5;
/// A dependent signal's drivers are at an operating point the regression has not learned (a
/// setpoint never seen, or forgotten) when a driver is this far (scaled: 1 = half its normal
/// range) outside the range the fit learned recently (the envelope of the learned driver
/// values, relaxing at the baseline's rate).
const NOVEL_MARGIN: f64 = 0.3;
/// Least time a dependent signal adapts to a new operating point, s.
const ADAPT_MIN_S: f64 = 300.0;
/// The regression learns the new operating point only from this long after it was first
/// met (a run-down before the stop shows, or a ramp to the new point, is no point to learn), s.
const ADAPT_LEARN_AFTER_S: f64 = 60.0;
/// No driver value yet.
pub const NO_DRIVERS: [f64; MAX_DRIVERS] = [f64::NAN; MAX_DRIVERS];

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
    driver_range: [f64; 2],
    hold: bool,
    reg: Option<Regression>,
    // operating state
    running: bool,
    started_ns: i64,
    was_gated: bool,
    // state
    n: u64,
    smooth_init: bool,
    has_last: bool,
    last_ts: i64,
    max_ts: i64,
    /// The latest time before the latest reading (the timeline without its newest step).
    prev_ts: i64,
    /// Readings in a row behind the latest one but after `prev_ts`, and the last of them.
    behind_run: u32,
    behind_last: i64,
    last_value: f64,
    /// The previous baseline input (`value − expected`, capped), for the smoothers' clipping.
    last_x: f64,
    last_expected: f64,
    driver_value: f64,
    dt_avg_s: f64,
    mean: f64,
    absdev: f64,
    recent_absdev: f64,
    stable_windows: u32,
    chk_ts: i64,
    chk_level: f64,
    learn_time_s: f64,
    learned: bool,
    fast: f64,
    mid: f64,
    long: f64,
    cusum_pos: f64,
    cusum_neg: f64,
    cusum_pos_since: i64,
    cusum_neg_since: i64,
    flat_since: i64,
    flat_value: f64,
    /// Readings in the current run of equal values.
    flat_n: u32,
    /// A driver has no recent reading (its residual cannot be judged).
    drivers_lost: bool,
    /// When the drivers were last lost (the start of the current or last loss).
    drivers_lost_since_ns: i64,
    /// When the drivers came back after being lost.
    drivers_back_ns: i64,
    /// How long the baseline detectors wait after that, ns.
    drivers_wait_ns: i64,
    /// Adapting to a new operating point until then (not judged, the regression learns).
    adapt_until_ns: i64,
    /// When the current adaptation began.
    adapt_since_ns: i64,
    /// Scaled driver values the fit learned recently: [low, high] per driver (NaN: none yet).
    envelope: [[f64; 2]; MAX_DRIVERS],
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
    let r = 0.5 * stat / threshold;
    // NaN (0/0, inf/inf) scores nothing rather than poisoning the maximum.
    if r.is_nan() {
        0.0
    } else {
        r.clamp(0.0, 1.0)
    }
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
        let reg = (!p.drivers.is_empty()).then(|| Regression::new(&p.drivers, p.depends_lag_s));
        let driver_range = match p.normal {
            Some([lo, hi]) => {
                let w = (hi - lo).abs();
                [lo - 0.25 * w, hi + 0.25 * w]
            }
            None => [f64::NEG_INFINITY, f64::INFINITY],
        };
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
            driver_range,
            hold: false,
            reg,
            running: true,
            started_ns: i64::MIN,
            was_gated: false,
            p,
            n: 0,
            smooth_init: false,
            has_last: false,
            last_ts: 0,
            max_ts: i64::MIN,
            prev_ts: i64::MIN,
            behind_run: 0,
            behind_last: i64::MIN,
            last_x: f64::NAN,
            last_value: 0.0,
            last_expected: 0.0,
            driver_value: f64::NAN,
            dt_avg_s: 0.0,
            mean: 0.0,
            absdev: 0.0,
            recent_absdev: 0.0,
            stable_windows: 0,
            chk_ts: 0,
            chk_level: 0.0,
            learn_time_s: 0.0,
            learned: false,
            fast: 0.0,
            mid: 0.0,
            long: 0.0,
            cusum_pos: 0.0,
            cusum_neg: 0.0,
            cusum_pos_since: 0,
            cusum_neg_since: 0,
            flat_since: 0,
            flat_value: f64::NAN,
            flat_n: 0,
            drivers_lost: false,
            drivers_lost_since_ns: i64::MIN,
            drivers_back_ns: i64::MIN,
            drivers_wait_ns: 0,
            adapt_until_ns: i64::MIN,
            adapt_since_ns: i64::MIN,
            envelope: [[f64::NAN; 2]; MAX_DRIVERS],
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
            SignalParams::from_profile(profile, spec),
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
        self.learned
    }

    /// Least learning time: a dependent signal whose drivers report learns for
    /// `learn_dependent_s` and at least three lag time constants, so its drivers have moved
    /// while the regression learns.
    fn min_learn_s(&self) -> f64 {
        if self.reg.as_ref().is_some_and(Regression::driven) {
            (3.0 * self.p.depends_lag_s).max(self.p.learn_dependent_s)
        } else {
            0.0
        }
    }

    /// True for a dependent signal (judged against its drivers).
    pub fn is_dependent(&self) -> bool {
        self.reg.is_some()
    }

    /// Smoothed deviation from the baseline in σ (0 while learning or not running).
    pub fn z_fast(&self) -> f64 {
        self.z_fast
    }

    /// Time of the last used reading (None before the first).
    pub fn last_ts(&self) -> Option<i64> {
        self.has_last.then_some(self.last_ts)
    }

    /// The last plausible value (no spike, inside the normal range widened by a quarter on
    /// each side), handed to the signals that depend on this one; NaN before the first.
    #[inline]
    pub fn driver_value(&self) -> f64 {
        self.driver_value
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

    /// Sets the clock tolerance: backward steps up to `ns` are accepted as clock corrections.
    pub fn set_clock_tolerance_ns(&mut self, ns: i64) {
        self.p.clock_tolerance_ns = ns.max(0);
    }

    /// Sets the operating state (from the asset's state signal): not `running` (stopped), or
    /// running since `started_ns` (the baseline detectors settle for `settle_s` after it).
    pub fn set_running(&mut self, running: bool, started_ns: i64) {
        self.running = running;
        self.started_ns = started_ns;
    }

    /// Tells a dependent signal whether one of its drivers has no recent reading or is stuck
    /// (the monitor checks before each reading): while lost, and for a while after the drivers
    /// are back (see [`Self::wait_after_loss_ns`]), the baseline detectors are silent and do
    /// not learn, as after a start — the expected value is not known.
    pub fn set_drivers_lost(&mut self, lost: bool, ts_ns: i64) {
        if lost {
            if !self.drivers_lost {
                self.drivers_lost_since_ns = ts_ns;
            }
            self.drivers_lost = true;
        } else if self.drivers_lost {
            self.drivers_lost = false;
            self.drivers_back_ns = ts_ns;
            self.drivers_wait_ns =
                self.wait_after_loss_ns(ts_ns.saturating_sub(self.drivers_lost_since_ns));
        }
    }

    /// How long the expected value stays unknown after the drivers were lost for `lost_ns`.
    /// After a long loss, or without a lag: three lags, at least the settle time, as after a
    /// start. Through a lag the filtered features hold the lost period's (stale) driver values
    /// with a share `1 − e^(−lost/τ)` that then decays as `e^(−t/τ)`, below e⁻³ (5 %) after
    /// `τ · (3 + ln share)`: the wait is that fraction of the full one, none when the share is
    /// already below. A driver suspect for a few readings (a value repeating exactly while
    /// the load is steady) leaves a negligible share and must not blind its dependents for
    /// three lags (40 min for a winding temperature), with a fault growing unseen meanwhile.
    fn wait_after_loss_ns(&self, lost_ns: i64) -> i64 {
        let tau = self.p.depends_lag_s;
        let full_ns = ((3.0 * tau * 1e9) as i64).max(self.p.settle_ns);
        if tau <= 0.0 {
            return full_ns;
        }
        let lost_s = lost_ns.max(0) as f64 * 1e-9;
        let share = 1.0 - (-lost_s / tau).exp();
        let fraction = ((3.0 + share.max(1e-300).ln()) / 3.0).clamp(0.0, 1.0);
        (full_ns as f64 * fraction) as i64
    }

    /// Whether the baseline detectors wait for the drivers (lost, or back too recently).
    fn waiting_for_drivers(&self, ts_ns: i64) -> bool {
        self.drivers_lost || ts_ns.saturating_sub(self.drivers_back_ns) < self.drivers_wait_ns
    }

    /// True while the value has repeated exactly long enough to be suspect (a stuck
    /// transmitter): not a value to judge with, nor to judge others by.
    pub fn stuck(&self) -> bool {
        self.flat_n >= FLAT_SUSPECT_N
    }

    /// Whether a driver is well outside the envelope of the driver values learned recently.
    fn novel(&self, drivers: &[f64; MAX_DRIVERS]) -> bool {
        self.p
            .drivers
            .iter()
            .zip(drivers)
            .zip(&self.envelope)
            .any(|((sc, x), [lo, hi])| {
                let u = (x - sc.centre) * sc.inv_half;
                u.is_finite() && (u < lo - NOVEL_MARGIN || u > hi + NOVEL_MARGIN)
            })
    }

    /// Takes the drivers' values into the envelope (which relaxes towards them at the
    /// baseline's rate, so an operating point the fit has forgotten becomes new again).
    fn widen_envelope(&mut self, drivers: &[f64; MAX_DRIVERS]) {
        let a = self.a_base;
        for ((sc, x), e) in self
            .p
            .drivers
            .iter()
            .zip(drivers)
            .zip(self.envelope.iter_mut())
        {
            let u = ((x - sc.centre) * sc.inv_half).clamp(-4.0, 4.0);
            if !u.is_finite() {
                continue;
            }
            if e[0].is_nan() || u < e[0] {
                e[0] = u;
            } else {
                e[0] += a * (u - e[0]);
            }
            if e[1].is_nan() || u > e[1] {
                e[1] = u;
            } else {
                e[1] += a * (u - e[1]);
            }
        }
    }

    fn sigma(&self) -> f64 {
        (self.absdev * MAD_TO_SIGMA).max(self.p.noise_floor)
    }

    /// Short-term rate of change in unit per minute (fast vs 4×trend EWMA: reacts at once,
    /// reaches the full rate after about 2×`trend_n` readings); of the residual for a
    /// dependent signal.
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

    /// True when every statistic of the state is finite (mean, spread, smoothers, CUSUM, score):
    /// no sequence of readings may break this (the hostile-input property tests check it).
    pub fn is_sane(&self) -> bool {
        [
            self.mean,
            self.absdev,
            self.recent_absdev,
            self.fast,
            self.mid,
            self.long,
            self.cusum_pos,
            self.cusum_neg,
            self.z,
            self.z_fast,
            self.score,
            self.dt_avg_s,
            self.rate_per_min(),
            self.trend_per_min(),
        ]
        .iter()
        .all(|v| v.is_finite())
            && (0.0..=1.0).contains(&self.score)
    }

    /// Holds the baseline (no learning) while `true`; the monitor sets it while a correlation
    /// group containing this signal has an open event, so the joint deviation is not absorbed.
    pub fn set_hold(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// True when the signal sits on a stable level that may become the new normal: no
    /// worsening trend for a while, its smoothed level well away from the hard limits (a
    /// breach never becomes the new normal), not stuck and not gapped.
    pub fn stable(&self) -> bool {
        let h = &self.p.hysteresis;
        let level = self.mid + self.last_expected;
        let level_limit = match self.p.limits {
            Some(l) => limit_score_sided(level, &l, self.p.normal, self.running),
            None => 0.0,
        };
        self.learned()
            && self.stable_windows >= 2
            && self.sub.limit < h.open_score
            && level_limit < h.close_score
            && self.sub.flatline < h.close_score
            && self.sub.gap < h.close_score
    }

    /// The sensor's current state as evidence.
    pub fn evidence(&self) -> Evidence {
        let trend_ns = if self.cusum_pos > 0.0 && self.cusum_pos >= self.cusum_neg {
            self.last_ts.saturating_sub(self.cusum_pos_since)
        } else if self.cusum_neg > 0.0 {
            self.last_ts.saturating_sub(self.cusum_neg_since)
        } else if self.event.open {
            self.last_ts.saturating_sub(self.event.since_ns)
        } else {
            0
        };
        let flat_s = if self.p.flatline.is_some() && self.flat_value.is_finite() {
            self.last_ts.saturating_sub(self.flat_since) as f64 / 1e9
        } else {
            0.0
        };
        Evidence {
            value: self.last_value,
            baseline: self.last_expected + self.mean,
            spread: self.sigma(),
            z: self.z_fast,
            // The fast estimate while the rate detector is over its threshold, else the trend.
            rate_per_min: if self.sub.rate >= 0.5 {
                self.rate_per_min()
            } else {
                self.trend_per_min()
            },
            trend_s: trend_ns.max(0) as f64 / 1e9,
            flat_s: flat_s.max(0.0),
            gap_s: self.last_gap_s,
            limits: self.p.limits.unwrap_or_default(),
            normal: self.p.normal,
            learned: self.learned(),
        }
    }

    fn anomaly(&self, phase: Phase, ts_ns: i64, resolution: Resolution) -> Anomaly {
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
            resolution: (phase == Phase::Closed).then_some(resolution),
        }
    }

    /// Moves the baseline to the recent level (re-learning): mean and spread from the recent
    /// readings, CUSUM and trend reset.
    fn relearn(&mut self) {
        let delta = self.mid - self.mean;
        match &mut self.reg {
            Some(reg) => {
                // Into the regression's intercept: the residual moves by −delta.
                reg.shift(delta);
                self.last_expected += delta;
                self.fast -= delta;
                self.mid -= delta;
            }
            None => self.mean = self.mid,
        }
        if self.recent_absdev > 0.0 {
            self.absdev = if self.reg.is_some() {
                // A dependent signal's spread is mostly the fit's error across the operating
                // points it met, which the event's quiet stretch (often at one point) does not
                // measure: it may grow, not shrink. Shrunk to the noise at one point (a fifth of
                // it), the next new setpoint's small extrapolation error was a false spike.
                self.absdev.max(self.recent_absdev)
            } else {
                self.recent_absdev
            };
        }
        self.long = self.mid;
        self.cusum_pos = 0.0;
        self.cusum_neg = 0.0;
        self.stable_windows = 0;
        self.z = 0.0;
        self.z_fast = (self.fast - self.mean) / self.sigma();
        self.counters.relearned += 1;
    }

    /// Re-learns now (the monitor calls it when a correlation group of stable members has
    /// been open for `relearn_after_s`); closes the signal's own open event as the new normal.
    pub fn relearn_now(&mut self, ts_ns: i64) -> Option<Anomaly> {
        self.relearn();
        self.sub.level_shift = 0.0;
        self.sub.spike = 0.0;
        self.sub.drift = 0.0;
        self.sub.rate = 0.0;
        let (score, kind) = self.sub.max();
        self.score = score;
        self.kind = kind;
        self.event
            .force_close()
            .then(|| self.anomaly(Phase::Closed, ts_ns, Resolution::NewNormal))
    }

    /// Feeds one value; the fast path without a [`Reading`]. Returns an event phase change.
    #[inline]
    pub fn observe_value(&mut self, ts_ns: i64, value: f64, quality: Quality) -> Option<Anomaly> {
        self.observe_driven(ts_ns, value, quality, &NO_DRIVERS)
    }

    /// Feeds one value with the current values of its drivers (dependent signals; NaN: no
    /// value, the driver's features stay as they were). Returns an event phase change.
    #[inline]
    pub fn observe_driven(
        &mut self,
        ts_ns: i64,
        value: f64,
        quality: Quality,
        drivers: &[f64; MAX_DRIVERS],
    ) -> Option<Anomaly> {
        if quality == Quality::Bad || !value.is_finite() {
            self.counters.bad += 1;
            return None;
        }
        let raw = value;
        let value = value.clamp(-VALUE_CAP, VALUE_CAP);
        let mut gap_score = 0.0;
        let mut dt_s = 0.0;
        if self.has_last {
            // Time is measured from the latest reading seen, so a clock correction neither
            // corrupts the interval nor makes the next reading look like a gap.
            let latest = self.last_ts.max(self.max_ts);
            if ts_ns < self.last_ts {
                if latest.saturating_sub(ts_ns) > self.p.clock_tolerance_ns {
                    self.counters.out_of_order += 1;
                    let continues = ts_ns >= self.prev_ts
                        && (self.behind_run == 0 || ts_ns >= self.behind_last);
                    self.behind_run = if continues { self.behind_run + 1 } else { 0 };
                    self.behind_last = ts_ns;
                    if self.behind_run < RESYNC_AFTER {
                        return None;
                    }
                    // The latest reading was the odd one out: time follows the others again.
                    self.counters.clock_resyncs += 1;
                    self.max_ts = ts_ns;
                    self.last_ts = ts_ns;
                    self.behind_run = 0;
                    self.chk_ts = self.chk_ts.min(ts_ns);
                    self.flat_since = self.flat_since.min(ts_ns);
                    self.cusum_pos_since = self.cusum_pos_since.min(ts_ns);
                    self.cusum_neg_since = self.cusum_neg_since.min(ts_ns);
                    self.event.rewind(ts_ns);
                } else {
                    // A clock correction: accepted in arrival order, no time passes.
                    self.counters.clock_corrections += 1;
                }
            } else if ts_ns > latest {
                self.behind_run = 0;
                self.prev_ts = latest;
                dt_s = ts_ns.saturating_sub(latest) as f64 * 1e-9;
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
        }
        self.counters.readings += 1;
        let gated = !self.running
            || ts_ns.saturating_sub(self.started_ns) < self.p.settle_ns
            || (self.reg.is_some() && self.waiting_for_drivers(ts_ns));

        let mut sub = SubScores {
            gap: gap_score,
            ..SubScores::default()
        };
        // Flatline first: a value repeating exactly is suspect before it is a flatline.
        if let Some((after_s, tol)) = self.p.flatline {
            if !self.running {
                // A stopped machine's readings may well be constant.
                self.flat_value = f64::NAN;
                self.flat_n = 0;
            } else if !self.flat_value.is_finite() || (value - self.flat_value).abs() > tol {
                self.flat_value = value;
                self.flat_since = ts_ns;
                self.flat_n = 1;
            } else {
                self.flat_n = self.flat_n.saturating_add(1);
                let flat_s = ts_ns.saturating_sub(self.flat_since) as f64 * 1e-9;
                sub.flatline = ratio_score(flat_s, after_s);
            }
        }
        let suspect = self.stuck();

        // The value the baseline detectors see: the residual for a dependent signal.
        let expected = match &mut self.reg {
            Some(r) => {
                r.set_drivers(dt_s, drivers);
                r.predict()
            }
            None => 0.0,
        };
        // A new operating point (the drivers where the fit has not learned them): the expected
        // value is an extrapolation. The signal adapts: not judged, the regression learns the
        // new point unclipped (its shape faster than elsewhere: `learn_new_point`), for three
        // lags (at least ADAPT_MIN_S and the settle time).
        let adapting = if self.reg.is_some() && self.learned && !gated {
            if self.novel(drivers) {
                let s = (3.0 * self.p.depends_lag_s).max(ADAPT_MIN_S);
                let ns = ((s * 1e9) as i64).max(self.p.settle_ns);
                if ts_ns >= self.adapt_until_ns {
                    self.counters.adapted += 1;
                    self.adapt_since_ns = ts_ns;
                }
                self.adapt_until_ns = ts_ns.saturating_add(ns);
            }
            ts_ns < self.adapt_until_ns
        } else {
            false
        };
        let settled =
            ts_ns.saturating_sub(self.adapt_since_ns) >= (ADAPT_LEARN_AFTER_S * 1e9) as i64;
        if self.reg.is_some() && !gated && (!adapting || settled) {
            self.widen_envelope(drivers);
        }
        let gated = gated || adapting;
        let x = value - expected;
        let x_raw = x;
        let x = if self.learned && !gated {
            let c = (SMOOTH_CLIP_Z * self.sigma()).max(10.0 * self.p.min_delta);
            let base = self.mean;
            if (x - base).abs() <= c {
                for sm in [&mut self.fast, &mut self.mid, &mut self.long] {
                    if (*sm - base).abs() > c {
                        *sm = x;
                    }
                }
                x
            } else if (x - self.last_x).abs() <= c {
                x
            } else {
                base + (x - base).clamp(-c, c)
            }
        } else {
            x
        };
        self.last_x = x_raw;

        // Smoothers for level shift, rate and trend (re-seeded when the baseline resumes).
        let resume = self.was_gated && !gated;
        if !self.smooth_init || resume {
            self.smooth_init = true;
            self.fast = x;
            self.mid = x;
            self.long = x;
            if resume {
                self.cusum_pos = 0.0;
                self.cusum_neg = 0.0;
                self.flat_value = f64::NAN;
                self.flat_n = 0;
            }
        } else {
            self.fast += self.a_fast * (x - self.fast);
            self.mid += self.a_mid * (x - self.mid);
            self.long += self.a_long * (x - self.long);
        }
        self.was_gated = gated;

        let learn_n = u64::from(self.p.learn_n);
        if gated || (self.learned && suspect) {
            self.z = 0.0;
            self.z_fast = 0.0;
            if adapting && settled && !suspect && !self.hold {
                if let Some(reg) = &mut self.reg {
                    reg.learn_new_point(value, self.a_base);
                }
            }
        } else if !self.learned {
            self.n += 1;
            self.learn_time_s += dt_s;
            let done = self.n >= learn_n && self.learn_time_s >= self.min_learn_s();
            self.learn_step(value, x, done);
            self.learned = done;
        } else {
            self.n += 1;
            let sigma = self.sigma();
            let inv_sigma = 1.0 / sigma;
            let r = x - self.mean;
            let z = r * inv_sigma;
            let z_fast = (self.fast - self.mean) * inv_sigma;
            self.z = z;
            self.z_fast = z_fast;
            if let Some(t) = self.p.shift_z {
                let mut l = ratio_score(z_fast.abs(), t);
                if self.p.min_delta > 0.0 {
                    // A level shift must matter in the unit too: half the drift's minimum.
                    l = l.min(ratio_score(
                        (self.fast - self.mean).abs(),
                        0.5 * self.p.min_delta,
                    ));
                }
                sub.level_shift = l;
            }
            if let Some(t) = self.p.spike_z {
                let mut sp = ratio_score(z.abs(), t);
                if self.p.min_delta > 0.0 {
                    // A spike must matter in the unit too, as a level shift must.
                    sp = sp.min(ratio_score(r.abs(), 0.5 * self.p.min_delta));
                }
                sub.spike = sp;
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
                let mut d = ratio_score(cp.max(cn), h);
                if self.p.min_delta > 0.0 {
                    // Significant in σ *and* large enough in the unit.
                    d = d.min(ratio_score((self.mid - self.mean).abs(), self.p.min_delta));
                }
                sub.drift = d;
            }
            if let Some(m) = self.p.max_rate_per_min {
                if self.dt_avg_s > 0.0 {
                    sub.rate = ratio_score(self.rate_per_min().abs(), m);
                }
            }
            if !self.event.open && !self.hold {
                // The baseline learns only while no event is open, from clipped residuals.
                let clip = WINSOR_Z * sigma;
                let rc = r.clamp(-clip, clip);
                match &mut self.reg {
                    // A dependent signal's level is the regression's intercept (a second
                    // adaptive mean would track ramps away).
                    Some(reg) => reg.learn(expected + self.mean + rc, Some(self.a_base)),
                    None => self.mean += self.a_base * rc,
                }
                self.absdev += self.a_base * (r.abs().min(clip) - self.absdev);
                self.stable_windows = 0;
                self.chk_ts = ts_ns;
                self.chk_level = self.long;
            } else {
                // Recent spread and stability of the level while the baseline is frozen: every
                // third of `relearn_after_s` the slow level's change, projected over the whole
                // re-learning time, must stay under half the drift's minimum effect (or 2σ).
                self.recent_absdev += self.a_mid * ((x - self.mid).abs() - self.recent_absdev);
                let window_ns = self.p.relearn_after_ns / 3;
                if ts_ns.saturating_sub(self.chk_ts) >= window_ns {
                    let change = (self.long - self.chk_level).abs() * 3.0;
                    if change <= 0.5 * self.p.min_delta.max(2.0 * sigma) {
                        self.stable_windows = self.stable_windows.saturating_add(1);
                    } else {
                        self.stable_windows = 0;
                    }
                    self.chk_ts = ts_ns;
                    self.chk_level = self.long;
                }
            }
        }

        if let Some(l) = self.p.limits {
            sub.limit = limit_score_sided(raw, &l, self.p.normal, !gated);
        }
        if sub.spike < 0.5 && value >= self.driver_range[0] && value <= self.driver_range[1] {
            self.driver_value = value;
        }

        self.has_last = true;
        self.max_ts = self.max_ts.max(ts_ns);
        self.last_ts = ts_ns;
        self.last_value = raw;
        self.last_expected = expected;

        // Re-learning: an event open long enough on a stable level closes as the new normal.
        if self.event.open
            && !gated
            && ts_ns.saturating_sub(self.event.since_ns) >= self.p.relearn_after_ns
            && {
                self.sub = sub;
                self.stable()
            }
        {
            return self.relearn_now(ts_ns);
        }

        self.sub = sub;
        let (score, kind) = sub.max();
        self.score = score;
        self.kind = kind;
        let mut phase = self.event.step(ts_ns, score, kind, &self.p.hysteresis);
        if phase == Some(Phase::Opened) {
            self.recent_absdev = self.absdev;
        }
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
        phase.map(|phase| self.anomaly(phase, ts_ns, Resolution::Normal))
    }

    /// One reading of the learning period: plain running mean and mean absolute deviation
    /// (for a dependent signal: the regression's moments; its residual spread at the end).
    fn learn_step(&mut self, value: f64, x: f64, done: bool) {
        let inv = 1.0 / self.n as f64;
        self.z = 0.0;
        self.z_fast = 0.0;
        match &mut self.reg {
            Some(reg) => {
                reg.learn(value, None);
                if done {
                    reg.solve();
                    self.mean = 0.0;
                    self.absdev = reg.residual_var().sqrt() / MAD_TO_SIGMA;
                    let x = value - reg.predict();
                    self.fast = x;
                    self.mid = x;
                    self.long = x;
                }
            }
            None => {
                self.mean += (x - self.mean) * inv;
                self.absdev += ((x - self.mean).abs() - self.absdev) * inv;
            }
        }
    }

    /// Checks for a dropout at `now_ns` (the caller's clock) without a reading: opens a
    /// dropout event when no reading came for longer than the gap threshold.
    pub fn tick(&mut self, now_ns: i64) -> Option<Anomaly> {
        let g = self.p.gap_s?;
        let latest = self.last_ts.max(self.max_ts);
        if !self.has_last || now_ns <= latest {
            return None;
        }
        let gap_s = now_ns.saturating_sub(latest) as f64 * 1e-9;
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
            .map(|phase| self.anomaly(phase, now_ns, Resolution::Normal))
    }
}

impl Detector for SignalDetector {
    fn observe(&mut self, r: &Reading) -> Option<Anomaly> {
        self.observe_value(r.ts_ns, r.value, r.quality)
    }
    fn score(&self) -> f64 {
        self.score
    }
}
