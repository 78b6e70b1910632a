//! Anomalies and what is said about them: the [`Detector`] trait, anomaly events with their
//! evidence, explanation cards, and the plain-data input and output of maintenance reports.
//!
//! Pure data and one trait: nothing here detects, formats text, or does I/O. Detection lives in
//! `millwright-detect`, text and reports in `millwright-reason`.

use crate::incident::{Incident, Severity};
use crate::reading::{Limits, Reading, SensorId, Unit};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A streaming detector for one sensor (or a group of sensors of one asset).
///
/// Implementations are pure, synchronous and deterministic: time comes from the reading's
/// `ts_ns`, never from a clock, so replaying the same readings gives the same events.
pub trait Detector: Send {
    /// Feeds one reading; returns an event when one opens, changes kind, or closes.
    fn observe(&mut self, r: &Reading) -> Option<Anomaly>;
    /// The anomaly score of the last reading, in `[0, 1]` (0.5 is the alarm threshold).
    fn score(&self) -> f64;
}

/// What kind of abnormal behaviour a detector saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// The level moved away from the learned baseline and stayed there.
    LevelShift,
    /// A single reading far from the baseline.
    Spike,
    /// A slow, persistent drift away from the baseline (CUSUM).
    Drift,
    /// The value changes faster than the profile allows.
    RateOfChange,
    /// The value has not changed for too long (stuck sensor).
    Flatline,
    /// Readings stopped arriving for too long.
    Dropout,
    /// The value is beyond a hard limit of the asset profile.
    Limit,
    /// Several signals of one asset deviate together in the expected directions.
    Correlated,
}

impl AnomalyKind {
    /// Every kind, in declaration order.
    pub const ALL: [AnomalyKind; 8] = [
        AnomalyKind::LevelShift,
        AnomalyKind::Spike,
        AnomalyKind::Drift,
        AnomalyKind::RateOfChange,
        AnomalyKind::Flatline,
        AnomalyKind::Dropout,
        AnomalyKind::Limit,
        AnomalyKind::Correlated,
    ];

    /// Snake-case name as serialised and as written in profiles, e.g. `level_shift`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::LevelShift => "level_shift",
            AnomalyKind::Spike => "spike",
            AnomalyKind::Drift => "drift",
            AnomalyKind::RateOfChange => "rate_of_change",
            AnomalyKind::Flatline => "flatline",
            AnomalyKind::Dropout => "dropout",
            AnomalyKind::Limit => "limit",
            AnomalyKind::Correlated => "correlated",
        }
    }

    /// Words for people, e.g. `level shift`.
    pub fn describe(self) -> &'static str {
        match self {
            AnomalyKind::LevelShift => "level shift",
            AnomalyKind::Spike => "spike",
            AnomalyKind::Drift => "drift",
            AnomalyKind::RateOfChange => "fast change",
            AnomalyKind::Flatline => "stuck value",
            AnomalyKind::Dropout => "data dropout",
            AnomalyKind::Limit => "limit exceeded",
            AnomalyKind::Correlated => "joint deviation",
        }
    }

    /// Parses the snake-case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Position in [`AnomalyKind::ALL`] (for per-kind arrays).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where an anomaly event is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The event just opened (raise an alert).
    Opened,
    /// The event is still open and its main kind changed.
    Updated,
    /// The score stayed below the close threshold long enough; the event is over.
    Closed,
}

/// How a closed anomaly event (or incident) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The signal returned to its baseline.
    Normal,
    /// A lasting, stable change that is not a fault in progress: the baseline re-learned it as
    /// the new normal (after the profile's `relearn_after_s`).
    NewNormal,
}

impl Resolution {
    /// `normal` or `new_normal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Normal => "normal",
            Resolution::NewNormal => "new_normal",
        }
    }
}

/// Direction of a deviation or trend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Above the baseline / increasing.
    Up,
    /// Below the baseline / decreasing.
    Down,
    /// Neither.
    Flat,
}

impl Direction {
    /// `up`, `down`, `flat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Flat => "flat",
        }
    }
}

/// The numbers behind an anomaly: one sensor's state at the moment of the event, in its unit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Latest value.
    pub value: f64,
    /// Learned baseline (robust mean).
    pub baseline: f64,
    /// Learned spread (robust standard deviation, never below the profile's noise floor).
    pub spread: f64,
    /// Deviation of the smoothed value from the baseline in spreads (σ).
    pub z: f64,
    /// Trend of the smoothed value in unit per minute.
    pub rate_per_min: f64,
    /// How long the current trend or deviation has lasted, in seconds.
    pub trend_s: f64,
    /// Seconds the value has not changed (flatline evidence; 0 when it moves).
    pub flat_s: f64,
    /// Length of the last gap between readings in seconds (dropout evidence).
    pub gap_s: f64,
    /// Hard limits from the profile.
    pub limits: Limits,
    /// Normal operating range from the profile, `[low, high]`.
    pub normal: Option<[f64; 2]>,
    /// False while the baseline is still being learned.
    pub learned: bool,
}

impl Evidence {
    /// Direction of the deviation from the baseline (dead band ±1σ).
    pub fn direction(&self) -> Direction {
        if self.z >= 1.0 {
            Direction::Up
        } else if self.z <= -1.0 {
            Direction::Down
        } else {
            Direction::Flat
        }
    }
}

/// Another signal of the same asset that deviates at the same time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelatedSignal {
    /// Signal name, e.g. `bearing_temp_c`.
    pub signal: Arc<str>,
    /// Its deviation in σ (signed).
    pub z: f64,
    /// Its trend in unit per minute.
    pub rate_per_min: f64,
    /// Its direction.
    pub direction: Direction,
}

/// An anomaly event of one sensor (or, for [`AnomalyKind::Correlated`], of a group whose first
/// member is `sensor` and whose other members are in `related`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Stable id of the event: `<asset>/<signal>@<since_ns>`; the same for all its phases.
    pub id: String,
    /// The sensor.
    pub sensor: SensorId,
    /// Its unit.
    pub unit: Unit,
    /// Main kind: the kind with the highest score during the event so far.
    pub kind: AnomalyKind,
    /// Every kind that crossed the alarm threshold during the event.
    pub kinds: Vec<AnomalyKind>,
    /// Opened, updated or closed.
    pub phase: Phase,
    /// When the event opened (ns since the epoch, from the readings).
    pub since_ns: i64,
    /// Time of the reading that produced this phase.
    pub ts_ns: i64,
    /// Score of that reading.
    pub score: f64,
    /// Highest score during the event so far.
    pub peak_score: f64,
    /// The sensor's state at `ts_ns`.
    pub evidence: Evidence,
    /// Other signals of the asset that deviated (|z| ≥ 2) at `ts_ns`.
    pub related: Vec<RelatedSignal>,
    /// Name of the asset profile whose detectors raised it.
    pub profile: Arc<str>,
    /// How the event ended (set only in phase `Closed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

impl Anomaly {
    /// Event duration so far in seconds.
    pub fn duration_s(&self) -> f64 {
        (self.ts_ns - self.since_ns) as f64 / 1e9
    }
}

/// How urgent a recommended action is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// Act now (stop or unload the machine).
    Immediate,
    /// Act within the shift.
    High,
    /// Plan within days.
    Medium,
    /// At the next planned maintenance.
    Low,
}

impl Urgency {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Immediate => "immediate",
            Urgency::High => "high",
            Urgency::Medium => "medium",
            Urgency::Low => "low",
        }
    }
}

/// A recommended maintenance action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// What to do.
    pub text: String,
    /// How soon.
    pub urgency: Urgency,
}

/// Where the explanation text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextSource {
    /// The language model, and it passed the grounding check.
    Model,
    /// The rule-based template (no model, model error, or ungrounded model output).
    Fallback,
}

impl TextSource {
    /// `model` or `fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            TextSource::Model => "model",
            TextSource::Fallback => "fallback",
        }
    }
}

/// What is published for an anomaly event: facts, matching failure modes, and a grounded
/// 2–4 sentence explanation. JSON on MQTT `alerts/<asset>`; an event in InfluxDB.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplanationCard {
    /// The anomaly event id.
    pub id: String,
    /// Asset tag.
    pub asset: String,
    /// Signal name.
    pub signal: String,
    /// Unit symbol of the signal.
    pub unit: String,
    /// Main anomaly kind.
    pub kind: AnomalyKind,
    /// Event phase the card was made for.
    pub phase: Phase,
    /// Event start, RFC 3339 UTC.
    pub since: String,
    /// Event start, ns since the epoch.
    pub since_ns: i64,
    /// Time of the card's facts, ns since the epoch.
    pub ts_ns: i64,
    /// Score in `[0, 1]`.
    pub score: f64,
    /// The encoded facts, one compact line (what the model saw).
    pub evidence: String,
    /// The raw numbers behind `evidence`.
    pub evidence_data: Evidence,
    /// Names of the matching failure modes of the profile, best first.
    pub failure_modes: Vec<String>,
    /// Likely causes, best first.
    pub likely_causes: Vec<String>,
    /// Recommended actions, most urgent first.
    pub actions: Vec<Action>,
    /// The explanation (2–4 sentences), always grounded in the facts.
    pub text: String,
    /// Model that wrote `text` (or `template` for the fallback).
    pub model: String,
    /// Whether `text` came from the model or the fallback.
    pub source: TextSource,
    /// Model attempts made (0 when no model was asked).
    pub attempts: u32,
    /// Confidence of the first failure mode in `failure_modes`, in `[0, 1]` (0: none matches).
    #[serde(default)]
    pub confidence: f64,
    /// The runner-up failure mode when its match is close to the first one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_up: Option<String>,
}

/// Statistics of one signal over a report period (plain data, filled from the store).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalPeriodStats {
    /// Signal name.
    pub signal: String,
    /// Unit symbol.
    pub unit: String,
    /// Readings in the period.
    pub count: u64,
    /// Latest value (None when no reading).
    pub last: Option<f64>,
    /// Time of the latest reading, ns.
    pub last_ts_ns: Option<i64>,
    /// Minimum in the period.
    pub min: Option<f64>,
    /// Maximum in the period.
    pub max: Option<f64>,
    /// Mean in the period.
    pub mean: Option<f64>,
    /// Normal operating range from the profile.
    pub normal: Option<[f64; 2]>,
    /// Hard limits from the profile.
    pub limits: Limits,
}

/// Data-quality counters of a report period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataQuality {
    /// Readings received.
    pub readings: u64,
    /// Readings with bad quality or non-finite values.
    pub bad_readings: u64,
    /// Gaps longer than the expected interval.
    pub gaps: u64,
    /// Longest gap in seconds.
    pub longest_gap_s: f64,
    /// Devices that are offline at the end of the period.
    pub devices_offline: Vec<String>,
}

/// Everything a maintenance report of one asset is made from; plain data, no store access.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    /// Site name.
    pub site: String,
    /// Asset tag.
    pub asset: String,
    /// Profile name of the asset.
    pub profile: String,
    /// Period start, ns.
    pub from_ns: i64,
    /// Period end, ns.
    pub to_ns: i64,
    /// Per-signal statistics.
    pub signals: Vec<SignalPeriodStats>,
    /// Anomaly events of the period (latest phase of each).
    pub anomalies: Vec<Anomaly>,
    /// Explanation cards of those events or incidents (matched by id).
    pub cards: Vec<ExplanationCard>,
    /// Incidents of the period (latest phase of each); their events are in `anomalies`.
    #[serde(default)]
    pub incidents: Vec<Incident>,
    /// Data quality.
    pub quality: DataQuality,
}

/// State of a signal against its profile at the end of a report period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalState {
    /// Inside the normal range.
    Normal,
    /// Outside the normal range but inside the hard limits.
    OutsideNormal,
    /// Beyond a hard limit.
    BeyondLimit,
    /// No reading in the period.
    NoData,
}

/// One signal's line in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalStatus {
    /// The period statistics.
    pub stats: SignalPeriodStats,
    /// State of the latest value.
    pub state: SignalState,
}

/// One anomaly in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportAnomaly {
    /// Event id.
    pub id: String,
    /// Signal.
    pub signal: String,
    /// Main kind.
    pub kind: AnomalyKind,
    /// Start, RFC 3339.
    pub since: String,
    /// Still open at the end of the period.
    pub open: bool,
    /// Peak score.
    pub peak_score: f64,
    /// Encoded evidence.
    pub evidence: String,
    /// Explanation text (from the card, or the template).
    pub explanation: String,
    /// Where the explanation came from.
    pub source: TextSource,
}

/// One incident in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportIncident {
    /// Incident id.
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// Opened, RFC 3339.
    pub opened: String,
    /// Closed, RFC 3339 (None while open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
    /// Still open at the end of the period.
    pub open: bool,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Title of the top diagnosis (empty when none matches).
    pub diagnosis: String,
    /// Its confidence in `[0, 1]`.
    pub confidence: f64,
    /// The close runner-up's title, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_up: Option<String>,
    /// The symptoms in words, e.g. `vibration_rms_mm_s drift up`.
    pub symptoms: Vec<String>,
    /// Explanation text (from the incident's card, or the template).
    pub explanation: String,
    /// Where the explanation came from.
    pub source: TextSource,
    /// Events merged and suppressed.
    pub events_merged: u64,
    /// Event phases suppressed.
    pub events_suppressed: u64,
}

/// A ranked recommended action with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankedAction {
    /// The action.
    pub action: Action,
    /// Event ids that call for it.
    pub because_of: Vec<String>,
}

/// A maintenance report of one asset (or a site, as a list of these).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceReport {
    /// Site.
    pub site: String,
    /// Asset.
    pub asset: String,
    /// Profile.
    pub profile: String,
    /// Period start, RFC 3339.
    pub from: String,
    /// Period end, RFC 3339.
    pub to: String,
    /// Overall state: `ok`, `watch`, `action required`.
    pub status: String,
    /// Incidents of the period (one per fault), most recent first.
    #[serde(default)]
    pub incidents: Vec<ReportIncident>,
    /// Anomaly events of the period (the incidents' details).
    pub anomalies: Vec<ReportAnomaly>,
    /// Each signal against its limits.
    pub signals: Vec<SignalStatus>,
    /// Data quality.
    pub quality: DataQuality,
    /// Recommended actions, most urgent first.
    pub actions: Vec<RankedAction>,
}
