//! Facts about an anomaly and their compact text form for the model, e.g.
//! `P-101 bearing_temp 78.4 °C (baseline 61.2±1.5, +11σ, rising 0.9 °C/min for 14 min; vibration_rms also rising)`,
//! plus the failure modes of the profile that match it.
//!
//! Every number written here is recorded with its rounding and unit, so the grounding check
//! can tell whether generated text says the same thing. Pure functions, no I/O.

use crate::diagnose::close_runner_up;
pub use crate::diagnose::match_failure_modes;
use crate::text::{decimals_for, display_signal, duration, fixed, sig2, sigma, spread};
use millwright_core::{Action, Anomaly, AnomalyKind, Direction, Evidence, Urgency};
use millwright_profile::Profile;

/// One number stated in the facts, with the rounding it was written with.
#[derive(Clone, Debug, PartialEq)]
pub struct FactNumber {
    /// The value as written.
    pub value: f64,
    /// Decimals it was written with.
    pub decimals: usize,
    /// Its unit (`σ`, `min`, `°C`, `°C/min`, …; empty for none).
    pub unit: String,
}

/// A failure mode of the profile that matches an anomaly.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Failure mode id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its reference (standard).
    pub reference: String,
    /// How well the symptoms match the mode, in `[0, 1]` (see [`crate::diagnose::diagnose`]).
    pub score: f64,
    /// Confidence that this mode is the fault, in `[0, 1]`: its score, lowered by how close
    /// the best other mode comes.
    pub confidence: f64,
    /// Likely causes.
    pub causes: Vec<String>,
    /// Recommended actions.
    pub actions: Vec<Action>,
}

/// The facts of one anomaly: what the model may say.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// Asset tag.
    pub asset: String,
    /// Signal name.
    pub signal: String,
    /// Signal name without its unit suffix.
    pub display: String,
    /// Unit symbol.
    pub unit: String,
    /// Main kind.
    pub kind: AnomalyKind,
    /// Direction of the deviation.
    pub direction: Direction,
    /// The compact one-line encoding: `<asset> <summary>`.
    pub line: String,
    /// The sensor summary without the asset tag (for prompts that name the asset once).
    pub summary: String,
    /// The profile's limits in words (may be empty).
    pub limits_line: String,
    /// Every number in `line` and `limits_line`, plus value − baseline.
    pub numbers: Vec<FactNumber>,
    /// Signal names the text may mention (full and display forms).
    pub signals: Vec<String>,
    /// Matching failure modes, best first (for an incident: its diagnosis, see [`crate::diagnose::diagnose`]).
    pub candidates: Vec<Candidate>,
    /// The raw evidence.
    pub evidence: Evidence,
}

impl Facts {
    fn push(&mut self, text: &str, unit: &str) {
        if let Ok(v) = text.trim_start_matches('+').parse::<f64>() {
            let decimals = text.split_once('.').map_or(0, |(_, f)| f.len());
            self.numbers.push(FactNumber {
                value: v,
                decimals,
                unit: unit.to_string(),
            });
        }
    }

    /// Sets the ranked failure modes (an incident's diagnosis replaces the event's own) and
    /// records the top confidence as a stated number (the template writes it).
    pub fn set_candidates(&mut self, candidates: Vec<Candidate>) {
        self.candidates = candidates;
        if let Some(c) = self.candidates.first() {
            let text = format!("{:.1}", c.confidence);
            self.push(&text, "");
        }
    }

    /// The runner-up failure mode when its match is close to the top one's (score at least
    /// [`crate::diagnose::CLOSE_RUNNER_UP`] of the top score).
    pub fn runner_up(&self) -> Option<&Candidate> {
        close_runner_up(&self.candidates)
    }

    /// Confidence of the top failure mode (0 when none matches).
    pub fn confidence(&self) -> f64 {
        self.candidates.first().map_or(0.0, |c| c.confidence)
    }

    /// Likely causes, best first (at most `n`): the top mode's first two, then the close
    /// runner-up's first, then the rest of the top mode's.
    pub fn causes(&self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |c: &String| {
            if !out.contains(c) {
                out.push(c.clone());
            }
        };
        if let Some(top) = self.candidates.first() {
            top.causes.iter().take(2).for_each(&mut add);
            if let Some(r) = self.runner_up() {
                r.causes.iter().take(1).for_each(&mut add);
            }
            top.causes.iter().skip(2).for_each(&mut add);
        }
        if out.is_empty() {
            out.push(format!(
                "an unexplained change of {} on {}",
                self.display, self.asset
            ));
        }
        out.truncate(n);
        out
    }

    /// Recommended actions (at most `n`): the top mode's, most urgent first (profile order
    /// within one urgency), then at most one of the close runner-up's. No action of another
    /// mode ranks above the top mode's.
    pub fn actions(&self, n: usize) -> Vec<Action> {
        let mut out: Vec<Action> = Vec::new();
        if let Some(top) = self.candidates.first() {
            let mut own = top.actions.clone();
            own.sort_by_key(|a| a.urgency);
            for a in own {
                if !out.iter().any(|o| o.text == a.text) {
                    out.push(a);
                }
            }
            if let Some(r) = self.runner_up() {
                let mut theirs = r.actions.clone();
                theirs.sort_by_key(|a| a.urgency);
                if let Some(a) = theirs
                    .into_iter()
                    .find(|a| !out.iter().any(|o| o.text == a.text))
                {
                    out.push(a);
                }
            }
        }
        if out.is_empty() {
            out.push(Action {
                text: format!(
                    "inspect {} on site and confirm the {} reading",
                    self.asset, self.display
                ),
                urgency: Urgency::Medium,
            });
        }
        out.truncate(n);
        out
    }
}

/// Direction of an anomaly: from the deviation, else the limit crossed, else the trend.
pub fn anomaly_direction(a: &Anomaly) -> Direction {
    let e = &a.evidence;
    if matches!(a.kind, AnomalyKind::Flatline | AnomalyKind::Dropout) {
        return Direction::Flat;
    }
    if a.kind == AnomalyKind::Limit || !e.learned {
        if e.limits.max.is_some_and(|m| e.value > m) {
            return Direction::Up;
        }
        if e.limits.min.is_some_and(|m| e.value < m) {
            return Direction::Down;
        }
    }
    // A drift or a fast change may still be within 1σ of the baseline: its trend says where.
    let trend = matches!(a.kind, AnomalyKind::RateOfChange | AnomalyKind::Drift);
    match e.direction() {
        Direction::Flat if e.rate_per_min > 0.0 && trend => Direction::Up,
        Direction::Flat if e.rate_per_min < 0.0 && trend => Direction::Down,
        d => d,
    }
}

/// Encodes an anomaly as facts (the compact line, the numbers, the matching failure modes).
pub fn encode(a: &Anomaly, profile: Option<&Profile>) -> Facts {
    let e = &a.evidence;
    let asset = a.sensor.asset.to_string();
    let signal = a.sensor.signal.to_string();
    let display = display_signal(&signal).to_string();
    let unit = a.unit.symbol().to_string();
    let direction = anomaly_direction(a);
    let mut f = Facts {
        asset: asset.clone(),
        signal: signal.clone(),
        display: display.clone(),
        unit: unit.clone(),
        kind: a.kind,
        direction,
        line: String::new(),
        summary: String::new(),
        limits_line: String::new(),
        numbers: Vec::new(),
        signals: vec![signal.clone(), display.clone()],
        candidates: Vec::new(),
        evidence: e.clone(),
    };
    let u = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    let d = decimals_for(e.value.abs().max(e.baseline.abs()));
    let value = fixed(e.value, d);
    let baseline = fixed(e.baseline, d);
    let spr = spread(e.spread, d);
    let z = sigma(e.z);
    f.push(&value, &unit);
    let mut inner: Vec<String> = Vec::new();
    let head = match a.kind {
        AnomalyKind::Dropout => {
            let gap = duration(e.gap_s.max(a.duration_s()));
            push_duration(&mut f, &gap);
            format!("{asset} {display} no data for {gap} (last {value}{u})")
        }
        AnomalyKind::Flatline => {
            let flat = duration(e.flat_s);
            push_duration(&mut f, &flat);
            format!("{asset} {display} {value}{u} (stuck for {flat}")
        }
        _ => format!("{asset} {display} {value}{u} ("),
    };
    if a.kind != AnomalyKind::Dropout {
        if e.learned {
            f.push(&baseline, &unit);
            f.push(&spr, &unit);
            f.push(&fixed(e.value - e.baseline, d), &unit);
            if a.kind == AnomalyKind::Flatline {
                inner.push(format!("baseline {baseline}"));
            } else {
                f.push(&z, "σ");
                let kind_word = match a.kind {
                    AnomalyKind::Spike => " spike",
                    _ => "",
                };
                // The spread is not written: the σ figure carries it, and every number costs
                // tokens (each digit is one token for SmolLM2).
                inner.push(format!("baseline {baseline}, {z}σ{kind_word}"));
            }
        } else {
            inner.push("baseline learning".into());
        }
        // A trend is stated when it explains at least one spread of change, or is the fault.
        let rate = e.rate_per_min;
        let trend_s = if e.trend_s > 0.0 {
            e.trend_s
        } else {
            a.duration_s()
        };
        let meaningful = rate.abs() * (trend_s / 60.0).max(1.0) >= e.spread
            || matches!(a.kind, AnomalyKind::Drift | AnomalyKind::RateOfChange);
        // A correlated event is worded by its deviation: a member's short-term trend against
        // the group's direction (falling while the group deviates upward) is left out.
        let against = a.kind == AnomalyKind::Correlated && e.z != 0.0 && rate * e.z < 0.0;
        if e.learned && meaningful && rate != 0.0 && a.kind != AnomalyKind::Flatline && !against {
            // Slow trends per hour ("rising 0.47/h", not "0.0079/min"): easier to read, and
            // every digit is a token.
            let (r, per) = if rate.abs() < 0.1 {
                (sig2(rate.abs() * 60.0), "h")
            } else {
                (sig2(rate.abs()), "min")
            };
            f.push(&r, &format!("{unit}/{per}"));
            let word = if rate > 0.0 { "rising" } else { "falling" };
            // The rate's unit is the value's unit per minute or hour; written as `/min` or `/h`
            // only (tokens).
            let mut t = format!("{word} {r}/{per}");
            if trend_s >= 1.0 {
                let dur = duration(trend_s);
                push_duration(&mut f, &dur);
                t.push_str(&format!(" for {dur}"));
            }
            inner.push(t);
        }
        if a.kind == AnomalyKind::Limit || !e.learned {
            if let Some(m) = e.limits.max.filter(|m| e.value > *m) {
                let s = fixed(m, decimals_for(m));
                f.push(&s, &unit);
                inner.push(format!("limit {s}"));
            } else if let Some(m) = e.limits.min.filter(|m| e.value < *m) {
                let s = fixed(m, decimals_for(m));
                f.push(&s, &unit);
                inner.push(format!("limit {s}"));
            }
        }
    }
    let related: Vec<String> = a
        .related
        .iter()
        .filter(|r| r.direction != Direction::Flat)
        .take(2)
        .map(|r| {
            let name = display_signal(&r.signal).to_string();
            f.signals.push(r.signal.to_string());
            f.signals.push(name.clone());
            let word = if r.direction == Direction::Up {
                "rising"
            } else {
                "falling"
            };
            format!("{name} {word}")
        })
        .collect();
    let mut line = head;
    if a.kind != AnomalyKind::Dropout {
        if a.kind == AnomalyKind::Flatline && !inner.is_empty() {
            line.push_str("; ");
        }
        line.push_str(&inner.join(", "));
        if !related.is_empty() {
            line.push_str("; ");
            line.push_str(&related.join(", "));
        }
        line.push(')');
    } else if !related.is_empty() {
        line.push_str(&format!("; {}", related.join(", ")));
    }
    f.summary = line
        .strip_prefix(&format!("{asset} "))
        .unwrap_or(&line)
        .to_string();
    f.line = line;

    // Limits in words, with their numbers.
    let mut parts = Vec::new();
    if let Some([lo, hi]) = e.normal {
        let (l, h) = (fixed(lo, decimals_for(lo)), fixed(hi, decimals_for(hi)));
        f.push(&l, &unit);
        f.push(&h, &unit);
        parts.push(format!("normal {l} to {h}{u}"));
    }
    if let Some(m) = e.limits.max {
        let s = fixed(m, decimals_for(m));
        f.push(&s, &unit);
        parts.push(format!("alarm above {s}{u}"));
    }
    if let Some(m) = e.limits.min {
        let s = fixed(m, decimals_for(m));
        f.push(&s, &unit);
        parts.push(format!("alarm below {s}{u}"));
    }
    if !parts.is_empty() {
        f.limits_line = format!("{display} limits: {}", parts.join(", "));
    }
    if let Some(p) = profile {
        f.set_candidates(match_failure_modes(a, p));
    }
    f
}

fn push_duration(f: &mut Facts, text: &str) {
    if let Some((n, u)) = text.split_once(' ') {
        f.push(n, u);
    }
}
