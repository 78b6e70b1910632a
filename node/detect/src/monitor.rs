//! All detectors of one asset under its profile: one [`SignalDetector`] per signal plus the
//! multivariate correlation groups (signals of the asset deviating together in the expected
//! directions, e.g. vibration and bearing temperature both rising).
//!
//! Routing is by signal name; readings of other assets or unknown signals are ignored and
//! counted. No clock, no I/O: `tick` takes the caller's time for dropout checks.
//!
//! The monitor also keeps the asset's operating state from the profile's `[states]` signal
//! (stopped at or below `running_above`, starting for `settle_s` after a start, else running)
//! and tells every signal detector on a change; and it hands each dependent signal the current
//! values of its drivers. A correlation group open for `relearn_after_s` whose members are all
//! stable re-learns them and closes as the new normal.

use crate::event::{EventTracker, Hysteresis};
use crate::regress::MAX_DRIVERS;
use crate::signal::{SignalDetector, NO_DRIVERS};
use millwright_core::{
    Anomaly, AnomalyKind, Direction, Evidence, Phase, Quality, Reading, RelatedSignal, Resolution,
};
use millwright_profile::Profile;
use std::sync::Arc;

/// Why a monitor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The profile is inconsistent (run `Profile::validate` for every problem).
    #[error("profile {profile}: {message}")]
    Profile {
        /// Profile name.
        profile: String,
        /// What is wrong.
        message: String,
    },
}

/// The multivariate detector: a group of signals that must deviate together.
#[derive(Clone, Debug)]
pub struct CorrelationDetector {
    name: Arc<str>,
    members: Vec<(usize, f64)>,
    z: f64,
    max_age_ns: i64,
    hysteresis: Hysteresis,
    event: EventTracker,
    score: f64,
    relearned: bool,
}

impl CorrelationDetector {
    /// Group name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Score of the last evaluation.
    pub fn score(&self) -> f64 {
        self.score
    }

    fn involves(&self, idx: usize) -> bool {
        self.members.iter().any(|(i, _)| *i == idx)
    }

    /// Joint score: the weakest member's signed smoothed deviation against the group threshold.
    fn evaluate(&mut self, ts_ns: i64, signals: &[SignalDetector]) -> Option<Phase> {
        let mut weakest = f64::INFINITY;
        for &(i, sign) in &self.members {
            let s = &signals[i];
            let fresh = s
                .last_ts()
                .is_some_and(|t| ts_ns.saturating_sub(t) <= self.max_age_ns);
            if !s.learned() || !fresh {
                weakest = 0.0;
                break;
            }
            weakest = weakest.min(sign * s.z_fast());
        }
        self.score = (0.5 * weakest / self.z).clamp(0.0, 1.0);
        self.event
            .step(ts_ns, self.score, AnomalyKind::Correlated, &self.hysteresis)
    }
}

/// A driver without a gap threshold is lost after this long without a reading, s.
const DRIVER_MAX_AGE_S: f64 = 60.0;

/// A reading waiting to be judged: time, value, quality.
type Reading1 = (i64, f64, Quality);

/// The drivers of one signal (indices into the monitor's signals).
#[derive(Clone, Copy, Debug, Default)]
struct Drivers {
    idx: [usize; MAX_DRIVERS],
    n: usize,
}

/// The asset's operating state from its state signal.
#[derive(Clone, Copy, Debug)]
struct OpState {
    idx: usize,
    running_above: f64,
    running: bool,
    started_ns: i64,
}

/// The detectors of one asset.
#[derive(Clone, Debug)]
pub struct AssetMonitor {
    asset: Arc<str>,
    profile: Arc<str>,
    signals: Vec<SignalDetector>,
    drivers: Vec<Drivers>,
    groups: Vec<CorrelationDetector>,
    state: Option<OpState>,
    pending: Vec<Option<Reading1>>,
    n_pending: usize,
    seen_ts: Vec<i64>,
    done_ts: Vec<i64>,
    relearn_after_ns: i64,
    related_z: f64,
    ignored: u64,
}

impl AssetMonitor {
    /// Builds the detectors of `asset` from its (validated) profile.
    pub fn new(asset: &str, profile: &Profile) -> Result<Self, DetectError> {
        let errs = profile.validate();
        if let Some(e) = errs.first() {
            return Err(DetectError::Profile {
                profile: profile.name.clone(),
                message: format!("{e} ({} problem(s) in total)", errs.len()),
            });
        }
        let signals: Vec<SignalDetector> = profile
            .signals
            .iter()
            .map(|s| SignalDetector::from_profile(asset, profile, s))
            .collect();
        let d = &profile.defaults;
        let hysteresis = Hysteresis {
            open_score: d.open_score,
            close_score: d.close_score,
            close_after_ns: (d.close_after_s * 1e9) as i64,
        };
        let mut groups = Vec::new();
        for c in &profile.correlations {
            let mut members = Vec::new();
            for (name, dir) in c.signals.iter().zip(&c.directions) {
                let idx = profile
                    .signal_index(name)
                    .ok_or_else(|| DetectError::Profile {
                        profile: profile.name.clone(),
                        message: format!("correlation {}: unknown signal {name}", c.name),
                    })?;
                let sign = if *dir == Direction::Down { -1.0 } else { 1.0 };
                members.push((idx, sign));
            }
            groups.push(CorrelationDetector {
                name: Arc::from(c.name.as_str()),
                members,
                z: c.z,
                max_age_ns: (c.max_age_s * 1e9) as i64,
                hysteresis,
                event: EventTracker::new(),
                score: 0.0,
                relearned: false,
            });
        }
        let drivers = profile
            .signals
            .iter()
            .map(|s| {
                let mut d = Drivers::default();
                for name in s.depends_on.iter().take(MAX_DRIVERS) {
                    if let Some(i) = profile.signal_index(name) {
                        d.idx[d.n] = i;
                        d.n += 1;
                    }
                }
                d
            })
            .collect();
        let state = profile.states.as_ref().and_then(|st| {
            Some(OpState {
                idx: profile.signal_index(&st.signal)?,
                running_above: st.running_above,
                running: true,
                started_ns: i64::MIN,
            })
        });
        let n = signals.len();
        Ok(Self {
            asset: Arc::from(asset),
            profile: Arc::from(profile.name.as_str()),
            signals,
            drivers,
            groups,
            state,
            pending: vec![None; n],
            n_pending: 0,
            seen_ts: vec![i64::MIN; n],
            done_ts: vec![i64::MIN; n],
            relearn_after_ns: (d.relearn_after_s * 1e9) as i64,
            related_z: d.related_z,
            ignored: 0,
        })
    }

    /// The asset tag.
    pub fn asset(&self) -> &str {
        &self.asset
    }

    /// The profile name.
    pub fn profile_name(&self) -> &str {
        &self.profile
    }

    /// Index of a signal by name.
    pub fn signal_index(&self, signal: &str) -> Option<usize> {
        self.signals
            .iter()
            .position(|s| &*s.sensor().signal == signal)
    }

    /// The per-signal detectors, in profile order.
    pub fn signals(&self) -> &[SignalDetector] {
        &self.signals
    }

    /// The correlation groups.
    pub fn groups(&self) -> &[CorrelationDetector] {
        &self.groups
    }

    /// Whether the asset is running (no `[states]`: always); false while stopped.
    pub fn running(&self) -> bool {
        self.state.is_none_or(|s| s.running)
    }

    /// Accepts backward time steps up to `ns` as clock corrections on every signal.
    pub fn set_clock_tolerance_ns(&mut self, ns: i64) {
        for s in &mut self.signals {
            s.set_clock_tolerance_ns(ns);
        }
    }

    /// Readings ignored because their asset or signal is not part of this monitor.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Current evidence of a signal.
    pub fn evidence(&self, idx: usize) -> Option<Evidence> {
        self.signals.get(idx).map(SignalDetector::evidence)
    }

    /// Score of the last reading of signal `idx`, or of the group containing it if higher.
    pub fn signal_score(&self, idx: usize) -> f64 {
        let own = self
            .signals
            .get(idx)
            .map_or(0.0, millwright_core::Detector::score);
        self.groups
            .iter()
            .filter(|g| g.involves(idx))
            .map(|g| g.score)
            .fold(own, f64::max)
    }

    /// Highest current score of any signal or group.
    pub fn score(&self) -> f64 {
        let s = self
            .signals
            .iter()
            .map(millwright_core::Detector::score)
            .fold(0.0, f64::max);
        self.groups.iter().map(|g| g.score).fold(s, f64::max)
    }

    /// Feeds a reading; events (0 to a few) are appended to `out`. Readings of another asset
    /// or an unknown signal are counted in [`AssetMonitor::ignored`].
    pub fn observe(&mut self, r: &Reading, out: &mut Vec<Anomaly>) {
        if *r.sensor.asset != *self.asset {
            self.ignored += 1;
            return;
        }
        match self.signal_index(&r.sensor.signal) {
            Some(i) => self.observe_at(i, r.ts_ns, r.value, r.quality, out),
            None => self.ignored += 1,
        }
    }

    /// Feeds a value of signal `idx` (fast path, no name lookup).
    ///
    /// Readings of one instant may arrive in any order; a reading is judged once the readings
    /// it depends on for that instant are in: its drivers' (judged first) and the state
    /// signal's. Until then it waits (at most until the signal's next reading, the next
    /// [`AssetMonitor::tick`] or [`AssetMonitor::flush`]), so a load step or a stop seen first
    /// on a dependent signal is not mistaken for a fault.
    pub fn observe_at(
        &mut self,
        idx: usize,
        ts_ns: i64,
        value: f64,
        quality: Quality,
        out: &mut Vec<Anomaly>,
    ) {
        if idx >= self.signals.len() {
            self.ignored += 1;
            return;
        }
        if let Some(st) = &mut self.state {
            if st.idx == idx && quality != Quality::Bad && value.is_finite() {
                let running = value > st.running_above;
                if running != st.running {
                    st.running = running;
                    if running {
                        st.started_ns = ts_ns;
                    }
                    let (r, since) = (st.running, st.started_ns);
                    for s in &mut self.signals {
                        s.set_running(r, since);
                    }
                }
            }
        }
        if let Some(p) = self.pending.get_mut(idx).and_then(Option::take) {
            self.n_pending -= 1;
            self.judge(idx, p, out);
        }
        if let Some(t) = self.seen_ts.get_mut(idx) {
            *t = ts_ns;
        }
        if self.ready(idx, ts_ns) {
            self.judge(idx, (ts_ns, value, quality), out);
        } else if let Some(slot) = self.pending.get_mut(idx) {
            *slot = Some((ts_ns, value, quality));
            self.n_pending += 1;
        }
        if self.n_pending > 0 {
            self.resolve(out, None);
        }
    }

    /// Judges every waiting reading now (end of a batch or of a back-test row).
    pub fn flush(&mut self, out: &mut Vec<Anomaly>) {
        if self.n_pending > 0 {
            self.resolve(out, None);
            self.resolve(out, Some(i64::MAX));
        }
    }

    /// Whether a reading of `idx` at `ts_ns` has what it waits for.
    fn ready(&self, idx: usize, ts_ns: i64) -> bool {
        if let Some(d) = self.drivers.get(idx) {
            for j in d.idx.iter().take(d.n) {
                if self.done_ts.get(*j).is_none_or(|t| *t < ts_ns) {
                    return false;
                }
            }
        }
        match &self.state {
            Some(st) if st.idx != idx => self.seen_ts.get(st.idx).is_some_and(|t| *t >= ts_ns),
            _ => true,
        }
    }

    /// Judges waiting readings that became ready, or (with `force_before`) every waiting
    /// reading older than that time.
    fn resolve(&mut self, out: &mut Vec<Anomaly>, force_before: Option<i64>) {
        let n = self.signals.len();
        // Each pass judges at least one reading or stops; a driver chain is at most n long.
        for _ in 0..n {
            let mut progress = false;
            for i in 0..n {
                let Some((ts, _, _)) = self.pending.get(i).copied().flatten() else {
                    continue;
                };
                if self.ready(i, ts) || force_before.is_some_and(|f| ts < f) {
                    if let Some(p) = self.pending.get_mut(i).and_then(Option::take) {
                        self.n_pending -= 1;
                        self.judge(i, p, out);
                        progress = true;
                    }
                }
            }
            if !progress || self.n_pending == 0 {
                break;
            }
        }
    }

    /// Runs the detectors of signal `idx` on one reading, with its drivers' current values,
    /// then the correlation groups it is part of.
    fn judge(&mut self, idx: usize, (ts_ns, value, quality): Reading1, out: &mut Vec<Anomaly>) {
        if let Some(t) = self.done_ts.get_mut(idx) {
            *t = ts_ns;
        }
        let mut x = NO_DRIVERS;
        let mut lost = false;
        if let Some(d) = self.drivers.get(idx) {
            for (slot, j) in x.iter_mut().zip(d.idx.iter().take(d.n)) {
                if let Some(s) = self.signals.get(*j) {
                    *slot = s.driver_value();
                    // A driver without a reading for longer than its gap threshold (a broken
                    // loop, a silent device) or stuck on one value leaves the expected value
                    // unknown.
                    let max_age_ns = (s.params().gap_s.unwrap_or(DRIVER_MAX_AGE_S) * 1e9) as i64;
                    lost |= s.stuck()
                        || s.last_ts()
                            .is_some_and(|t| ts_ns.saturating_sub(t) > max_age_ns);
                }
            }
        }
        let Some(det) = self.signals.get_mut(idx) else {
            return;
        };
        if det.is_dependent() {
            det.set_drivers_lost(lost, ts_ns);
        }
        if let Some(mut a) = det.observe_driven(ts_ns, value, quality, &x) {
            if a.resolution == Some(Resolution::NewNormal) {
                self.mark_relearned(idx);
            }
            a.related = self.related(idx);
            out.push(a);
        }
        for g in 0..self.groups.len() {
            if !self.groups[g].involves(idx) {
                continue;
            }
            if let Some(phase) = self.groups[g].evaluate(ts_ns, &self.signals) {
                if phase == Phase::Opened {
                    self.groups[g].relearned = false;
                }
                self.update_holds();
                let res = if self.groups[g].relearned {
                    Resolution::NewNormal
                } else {
                    Resolution::Normal
                };
                out.push(self.group_anomaly(g, phase, ts_ns, res));
            } else if self.groups[g].event.open {
                self.group_relearn(g, ts_ns, out);
            }
        }
    }

    /// Notes that signal `idx` re-learned: its open groups will close as the new normal.
    fn mark_relearned(&mut self, idx: usize) {
        for g in &mut self.groups {
            if g.event.open && g.involves(idx) {
                g.relearned = true;
            }
        }
    }

    /// A group open for `relearn_after_s` whose members all sit on a stable level: the
    /// members re-learn and the group closes as the new normal.
    fn group_relearn(&mut self, g: usize, ts_ns: i64, out: &mut Vec<Anomaly>) {
        let grp = &self.groups[g];
        if ts_ns.saturating_sub(grp.event.since_ns) < self.relearn_after_ns
            || !grp.members.iter().all(|&(i, _)| self.signals[i].stable())
        {
            return;
        }
        let members: Vec<usize> = grp.members.iter().map(|&(i, _)| i).collect();
        for i in members {
            if let Some(mut a) = self.signals[i].relearn_now(ts_ns) {
                a.related = self.related(i);
                out.push(a);
            }
        }
        self.groups[g].event.force_close();
        self.groups[g].score = 0.0;
        self.update_holds();
        out.push(self.group_anomaly(g, Phase::Closed, ts_ns, Resolution::NewNormal));
    }

    /// Dropout check at the caller's time `now_ns` for every signal; readings still waiting
    /// for their drivers from before `now_ns` are judged first.
    pub fn tick(&mut self, now_ns: i64, out: &mut Vec<Anomaly>) {
        if self.n_pending > 0 {
            self.resolve(out, Some(now_ns));
        }
        for i in 0..self.signals.len() {
            if let Some(mut a) = self.signals[i].tick(now_ns) {
                a.related = self.related(i);
                out.push(a);
            }
        }
    }

    /// Holds the baselines of the members of every open correlation group.
    fn update_holds(&mut self) {
        for s in &mut self.signals {
            s.set_hold(false);
        }
        for g in &self.groups {
            if g.event.open {
                for &(i, _) in &g.members {
                    self.signals[i].set_hold(true);
                }
            }
        }
    }

    /// Other learned signals whose smoothed deviation is at least `related_z`.
    fn related(&self, idx: usize) -> Vec<RelatedSignal> {
        self.signals
            .iter()
            .enumerate()
            .filter(|(j, s)| *j != idx && s.learned() && s.z_fast().abs() >= self.related_z)
            .map(|(_, s)| related_of(s))
            .collect()
    }

    fn group_anomaly(&self, g: usize, phase: Phase, ts_ns: i64, res: Resolution) -> Anomaly {
        let grp = &self.groups[g];
        let first = grp.members[0].0;
        let det = &self.signals[first];
        let related = grp.members[1..]
            .iter()
            .map(|(i, _)| related_of(&self.signals[*i]))
            .collect();
        Anomaly {
            id: format!("{}/{}@{}", self.asset, grp.name, grp.event.since_ns),
            sensor: det.sensor().clone(),
            unit: det.unit().clone(),
            kind: AnomalyKind::Correlated,
            kinds: vec![AnomalyKind::Correlated],
            phase,
            since_ns: grp.event.since_ns,
            ts_ns,
            score: grp.score,
            peak_score: grp.event.peak_score,
            evidence: det.evidence(),
            related,
            profile: self.profile.clone(),
            resolution: (phase == Phase::Closed).then_some(res),
        }
    }
}

fn related_of(s: &SignalDetector) -> RelatedSignal {
    let z = s.z_fast();
    RelatedSignal {
        signal: s.sensor().signal.clone(),
        z,
        rate_per_min: s.trend_per_min(),
        direction: if z >= 1.0 {
            Direction::Up
        } else if z <= -1.0 {
            Direction::Down
        } else {
            Direction::Flat
        },
    }
}
