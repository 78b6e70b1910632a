//! Maintenance reports per asset and per site, from plain data ([`ReportInput`]): period,
//! incidents (one per fault: diagnosis, confidence, symptoms, explanation) with their anomaly
//! events as details, each signal against its limits, data
//! quality, and recommended actions ranked by urgency. Markdown and JSON.
//!
//! The input is selected from history by [`crate::select`] (or filled by the caller); nothing
//! here reads history, a clock or a model. Explanations come from the cards given (already
//! grounded) or the template.

use crate::explain::template;
use crate::facts::encode;
use crate::text::{duration, num, rfc3339};
use millwright_core::{
    Action, AnomalyKind, Incident, MaintenanceReport, Phase, RankedAction, ReportAnomaly,
    ReportIncident, ReportInput, Severity, SignalPeriodStats, SignalState, SignalStatus,
    TextSource, Urgency,
};
use millwright_profile::Profile;
use std::fmt::Write as _;

/// State of a signal's latest value against its profile ranges.
pub fn signal_state(s: &SignalPeriodStats) -> SignalState {
    let Some(v) = s.last else {
        return SignalState::NoData;
    };
    if s.limits.max.is_some_and(|m| v > m) || s.limits.min.is_some_and(|m| v < m) {
        SignalState::BeyondLimit
    } else if s.normal.is_some_and(|[lo, hi]| v < lo || v > hi) {
        SignalState::OutsideNormal
    } else {
        SignalState::Normal
    }
}

fn add_action(out: &mut Vec<RankedAction>, a: Action, because: &str) {
    if let Some(r) = out.iter_mut().find(|r| r.action.text == a.text) {
        if a.urgency < r.action.urgency {
            r.action.urgency = a.urgency;
        }
        if !because.is_empty() && !r.because_of.iter().any(|b| b == because) {
            r.because_of.push(because.to_string());
        }
    } else {
        out.push(RankedAction {
            action: a,
            because_of: if because.is_empty() {
                Vec::new()
            } else {
                vec![because.to_string()]
            },
        });
    }
}

/// Builds the report of one asset. `profile` adds failure-mode actions for anomalies that
/// have no card.
/// Actions of closed events and incidents are less urgent than those of open ones.
fn soften(act: Action, open: bool) -> Action {
    if open {
        return act;
    }
    Action {
        urgency: match act.urgency {
            Urgency::Immediate => Urgency::High,
            Urgency::High => Urgency::Medium,
            u => u,
        },
        ..act
    }
}

/// The actions of an incident without a card: its top mode's, most urgent first.
fn mode_actions(i: &Incident, profile: Option<&Profile>) -> Vec<Action> {
    let mut out: Vec<Action> = i
        .top()
        .and_then(|t| profile?.failure_modes.iter().find(|m| m.id == t.id))
        .map(|m| {
            m.actions
                .iter()
                .map(|a| Action {
                    text: a.text.clone(),
                    urgency: a.urgency,
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|a| a.urgency);
    out.truncate(3);
    out
}

/// The incidents of a report, most recent first; adds their actions.
fn incidents(
    input: &ReportInput,
    profile: Option<&Profile>,
    actions: &mut Vec<RankedAction>,
    severe: &mut bool,
    lead: &mut Option<String>,
) -> Vec<ReportIncident> {
    let mut sorted: Vec<&Incident> = input.incidents.iter().collect();
    sorted.sort_by_key(|i| std::cmp::Reverse(i.opened_ns));
    let mut out = Vec::new();
    for i in sorted {
        let open = i.phase != Phase::Closed;
        // The latest card of the incident (it is explained again when its diagnosis changes).
        let card = input.cards.iter().rev().find(|c| c.id == i.id);
        let symptoms: Vec<String> = i
            .symptoms
            .iter()
            .map(|s| {
                format!(
                    "{} {} {}{}",
                    s.signal,
                    s.kind.describe(),
                    s.direction.as_str(),
                    if s.open { "" } else { " (over)" }
                )
            })
            .collect();
        let top = i.top();
        let runner_up = i
            .diagnosis
            .get(1)
            .filter(|r| top.is_some_and(|t| r.score >= crate::diagnose::CLOSE_RUNNER_UP * t.score))
            .map(|r| r.title.clone());
        let (explanation, source, acts) = match card {
            // The top mode's own actions (the card may add one of the runner-up's).
            Some(c) => {
                let own = mode_actions(i, profile);
                let acts = if own.is_empty() {
                    c.actions.clone()
                } else {
                    own
                };
                (c.text.clone(), c.source, acts)
            }
            None => (
                format!(
                    "{} shows {}. {}",
                    i.asset,
                    symptoms.join(", "),
                    top.map_or("No failure mode of the profile matches.".to_string(), |t| {
                        format!("This matches the failure mode \"{}\".", t.title)
                    })
                ),
                TextSource::Fallback,
                mode_actions(i, profile),
            ),
        };
        if open && top.is_some() && lead.is_none() {
            // The newest open incident's diagnosed mode: its first action leads the list.
            *lead = acts.first().map(|a| a.text.clone());
        }
        for act in acts {
            let act = soften(act, open);
            *severe |= open && act.urgency == Urgency::Immediate;
            add_action(actions, act, &i.id);
        }
        *severe |= open && i.severity == Severity::Critical;
        out.push(ReportIncident {
            id: i.id.clone(),
            severity: i.severity,
            opened: rfc3339(i.opened_ns),
            closed: i.closed_ns.map(rfc3339),
            open,
            resolution: i.resolution,
            diagnosis: top.map(|t| t.title.clone()).unwrap_or_default(),
            confidence: top.map_or(0.0, |t| t.confidence),
            runner_up,
            symptoms,
            explanation,
            source,
            events_merged: i.events_merged,
            events_suppressed: i.events_suppressed,
        });
    }
    out
}

/// Builds the report of one asset. `profile` adds failure-mode actions for incidents and
/// anomalies that have no card. An event that is a symptom of an incident adds no actions of
/// its own (the incident's diagnosis carries them).
pub fn build_report(input: &ReportInput, profile: Option<&Profile>) -> MaintenanceReport {
    let mut actions: Vec<RankedAction> = Vec::new();
    let mut anomalies = Vec::new();
    let mut any_open_severe = false;
    let mut lead = None;
    let incidents = incidents(
        input,
        profile,
        &mut actions,
        &mut any_open_severe,
        &mut lead,
    );
    for a in &input.anomalies {
        let facts = encode(a, profile);
        let card = input.cards.iter().find(|c| c.id == a.id);
        let (explanation, source) = match card {
            Some(c) => (c.text.clone(), c.source),
            None => (template(&facts), TextSource::Fallback),
        };
        let in_incident = input
            .incidents
            .iter()
            .any(|i| i.symptoms.iter().any(|s| s.event_id == a.id));
        let acts = match card {
            Some(c) => c.actions.clone(),
            None if in_incident => Vec::new(),
            None => facts.actions(3),
        };
        let open = a.phase != Phase::Closed;
        for act in acts {
            let act = soften(act, open);
            if open && act.urgency == Urgency::Immediate {
                any_open_severe = true;
            }
            add_action(&mut actions, act, &a.id);
        }
        if open && a.kind == AnomalyKind::Limit {
            any_open_severe = true;
        }
        anomalies.push(ReportAnomaly {
            id: a.id.clone(),
            signal: a.sensor.signal.to_string(),
            kind: a.kind,
            since: rfc3339(a.since_ns),
            open,
            peak_score: (a.peak_score * 1000.0).round() / 1000.0,
            evidence: facts.line,
            explanation,
            source,
        });
    }
    let mut signals = Vec::new();
    let mut outside = false;
    for s in &input.signals {
        let state = signal_state(s);
        match state {
            SignalState::BeyondLimit => {
                any_open_severe = true;
                let lim = if s.limits.max.is_some_and(|m| s.last.is_some_and(|v| v > m)) {
                    s.limits.max
                } else {
                    s.limits.min
                };
                add_action(
                    &mut actions,
                    Action {
                        text: format!(
                            "bring {} back inside its limit of {} {}",
                            s.signal,
                            lim.map(num).unwrap_or_default(),
                            s.unit
                        ),
                        urgency: Urgency::Immediate,
                    },
                    "",
                );
            }
            SignalState::OutsideNormal => outside = true,
            SignalState::NoData => add_action(
                &mut actions,
                Action {
                    text: format!(
                        "restore the data of {} (no reading in the period)",
                        s.signal
                    ),
                    urgency: Urgency::High,
                },
                "",
            ),
            SignalState::Normal => {}
        }
        signals.push(SignalStatus {
            stats: s.clone(),
            state,
        });
    }
    let q = &input.quality;
    for d in &q.devices_offline {
        add_action(
            &mut actions,
            Action {
                text: format!("restore communication with device {d}"),
                urgency: Urgency::High,
            },
            "",
        );
    }
    if q.readings > 0 && q.bad_readings * 100 >= q.readings {
        add_action(
            &mut actions,
            Action {
                text: format!(
                    "check the sensors and wiring: {} of {} readings were bad",
                    q.bad_readings, q.readings
                ),
                urgency: Urgency::Medium,
            },
            "",
        );
    }
    actions.sort_by(|a, b| {
        a.action
            .urgency
            .cmp(&b.action.urgency)
            .then(b.because_of.len().cmp(&a.because_of.len()))
    });
    // The diagnosed mode's first action comes first, before generic ones (a limit to get back
    // inside, data to restore): it is what the diagnosis says to do about the cause.
    if let Some(k) = lead
        .as_ref()
        .and_then(|t| actions.iter().position(|a| a.action.text == *t))
    {
        let a = actions.remove(k);
        actions.insert(0, a);
    }
    let status = if any_open_severe {
        "action required"
    } else if !anomalies.is_empty()
        || !incidents.is_empty()
        || outside
        || !q.devices_offline.is_empty()
    {
        "watch"
    } else {
        "ok"
    };
    MaintenanceReport {
        site: input.site.clone(),
        asset: input.asset.clone(),
        profile: input.profile.clone(),
        from: rfc3339(input.from_ns),
        to: rfc3339(input.to_ns),
        status: status.to_string(),
        incidents,
        anomalies,
        signals,
        quality: q.clone(),
        actions,
    }
}

fn state_word(s: SignalState) -> &'static str {
    match s {
        SignalState::Normal => "normal",
        SignalState::OutsideNormal => "outside normal range",
        SignalState::BeyondLimit => "**beyond limit**",
        SignalState::NoData => "no data",
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "–".into())
}

/// The report as Markdown.
pub fn to_markdown(r: &MaintenanceReport) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# Maintenance report: {} ({})", r.asset, r.profile);
    let _ = writeln!(m);
    let _ = writeln!(
        m,
        "Site {} · period {} – {} · status **{}**",
        r.site, r.from, r.to, r.status
    );
    let _ = writeln!(m);
    let _ = writeln!(m, "## Recommended actions");
    if r.actions.is_empty() {
        let _ = writeln!(m, "None.");
    }
    for (i, a) in r.actions.iter().enumerate() {
        let because = if a.because_of.is_empty() {
            String::new()
        } else {
            format!(" (because of {})", a.because_of.join(", "))
        };
        let _ = writeln!(
            m,
            "{}. [{}] {}{}",
            i + 1,
            a.action.urgency.as_str(),
            a.action.text,
            because
        );
    }
    let _ = writeln!(m);
    let _ = writeln!(m, "## Incidents");
    if r.incidents.is_empty() {
        let _ = writeln!(m, "None in this period.");
    }
    for i in &r.incidents {
        let diagnosis = if i.diagnosis.is_empty() {
            "no known failure mode".to_string()
        } else {
            let mut d = format!("{} (confidence {:.1}", i.diagnosis, i.confidence);
            if let Some(r) = &i.runner_up {
                let _ = write!(d, "; runner-up: {r}");
            }
            d.push(')');
            d
        };
        let state = if i.open {
            ", still open".to_string()
        } else {
            format!(
                ", closed {}{}",
                i.closed.as_deref().unwrap_or(""),
                i.resolution
                    .map(|r| format!(" as {}", r.as_str().replace('_', " ")))
                    .unwrap_or_default()
            )
        };
        let _ = writeln!(
            m,
            "- **{}** [{}] {} since {}{}  \n  Symptoms: {}  \n  {} _({})_",
            diagnosis,
            i.severity.as_str(),
            i.id,
            i.opened,
            state,
            i.symptoms.join("; "),
            i.explanation,
            i.source.as_str()
        );
    }
    let _ = writeln!(m);
    let _ = writeln!(m, "## Anomalies");
    if r.anomalies.is_empty() {
        let _ = writeln!(m, "None in this period.");
    }
    for a in &r.anomalies {
        let _ = writeln!(
            m,
            "- **{} {}** since {}{} (score {:.2})  \n  Evidence: {}  \n  {} _({})_",
            a.signal,
            a.kind.describe(),
            a.since,
            if a.open { ", still open" } else { ", closed" },
            a.peak_score,
            a.evidence,
            a.explanation,
            a.source.as_str()
        );
    }
    let _ = writeln!(m);
    let _ = writeln!(m, "## Signals");
    let _ = writeln!(
        m,
        "| signal | last | min | mean | max | normal | limits | state |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|");
    for s in &r.signals {
        let st = &s.stats;
        let normal = st
            .normal
            .map(|[a, b]| format!("{}–{}", num(a), num(b)))
            .unwrap_or_else(|| "–".into());
        let limits = format!("{} … {}", opt(st.limits.min), opt(st.limits.max));
        let _ = writeln!(
            m,
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {} |",
            st.signal,
            st.unit,
            opt(st.last),
            opt(st.min),
            opt(st.mean),
            opt(st.max),
            normal,
            limits,
            state_word(s.state)
        );
    }
    let _ = writeln!(m);
    let q = &r.quality;
    let _ = writeln!(m, "## Data quality");
    let _ = writeln!(
        m,
        "{} readings, {} bad, {} gaps (longest {}), devices offline: {}.",
        q.readings,
        q.bad_readings,
        q.gaps,
        duration(q.longest_gap_s),
        if q.devices_offline.is_empty() {
            "none".to_string()
        } else {
            q.devices_offline.join(", ")
        }
    );
    m
}

/// A site report: a summary table, then each asset's report.
pub fn site_markdown(site: &str, reports: &[MaintenanceReport]) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# Site report: {site}");
    let _ = writeln!(m);
    let _ = writeln!(
        m,
        "| asset | profile | status | incidents | anomalies | actions |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|");
    let mut sorted: Vec<&MaintenanceReport> = reports.iter().collect();
    let rank = |s: &str| match s {
        "action required" => 0,
        "watch" => 1,
        _ => 2,
    };
    sorted.sort_by_key(|r| (rank(&r.status), r.asset.clone()));
    for r in &sorted {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} |",
            r.asset,
            r.profile,
            r.status,
            r.incidents.len(),
            r.anomalies.len(),
            r.actions.len()
        );
    }
    for r in sorted {
        let _ = writeln!(m);
        m.push_str(
            &to_markdown(r)
                .replacen("# Maintenance report", "## Maintenance report", 1)
                .replace("\n## ", "\n### "),
        );
    }
    m
}

/// The report as JSON.
pub fn to_json(r: &MaintenanceReport) -> Result<String, serde_json::Error> {
    serde_json::to_string(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_core::{DiagnosedMode, Limits};

    fn pump() -> Profile {
        Profile::from_toml_str(
            include_str!("../../../pipelines/centrifugal-pump.toml"),
            "pump",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_diagnosed_modes_first_action_leads_a_generic_limit_action() {
        let p = pump();
        let t = 1_700_000_000_000_000_000;
        let incident = Incident {
            id: format!("P-101#{t}"),
            asset: "P-101".into(),
            profile: p.name.clone(),
            phase: Phase::Opened,
            opened_ns: t,
            updated_ns: t,
            closed_ns: None,
            severity: Severity::Critical,
            symptoms: Vec::new(),
            diagnosis: vec![DiagnosedMode {
                id: "bearing_wear".into(),
                title: "Rolling-element bearing wear".into(),
                score: 0.9,
                confidence: 0.8,
            }],
            resolution: None,
            events_merged: 0,
            events_suppressed: 0,
        };
        let input = ReportInput {
            asset: "P-101".into(),
            signals: vec![SignalPeriodStats {
                signal: "vibration_rms_mm_s".into(),
                unit: "mm/s".into(),
                count: 10,
                last: Some(5.2),
                limits: Limits {
                    min: Some(0.0),
                    max: Some(4.5),
                },
                ..Default::default()
            }],
            incidents: vec![incident],
            ..Default::default()
        };
        let r = build_report(&input, Some(&p));
        let texts: Vec<&str> = r.actions.iter().map(|a| a.action.text.as_str()).collect();
        assert_eq!(
            texts.first().copied(),
            Some("check the bearing with an envelope/spectrum vibration measurement"),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("bring vibration_rms_mm_s back inside")),
            "the limit action is still listed: {texts:?}"
        );
    }
}
