//! Diagnosis: the failure modes of a profile ranked by how well an incident's symptoms (or one
//! event's) match theirs — signal, direction and kind — penalised for symptoms of the mode that
//! should have moved but did not (a learned signal that stays normal) and for observed
//! symptoms the mode does not explain. Each mode gets a score and a confidence in `[0, 1]`.
//!
//! Pure functions of plain data; what counts as "quiet" (learned and normal) is the caller's
//! knowledge (the detectors' state), passed in as signal names.

use crate::facts::{anomaly_direction, Candidate};
use millwright_core::{Action, Anomaly, AnomalyKind, Direction};
use millwright_profile::{FailureMode, Profile, Symptom};

/// A runner-up is named when its score is at least this share of the top score.
pub use millwright_core::incident::CLOSE_RUNNER_UP;

/// Modes scoring below this are not candidates (they explain too little of what is seen).
pub const MIN_SCORE: f64 = 0.3;

/// Credit of a symptom seen on the right signal in the right direction but with another kind.
const OTHER_KIND: f64 = 0.6;

/// Weight of an expected symptom whose signal is not known to be quiet (not learned yet, or
/// not known at all): half of a quiet one's.
const UNKNOWN_MISSING: f64 = 0.5;

/// One observed symptom: a signal deviating in a direction, with the kinds it showed (empty:
/// not known, e.g. a related signal of another event; any kind of the mode fits).
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// Signal name.
    pub signal: String,
    /// Direction of the deviation (`flat` for stuck or absent data).
    pub direction: Direction,
    /// Kinds seen on it.
    pub kinds: Vec<AnomalyKind>,
}

impl Observed {
    /// Adds `o` to `set`: kinds merge into an entry of the same signal and direction.
    pub fn merge_into(set: &mut Vec<Observed>, o: Observed) {
        match set
            .iter_mut()
            .find(|x| x.signal == o.signal && x.direction == o.direction)
        {
            Some(x) => {
                for k in o.kinds {
                    if !x.kinds.contains(&k) {
                        x.kinds.push(k);
                    }
                }
            }
            None => set.push(o),
        }
    }

    /// The symptoms one event shows: its own signal (direction, kinds) and the related signals
    /// that deviate (direction only), merged into `set`.
    pub fn add_event(set: &mut Vec<Observed>, a: &Anomaly) {
        let mut kinds = a.kinds.clone();
        if !kinds.contains(&a.kind) {
            kinds.push(a.kind);
        }
        Self::merge_into(
            set,
            Observed {
                signal: a.sensor.signal.to_string(),
                direction: anomaly_direction(a),
                kinds,
            },
        );
        for r in a.related.iter().filter(|r| r.direction != Direction::Flat) {
            if !set
                .iter()
                .any(|x| x.signal == *r.signal && x.direction == r.direction)
            {
                set.push(Observed {
                    signal: r.signal.to_string(),
                    direction: r.direction,
                    kinds: Vec::new(),
                });
            }
        }
    }
}

/// How one expected symptom fits one observed symptom: full credit, other-kind credit or none.
fn fit(s: &Symptom, o: &Observed) -> f64 {
    if s.signal != o.signal {
        return 0.0;
    }
    let kinds_ok =
        s.kinds.is_empty() || o.kinds.is_empty() || o.kinds.iter().any(|k| s.kinds.contains(k));
    match s.direction {
        // Stuck or absent data: the kind is the symptom (or, without kinds, a flat reading).
        Direction::Flat => {
            let ok = if s.kinds.is_empty() {
                o.direction == Direction::Flat
            } else {
                !o.kinds.is_empty() && kinds_ok
            };
            if ok {
                1.0
            } else {
                0.0
            }
        }
        d if d == o.direction => {
            if kinds_ok {
                1.0
            } else {
                OTHER_KIND
            }
        }
        _ => 0.0,
    }
}

/// The score of one mode in `[0, 1]`: explained weight over expected weight plus penalties.
/// The main (first) symptom weighs 2, others 1; a flat (sensor) symptom weighs 2 and is never
/// expected when absent (one stuck signal is a sensor fault on its own).
fn mode_score(m: &FailureMode, observed: &[Observed], quiet: &[String]) -> f64 {
    let (mut explained, mut denom) = (0.0, 0.0);
    for (j, s) in m.symptoms.iter().enumerate() {
        let flat = s.direction == Direction::Flat;
        let w = if j == 0 || flat { 2.0 } else { 1.0 };
        let best = observed.iter().map(|o| fit(s, o)).fold(0.0, f64::max);
        if best > 0.0 {
            explained += w * best;
            denom += w;
        } else if flat {
            // Not expected.
        } else if quiet.contains(&s.signal) {
            denom += w;
        } else {
            denom += w * UNKNOWN_MISSING;
        }
    }
    let unexplained = observed
        .iter()
        .filter(|o| !m.symptoms.iter().any(|s| fit(s, o) > 0.0))
        .count() as f64;
    denom += unexplained;
    if explained <= 0.0 || denom <= 0.0 {
        0.0
    } else {
        (explained / denom).clamp(0.0, 1.0)
    }
}

fn candidate(m: &FailureMode, score: f64) -> Candidate {
    Candidate {
        id: m.id.clone(),
        title: m.title.clone(),
        reference: m.reference.clone(),
        score,
        confidence: 0.0,
        causes: m.causes.clone(),
        actions: m
            .actions
            .iter()
            .map(|x| Action {
                text: x.text.clone(),
                urgency: x.urgency,
            })
            .collect(),
    }
}

/// The failure modes of `profile` ranked by how well `observed` matches them, best first (ties
/// in profile order); modes scoring below [`MIN_SCORE`] are left out. `quiet`: signals that
/// are learned and normal while the symptoms are open (expected symptoms on them count
/// against a mode in full; on other absent signals by half).
pub fn diagnose(observed: &[Observed], quiet: &[String], profile: &Profile) -> Vec<Candidate> {
    let mut out: Vec<(usize, Candidate)> = profile
        .failure_modes
        .iter()
        .enumerate()
        .map(|(i, m)| (i, candidate(m, mode_score(m, observed, quiet))))
        .filter(|(_, c)| c.score >= MIN_SCORE)
        .collect();
    out.sort_by(|x, y| y.1.score.total_cmp(&x.1.score).then(x.0.cmp(&y.0)));
    let mut out: Vec<Candidate> = out.into_iter().map(|(_, c)| c).collect();
    let scores: Vec<f64> = out.iter().map(|c| c.score).collect();
    for (i, c) in out.iter_mut().enumerate() {
        let other = scores
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| *s)
            .fold(0.0, f64::max);
        let conf = c.score * c.score / (c.score + other);
        c.confidence = (conf * 100.0).round() / 100.0;
    }
    out
}

/// The runner-up of ranked `candidates` when its score is close to the top one's.
pub fn close_runner_up(candidates: &[Candidate]) -> Option<&Candidate> {
    match candidates {
        [top, second, ..] if second.score >= CLOSE_RUNNER_UP * top.score => Some(second),
        _ => None,
    }
}

/// Failure modes of `profile` that match one anomaly event, best first: [`diagnose`] over the
/// event's own symptom and its related signals (no signal is known to be quiet).
pub fn match_failure_modes(a: &Anomaly, profile: &Profile) -> Vec<Candidate> {
    let mut observed = Vec::new();
    Observed::add_event(&mut observed, a);
    diagnose(&observed, &[], profile)
}

/// ` (confidence 0.8; runner-up: cavitation)` for the template's failure-mode sentence (empty
/// without candidates).
pub fn confidence_note(f: &crate::facts::Facts) -> String {
    let Some(top) = f.candidates.first() else {
        return String::new();
    };
    match f.runner_up() {
        Some(r) => format!(
            " (confidence {:.1}; runner-up: {})",
            top.confidence, r.title
        ),
        None => format!(" (confidence {:.1})", top.confidence),
    }
}

#[cfg(test)]
mod tests;
