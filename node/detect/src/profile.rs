//! Asset profiles (`pipelines/*.toml`): signals with units and ranges, detector parameters,
//! correlated signal groups and failure modes (symptoms → likely causes → actions).
//!
//! Parsing is strict (`deny_unknown_fields`); [`Profile::validate`] is pure and collects every
//! problem with its path instead of stopping at the first. No detection happens here.

use millwright_core::{AnomalyKind, Direction, Limits, Urgency, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("profile {path}: cannot read: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown / missing / mistyped keys.
    #[error("profile {origin}: {message}")]
    Syntax {
        /// File name or other origin.
        origin: String,
        /// The parser's message (with line and key).
        message: String,
    },
    /// The TOML parsed but its content is inconsistent; every problem is listed.
    #[error("profile {origin}: {} problem(s):\n{}", errors.len(), list(errors))]
    Invalid {
        /// File name or other origin.
        origin: String,
        /// Every problem with its path.
        errors: Vec<ValidationError>,
    },
}

fn list(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

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
    /// Which detectors run on this signal, with their parameters.
    #[serde(default)]
    pub detect: DetectSpec,
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
}

impl Default for DriftSpec {
    fn default() -> Self {
        Self { k: 1.0, h: 20.0 }
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
    /// Parses and validates a profile from TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let errors = p.validate();
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(ProfileError::Invalid {
                origin: origin.to_string(),
                errors,
            })
        }
    }

    /// Reads, parses and validates a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Index of a signal by name.
    pub fn signal_index(&self, name: &str) -> Option<usize> {
        self.signals.iter().position(|s| s.name == name)
    }

    /// The signal spec by name.
    pub fn signal(&self, name: &str) -> Option<&SignalSpec> {
        self.signals.iter().find(|s| s.name == name)
    }

    /// Every problem of the profile with its path; empty when it is usable.
    pub fn validate(&self) -> Vec<ValidationError> {
        let mut errs = Vec::new();
        let mut e = |path: String, msg: String| errs.push(ValidationError::new(path, msg));
        if self.name.trim().is_empty() {
            e("name".into(), "must not be empty".into());
        }
        let d = &self.defaults;
        if d.learn_n < 10 {
            e(
                "defaults.learn_n".into(),
                format!(
                    "{} is too few readings to learn a baseline (at least 10)",
                    d.learn_n
                ),
            );
        }
        if d.fast_n < 1 {
            e("defaults.fast_n".into(), "must be at least 1".into());
        }
        if d.trend_n <= d.fast_n {
            e(
                "defaults.trend_n".into(),
                format!("{} must be larger than fast_n ({})", d.trend_n, d.fast_n),
            );
        }
        if d.baseline_n <= d.trend_n {
            e(
                "defaults.baseline_n".into(),
                format!(
                    "{} must be larger than trend_n ({})",
                    d.baseline_n, d.trend_n
                ),
            );
        }
        if !(d.open_score > 0.0 && d.open_score <= 1.0) {
            e(
                "defaults.open_score".into(),
                format!("{} must be in (0, 1]", d.open_score),
            );
        }
        if !(d.close_score > 0.0 && d.close_score < d.open_score) {
            e(
                "defaults.close_score".into(),
                format!("{} must be in (0, open_score)", d.close_score),
            );
        }
        if !(d.close_after_s.is_finite() && d.close_after_s >= 0.0) {
            e(
                "defaults.close_after_s".into(),
                format!(
                    "{} must be a non-negative number of seconds",
                    d.close_after_s
                ),
            );
        }
        if !(d.related_z.is_finite() && d.related_z > 0.0) {
            e("defaults.related_z".into(), "must be positive".into());
        }
        if self.signals.is_empty() {
            e(
                "signals".into(),
                "a profile needs at least one signal".into(),
            );
        }
        let mut names = HashSet::new();
        for (i, s) in self.signals.iter().enumerate() {
            let at = |k: &str| format!("signals[{i}]({}).{k}", s.name);
            if s.name.trim().is_empty() || s.name.contains([',', ' ', '/', '#', '+']) {
                e(
                    format!("signals[{i}].name"),
                    format!(
                        "{:?} must be non-empty without spaces, commas, '/', '#' or '+'",
                        s.name
                    ),
                );
            }
            if !names.insert(s.name.as_str()) {
                e(
                    format!("signals[{i}].name"),
                    format!("duplicate signal {:?}", s.name),
                );
            }
            if let Some([lo, hi]) = s.normal {
                if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                    e(
                        at("normal"),
                        format!("[{lo}, {hi}] must be two finite numbers, low < high"),
                    );
                }
                if s.limits.min.is_some_and(|m| m > lo) || s.limits.max.is_some_and(|m| m < hi) {
                    e(
                        at("normal"),
                        format!("[{lo}, {hi}] must lie inside the hard limits"),
                    );
                }
            }
            if let (Some(a), Some(b)) = (s.limits.min, s.limits.max) {
                if a >= b || a.is_nan() || b.is_nan() {
                    e(at("limits"), format!("min {a} must be below max {b}"));
                }
            }
            for (k, v) in [("limits.min", s.limits.min), ("limits.max", s.limits.max)] {
                if v.is_some_and(|v| !v.is_finite()) {
                    e(at(k), "must be finite".into());
                }
            }
            if let Some(nf) = s.noise_floor {
                if !(nf.is_finite() && nf > 0.0) {
                    e(
                        at("noise_floor"),
                        format!("{nf} must be a positive number in {}", s.unit),
                    );
                }
            }
            let dt = &s.detect;
            if let Some(l) = &dt.level {
                if !(l.shift_z.is_finite() && l.shift_z > 0.0) {
                    e(at("detect.level.shift_z"), "must be positive".into());
                }
                if !(l.spike_z.is_finite() && l.spike_z > 0.0) {
                    e(at("detect.level.spike_z"), "must be positive".into());
                }
            }
            if let Some(c) = &dt.drift {
                if !(c.k.is_finite() && c.k >= 0.0) {
                    e(at("detect.drift.k"), "must be zero or positive".into());
                }
                if !(c.h.is_finite() && c.h > 0.0) {
                    e(at("detect.drift.h"), "must be positive".into());
                }
            }
            if let Some(r) = &dt.rate {
                if !(r.max_per_min.is_finite() && r.max_per_min > 0.0) {
                    e(
                        at("detect.rate.max_per_min"),
                        format!(
                            "{} must be a positive rate in {}/min",
                            r.max_per_min, s.unit
                        ),
                    );
                }
            }
            if let Some(f) = &dt.flatline {
                if !(f.after_s.is_finite() && f.after_s > 0.0) {
                    e(
                        at("detect.flatline.after_s"),
                        "must be positive seconds".into(),
                    );
                }
                if !(f.tolerance.is_finite() && f.tolerance >= 0.0) {
                    e(
                        at("detect.flatline.tolerance"),
                        "must be zero or positive".into(),
                    );
                }
            }
            if let Some(g) = &dt.gap {
                if !(g.after_s.is_finite() && g.after_s > 0.0) {
                    e(at("detect.gap.after_s"), "must be positive seconds".into());
                }
            }
            if dt.limits == Some(true) && s.limits.min.is_none() && s.limits.max.is_none() {
                e(
                    at("detect.limits"),
                    "is true but the signal has no limits.min or limits.max".into(),
                );
            }
        }
        for (i, c) in self.correlations.iter().enumerate() {
            let at = |k: &str| format!("correlations[{i}]({}).{k}", c.name);
            if c.signals.len() < 2 {
                e(
                    at("signals"),
                    "a correlation group needs at least two signals".into(),
                );
            }
            if c.directions.len() != c.signals.len() {
                e(
                    at("directions"),
                    format!(
                        "has {} entries but signals has {}",
                        c.directions.len(),
                        c.signals.len()
                    ),
                );
            }
            if c.directions.contains(&Direction::Flat) {
                e(at("directions"), "must be `up` or `down`".into());
            }
            let mut seen = HashSet::new();
            for (j, s) in c.signals.iter().enumerate() {
                if !names.contains(s.as_str()) {
                    e(
                        format!("correlations[{i}]({}).signals[{j}]", c.name),
                        format!("unknown signal {s:?}"),
                    );
                }
                if !seen.insert(s) {
                    e(
                        format!("correlations[{i}]({}).signals[{j}]", c.name),
                        format!("{s:?} listed twice"),
                    );
                }
            }
            if !(c.z.is_finite() && c.z > 0.0) {
                e(at("z"), "must be positive".into());
            }
            if !(c.max_age_s.is_finite() && c.max_age_s > 0.0) {
                e(at("max_age_s"), "must be positive seconds".into());
            }
        }
        let mut ids = HashSet::new();
        for (i, f) in self.failure_modes.iter().enumerate() {
            let at = |k: &str| format!("failure_modes[{i}]({}).{k}", f.id);
            if f.id.trim().is_empty() {
                e(format!("failure_modes[{i}].id"), "must not be empty".into());
            }
            if !ids.insert(f.id.as_str()) {
                e(
                    format!("failure_modes[{i}].id"),
                    format!("duplicate failure mode {:?}", f.id),
                );
            }
            if f.title.trim().is_empty() {
                e(at("title"), "must not be empty".into());
            }
            if f.symptoms.is_empty() {
                e(at("symptoms"), "needs at least one symptom".into());
            }
            for (j, s) in f.symptoms.iter().enumerate() {
                if !names.contains(s.signal.as_str()) {
                    e(
                        format!("failure_modes[{i}]({}).symptoms[{j}].signal", f.id),
                        format!("unknown signal {:?}", s.signal),
                    );
                }
            }
            if f.causes.is_empty() || f.causes.iter().any(|c| c.trim().is_empty()) {
                e(at("causes"), "needs at least one non-empty cause".into());
            }
            if f.actions.is_empty() || f.actions.iter().any(|a| a.text.trim().is_empty()) {
                e(at("actions"), "needs at least one non-empty action".into());
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
[[signals]]
name = "temp_c"
unit = "°C"
normal = [20.0, 60.0]
limits = { max = 90.0 }
detect.level = {}
detect.gap = { after_s = 10 }
[[signals]]
name = "vib_mm_s"
unit = "mm/s"
[[correlations]]
name = "g"
signals = ["temp_c", "vib_mm_s"]
directions = ["up", "up"]
[[failure_modes]]
id = "hot"
title = "Overheating"
symptoms = [{ signal = "temp_c", direction = "up", kinds = ["drift"] }]
causes = ["fan"]
actions = [{ text = "check fan", urgency = "high" }]
"#;

    #[test]
    fn good_profile_parses() {
        let p = Profile::from_toml_str(GOOD, "t.toml").unwrap();
        assert_eq!(p.signals.len(), 2);
        assert_eq!(p.signals[0].detect.level, Some(LevelSpec::default()));
        assert_eq!(
            p.failure_modes[0].symptoms[0].kinds,
            vec![AnomalyKind::Drift]
        );
    }

    #[test]
    fn unknown_key_is_a_syntax_error_naming_the_key() {
        let bad = GOOD.replace("unit = \"°C\"", "unit = \"°C\"\ncolour = 3");
        let err = Profile::from_toml_str(&bad, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour") && err.contains("t.toml"), "{err}");
    }

    #[test]
    fn every_semantic_error_is_reported_with_its_path() {
        let bad = GOOD
            .replace("normal = [20.0, 60.0]", "normal = [60.0, 20.0]")
            .replace("after_s = 10", "after_s = -1")
            .replace(
                "signals = [\"temp_c\", \"vib_mm_s\"]",
                "signals = [\"temp_c\", \"nope\"]",
            )
            .replace(
                "signal = \"temp_c\", direction",
                "signal = \"ghost\", direction",
            );
        let Err(ProfileError::Invalid { errors, .. }) = Profile::from_toml_str(&bad, "t.toml")
        else {
            panic!("expected invalid");
        };
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"signals[0](temp_c).normal"), "{paths:?}");
        assert!(
            paths.contains(&"signals[0](temp_c).detect.gap.after_s"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"correlations[0](g).signals[1]"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"failure_modes[0](hot).symptoms[0].signal"),
            "{paths:?}"
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
    }
}
