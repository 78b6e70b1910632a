//! Incidents: the anomaly events of one asset that belong to one failure, grouped into one
//! thing an operator acknowledges (ISA-18.2 / EEMUA 191: one fault, one incident). Plain data:
//! the incident, its symptoms (the events), its severity and its ranked diagnosis.
//!
//! Nothing here groups, ranks or formats: grouping lives in `millwright-analytics`, the
//! diagnosis in `millwright-reason` (`facts`), the line protocol in `millwright-sinks`.

use crate::anomaly::{AnomalyKind, Direction, Phase, Resolution};
use serde::{Deserialize, Serialize};

/// A runner-up failure mode is named when its match score is at least this share of the top
/// mode's (the card, the report and the database say the same).
pub const CLOSE_RUNNER_UP: f64 = 0.6;

/// How bad an incident is, from its symptoms' peak scores and limit breaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Abnormal but not pressing (peak score below the warning score).
    Watch,
    /// Clearly abnormal (a high peak score).
    Warning,
    /// A hard limit of the profile is exceeded.
    Critical,
}

impl Severity {
    /// `watch`, `warning`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Watch => "watch",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One symptom of an incident: one anomaly event in its latest state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentSymptom {
    /// The anomaly event id.
    pub event_id: String,
    /// Its signal.
    pub signal: String,
    /// Its main kind.
    pub kind: AnomalyKind,
    /// Every kind it showed.
    pub kinds: Vec<AnomalyKind>,
    /// Direction of the deviation.
    pub direction: Direction,
    /// Its highest score.
    pub peak_score: f64,
    /// Still open.
    pub open: bool,
    /// How it ended (closed symptoms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

/// One failure mode in an incident's ranked diagnosis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiagnosedMode {
    /// Failure mode id, e.g. `bearing_wear`.
    pub id: String,
    /// Its title.
    pub title: String,
    /// How well the symptoms match, in `[0, 1]`.
    pub score: f64,
    /// Confidence that this is the fault, in `[0, 1]`.
    pub confidence: f64,
}

/// An incident of one asset (see the module documentation). JSON on MQTT `alerts/<asset>` for
/// updates and the close; a `millwright_incident` point in InfluxDB for every phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `<asset>#<opened_ns>`; the same for all its phases.
    pub id: String,
    /// Asset tag.
    pub asset: String,
    /// Profile name of the asset.
    pub profile: String,
    /// Opened, updated or closed.
    pub phase: Phase,
    /// When its first event opened, ns since the epoch.
    pub opened_ns: i64,
    /// Time of this phase, ns since the epoch.
    pub updated_ns: i64,
    /// When it closed (phase `Closed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ns: Option<i64>,
    /// Severity now (the highest it reached while open).
    pub severity: Severity,
    /// Its symptoms, in the order they joined.
    pub symptoms: Vec<IncidentSymptom>,
    /// Ranked diagnosis, best first (empty when no failure mode matches).
    pub diagnosis: Vec<DiagnosedMode>,
    /// How it ended (phase `Closed`): `new_normal` when a symptom closed as a new normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Events merged into it after the first.
    pub events_merged: u64,
    /// Event phases that changed nothing worth telling (flapping, repeats) or came while
    /// updates were rate-limited.
    pub events_suppressed: u64,
}

impl Incident {
    /// Open symptoms.
    pub fn open_symptoms(&self) -> impl Iterator<Item = &IncidentSymptom> {
        self.symptoms.iter().filter(|s| s.open)
    }

    /// The top diagnosis, if any.
    pub fn top(&self) -> Option<&DiagnosedMode> {
        self.diagnosis.first()
    }

    /// Highest peak score of its symptoms.
    pub fn peak_score(&self) -> f64 {
        self.symptoms
            .iter()
            .map(|s| s.peak_score)
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_serialise_in_lower_case() {
        assert!(Severity::Watch < Severity::Warning && Severity::Warning < Severity::Critical);
        assert_eq!(
            serde_json::to_string(&Severity::Critical).unwrap(),
            "\"critical\""
        );
        assert_eq!(Severity::Warning.as_str(), "warning");
    }
}
