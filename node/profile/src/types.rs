//! The profile types: signals with units, ranges and limits, detector parameters, correlated
//! signal groups and failure modes (symptoms → likely causes → actions), with their serde shape
//! (`deny_unknown_fields`) and defaults. Plain data and lookups only: parsing lives in `parse`,
//! checking in `validate`; nothing here reads files.

use millwright_core::{AnomalyKind, Direction, Limits, Urgency};
use serde::{Deserialize, Serialize};

/// An asset profile: what a kind of machine measures and how its faults show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name, e.g. `centrifugal-pump`.
    pub name: String,
    /// What kind of machine this is for.
    #[serde(default)]
    pub description: String,
    /// Detection settings shared by all signals.
    #[serde(default)]
    pub defaults: DetectDefaults,
    /// Operating states (stopped / starting / running) from one signal; absent: always running.
    #[serde(default)]
    pub states: Option<StatesSpec>,
    /// The signals of the asset.
    pub signals: Vec<SignalSpec>,
    /// Groups of signals that deviate together in a fault (multivariate detector).
    #[serde(default)]
    pub correlations: Vec<CorrelationSpec>,
    /// Known failure modes.
    #[serde(default)]
    pub failure_modes: Vec<FailureMode>,
}

/// Detection settings shared by all signals of a profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectDefaults {
    /// Readings used to learn the baseline before baseline-based detectors score.
    pub learn_n: u32,
    /// Span of the baseline EWMA in readings (longer: slower to adapt).
    pub baseline_n: u32,
    /// Span of the fast EWMA (level shift) in readings.
    pub fast_n: u32,
    /// Span of the trend EWMA (rate and trend) in readings; must exceed `fast_n`.
    pub trend_n: u32,
    /// Score at which an event opens (0.5 = the detector's own threshold).
    pub open_score: f64,
    /// Score below which an event may close (hysteresis).
    pub close_score: f64,
    /// Seconds the score must stay below `close_score` before the event closes.
    pub close_after_s: f64,
    /// |z| from which another signal counts as "also deviating" in evidence.
    pub related_z: f64,
    /// Seconds an event stays open before a stable new level closes it as the new normal and
    /// the baseline re-learns (per-signal override: `relearn_after_s` on the signal).
    pub relearn_after_s: f64,
    /// Least learning time (seconds) of a dependent signal's regression, so its drivers have
    /// moved through their range while it learns (at least three lag time constants, too).
    pub learn_dependent_s: f64,
    /// Readings whose time goes back by up to this many seconds are accepted in arrival order
    /// (clock corrections); larger backward steps are skipped and counted.
    pub clock_tolerance_s: f64,
}

impl Default for DetectDefaults {
    fn default() -> Self {
        Self {
            learn_n: 120,
            baseline_n: 1800,
            fast_n: 5,
            trend_n: 60,
            open_score: 0.5,
            close_score: 0.3,
            close_after_s: 60.0,
            related_z: 2.0,
            relearn_after_s: 3600.0,
            learn_dependent_s: 1800.0,
            clock_tolerance_s: 3600.0,
        }
    }
}

/// One signal of the asset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSpec {
    /// Signal name as it arrives (unit-suffixed), e.g. `bearing_temp_c`.
    pub name: String,
    /// Unit symbol, e.g. `°C`.
    pub unit: String,
    /// What it measures.
    #[serde(default)]
    pub description: String,
    /// Normal operating range `[low, high]`.
    pub normal: Option<[f64; 2]>,
    /// Hard limits (alarm / trip).
    #[serde(default)]
    pub limits: Limits,
    /// Smallest meaningful change (sensor resolution / noise); the spread never goes below it.
    pub noise_floor: Option<f64>,
    /// Signals this one depends on (at most 3): its baseline is the value expected given them
    /// (an online regression on `[1, u, u²]` of each driver, `u` scaled by its normal range).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Time constant (seconds) of the first-order lag between the drivers and this signal
    /// (e.g. a thermal time constant); 0 or absent: no lag.
    pub depends_lag_s: Option<f64>,
    /// Override of `defaults.relearn_after_s` for this signal.
    pub relearn_after_s: Option<f64>,
    /// Override of `states.settle_s` for this signal (e.g. a slow temperature after a start).
    pub settle_s: Option<f64>,
    /// Which detectors run on this signal, with their parameters.
    #[serde(default)]
    pub detect: DetectSpec,
}

/// Operating states of the machine from one signal: below `running_above` it is stopped; for
/// `settle_s` after a start it is starting; otherwise running. Stopped and starting suppress the
/// baseline detectors and do not update the running baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatesSpec {
    /// The signal that tells the state (speed, current or a run signal).
    pub signal: String,
    /// At or below this value the machine is stopped.
    pub running_above: f64,
    /// Seconds after a start during which the baseline detectors settle.
    #[serde(default = "default_settle_s")]
    pub settle_s: f64,
}

fn default_settle_s() -> f64 {
    120.0
}

/// Detectors of one signal; an absent table disables that detector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectSpec {
    /// Robust adaptive baseline with level-shift and spike detection.
    pub level: Option<LevelSpec>,
    /// Slow drift (two-sided CUSUM on the standardised residual).
    pub drift: Option<DriftSpec>,
    /// Rate of change limit.
    pub rate: Option<RateSpec>,
    /// Flatline / stuck sensor.
    pub flatline: Option<FlatlineSpec>,
    /// Dropout / gap between readings.
    pub gap: Option<GapSpec>,
    /// Score the hard limits and normal range of the signal (default true when limits exist).
    pub limits: Option<bool>,
}

/// Level-shift and spike parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LevelSpec {
    /// |z| of the fast EWMA against the baseline that counts as a level shift.
    pub shift_z: f64,
    /// |z| of a single reading that counts as a spike.
    pub spike_z: f64,
}

impl Default for LevelSpec {
    fn default() -> Self {
        Self {
            shift_z: 5.0,
            spike_z: 9.0,
        }
    }
}

/// CUSUM drift parameters (in σ).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftSpec {
    /// Allowance per reading in σ (drifts smaller than this are ignored).
    pub k: f64,
    /// Decision threshold in σ.
    pub h: f64,
    /// Smallest drift that counts, in the signal's unit (default: 5 % of the normal range's
    /// width); a change must be significant in σ *and* at least this large.
    pub min_delta: Option<f64>,
}

impl Default for DriftSpec {
    fn default() -> Self {
        Self {
            k: 1.0,
            h: 20.0,
            min_delta: None,
        }
    }
}

/// Rate-of-change limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSpec {
    /// Largest normal |rate| in unit per minute.
    pub max_per_min: f64,
}

/// Flatline parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatlineSpec {
    /// Seconds without change that count as stuck.
    pub after_s: f64,
    /// Changes up to this size (in the unit) count as "no change".
    #[serde(default)]
    pub tolerance: f64,
}

/// Gap parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapSpec {
    /// Seconds between readings that count as a dropout.
    pub after_s: f64,
}

/// A group of signals that move together in a fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationSpec {
    /// Group name, e.g. `bearing_distress`.
    pub name: String,
    /// Member signals (at least two).
    pub signals: Vec<String>,
    /// Expected direction of each member (`up` / `down`), same length as `signals`.
    pub directions: Vec<Direction>,
    /// Each member must deviate at least this many σ (smoothed) in its direction.
    #[serde(default = "default_group_z")]
    pub z: f64,
    /// Readings older than this (seconds) do not count.
    #[serde(default = "default_group_age")]
    pub max_age_s: f64,
}

fn default_group_z() -> f64 {
    3.0
}
fn default_group_age() -> f64 {
    60.0
}

/// A failure mode: how it shows, why it happens, what to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureMode {
    /// Identifier, e.g. `bearing_wear`.
    pub id: String,
    /// Title for people.
    pub title: String,
    /// Standard or source the thresholds come from, e.g. `ISO 20816-3`.
    #[serde(default)]
    pub reference: String,
    /// Symptoms; the first is the main one.
    pub symptoms: Vec<Symptom>,
    /// Likely causes, most likely first.
    pub causes: Vec<String>,
    /// Recommended actions.
    pub actions: Vec<ActionSpec>,
}

/// One symptom of a failure mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Symptom {
    /// Signal that shows it.
    pub signal: String,
    /// Direction of the deviation (`up`, `down`, or `flat` for stuck/absent).
    pub direction: Direction,
    /// Anomaly kinds that show it (empty: any).
    #[serde(default)]
    pub kinds: Vec<AnomalyKind>,
}

/// A recommended action in a profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// What to do.
    pub text: String,
    /// How soon.
    pub urgency: Urgency,
}

impl Profile {
    /// Index of a signal by name.
    pub fn signal_index(&self, name: &str) -> Option<usize> {
        self.signals.iter().position(|s| s.name == name)
    }

    /// The signal spec by name.
    pub fn signal(&self, name: &str) -> Option<&SignalSpec> {
        self.signals.iter().find(|s| s.name == name)
    }
}
