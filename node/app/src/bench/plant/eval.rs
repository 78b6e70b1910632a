//! The evaluation of `bench plant`: what counts as an incident ([`incident_of`], the one place
//! that reads the analytics' outputs), and the summary of the runs against the issue's
//! criteria (one incident per fault, diagnosed as the injected mode, first action from that
//! mode, detection delay; incidents on the fault-free day and the operating change they follow).
//!
//! Pure functions of the runs' results; no simulation here.

use super::{day_events, expected_mode, PlantMachine, DAY_S, MACHINES, T0_NS};
use crate::cli::BenchPlantArgs;
use millwright_analytics::Output;
use millwright_core::anomaly::Phase;
use millwright_profile::Profile;
use millwright_sim::{Fault, OperatingKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// An incident opened in a run moves back to this operating change when it opened this soon
/// after it, s.
pub const CHANGE_WINDOW_S: f64 = 1800.0;

/// One incident as the operator sees it.
#[derive(Clone, Debug)]
pub struct Incident {
    /// Asset tag.
    pub asset: String,
    /// When it opened, ns.
    pub opened_ns: i64,
    /// Main signal.
    pub signal: String,
    /// Main anomaly kind.
    pub kind: String,
    /// Diagnosed failure mode (best first), if any.
    pub diagnosis: Option<String>,
    /// The first recommended action.
    pub first_action: Option<String>,
    /// Whether the first action is one of the diagnosed mode's actions in the profile.
    pub action_in_mode: bool,
    /// The card's evidence line (value, baseline, deviation) for the verbose table.
    pub evidence: String,
}

/// The incident an output announces, if any.
///
/// Today an incident is an alert: one explanation card per opened anomaly event, its
/// diagnosis the card's `failure_modes[0]`. When the analytics emit incidents of their own,
/// this is the function to switch.
pub fn incident_of(o: &Output, profile: &Profile) -> Option<Incident> {
    let Output::Alert(card) = o else {
        return None;
    };
    if card.phase != Phase::Opened {
        return None;
    }
    let diagnosis = card.failure_modes.first().cloned();
    let first_action = card.actions.first().map(|a| a.text.clone());
    let action_in_mode = match (&diagnosis, &first_action) {
        (Some(d), Some(a)) => profile
            .failure_modes
            .iter()
            .find(|m| m.id == *d)
            .is_some_and(|m| m.actions.iter().any(|x| x.text == *a)),
        _ => false,
    };
    Some(Incident {
        asset: card.asset.clone(),
        opened_ns: card.since_ns,
        signal: card.signal.clone(),
        kind: format!("{:?}", card.kind),
        diagnosis,
        first_action,
        action_in_mode,
        evidence: card.evidence.clone(),
    })
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Asset tag.
    pub asset: &'static str,
    /// The `make demo` scenario.
    pub demo: bool,
    /// Injected fault (None: fault-free).
    pub fault: Option<Fault>,
    /// Simulator seed.
    pub seed: u64,
    /// Simulated length, s.
    pub duration_s: f64,
    /// Incidents, in the order they opened.
    pub incidents: Vec<Incident>,
    /// Poll steps simulated.
    pub steps: u64,
    /// Wall time of the run, s.
    pub wall_s: f64,
}

fn since_start_s(i: &Incident) -> f64 {
    (i.opened_ns - T0_NS) as f64 / 1e9
}

fn clock(t_s: f64) -> String {
    let m = (t_s / 60.0).floor() as i64;
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The operating change an incident at `t_s` follows: the latest change up to
/// [`CHANGE_WINDOW_S`] before it, or a stop the machine has not restarted from.
pub fn operating_change(m: &PlantMachine, t_s: f64) -> Option<String> {
    let day_t = t_s.rem_euclid(DAY_S);
    let last = day_events(m.kind)
        .into_iter()
        .filter(|e| e.at_s <= day_t)
        .max_by(|a, b| a.at_s.total_cmp(&b.at_s))?;
    (day_t - last.at_s <= CHANGE_WINDOW_S || last.kind == OperatingKind::Stop)
        .then(|| format!("{} at {}", last.kind.label(), clock(last.at_s)))
}

/// The fault run's verdict.
struct Verdict {
    before: usize,
    after: Vec<Incident>,
    delay_s: Option<f64>,
    right: bool,
    action_ok: bool,
    ok: bool,
}

fn verdict(r: &RunResult, f: &Fault, deadline_s: f64) -> Verdict {
    let onset_ns = T0_NS + (f.onset_s * 1e9) as i64;
    let before = r
        .incidents
        .iter()
        .filter(|i| i.opened_ns < onset_ns)
        .count();
    let after: Vec<Incident> = r
        .incidents
        .iter()
        .filter(|i| i.opened_ns >= onset_ns)
        .cloned()
        .collect();
    let first = after.first();
    let delay_s = first.map(|i| (i.opened_ns - onset_ns) as f64 / 1e9);
    let right = first.and_then(|i| i.diagnosis.as_deref()) == Some(expected_mode(f.kind));
    let action_ok = first.is_some_and(|i| i.action_in_mode);
    let ok = after.len() == 1 && right && action_ok && delay_s.is_some_and(|d| d <= deadline_s);
    Verdict {
        before,
        after,
        delay_s,
        right,
        action_ok,
        ok,
    }
}

/// The JSON summary line.
pub fn summarize(
    results: &[RunResult],
    profiles: &[Profile],
    args: &BenchPlantArgs,
    wall_s: f64,
    threads: usize,
) -> Value {
    let steps: u64 = results.iter().map(|r| r.steps).sum();
    // Fault runs, grouped by (asset, fault kind) in plant order.
    let mut cases: BTreeMap<(usize, usize), Vec<(&RunResult, Verdict)>> = BTreeMap::new();
    for r in results.iter().filter(|r| !r.demo) {
        let Some(f) = &r.fault else { continue };
        let mi = MACHINES
            .iter()
            .position(|m| m.asset == r.asset)
            .unwrap_or(0);
        let fi = super::FAULTS.iter().position(|k| *k == f.kind).unwrap_or(0);
        cases
            .entry((mi, fi))
            .or_default()
            .push((r, verdict(r, f, args.deadline_s)));
    }
    let mut case_json = Vec::new();
    let (mut ok_cases, mut right_cases, mut right_runs, mut runs) = (0, 0, 0, 0);
    let mut misses = Vec::new();
    let mut max_delay: Option<f64> = None;
    for ((mi, fi), v) in &cases {
        let (asset, kind) = (MACHINES[*mi].asset, super::FAULTS[*fi]);
        let ok = v.iter().all(|(_, x)| x.ok);
        let right = v.iter().all(|(_, x)| x.right);
        ok_cases += usize::from(ok);
        right_cases += usize::from(right);
        runs += v.len();
        right_runs += v.iter().filter(|(_, x)| x.right).count();
        for (_, x) in v {
            if let Some(d) = x.delay_s {
                max_delay = Some(max_delay.map_or(d, |m: f64| m.max(d)));
            }
        }
        if !right {
            let got: Vec<String> = v
                .iter()
                .map(|(_, x)| {
                    x.after
                        .first()
                        .and_then(|i| i.diagnosis.clone())
                        .unwrap_or_else(|| "nothing".into())
                })
                .collect();
            misses.push(format!("{asset}/{kind}: {}", got.join(",")));
        }
        case_json.push(json!({
            "asset": asset,
            "fault": kind.as_str(),
            "expected": expected_mode(kind),
            "ok": ok,
            "seeds": v.iter().map(|(r, _)| r.seed).collect::<Vec<_>>(),
            "incidents": v.iter().map(|(_, x)| x.after.len()).collect::<Vec<_>>(),
            "before_onset": v.iter().map(|(_, x)| x.before).collect::<Vec<_>>(),
            "diagnosis": v.iter().map(|(_, x)| x.after.first().and_then(|i| i.diagnosis.clone())).collect::<Vec<_>>(),
            "first_action": v.iter().map(|(_, x)| x.after.first().and_then(|i| i.first_action.clone())).collect::<Vec<_>>(),
            "first_action_in_mode": v.iter().map(|(_, x)| x.action_ok).collect::<Vec<_>>(),
            "delay_s": v.iter().map(|(_, x)| x.delay_s.map(f64::round)).collect::<Vec<_>>(),
            "signals": v.iter().map(|(_, x)| x.after.iter().map(|i| format!("{}:{}", i.signal, i.kind)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        }));
    }

    // Fault-free days.
    let mut per_asset = serde_json::Map::new();
    let mut false_list = Vec::new();
    let mut by_signal: BTreeMap<String, usize> = BTreeMap::new();
    let mut on_change_total = 0;
    for (mi, m) in MACHINES.iter().enumerate() {
        let days: Vec<&RunResult> = results
            .iter()
            .filter(|r| !r.demo && r.fault.is_none() && r.asset == m.asset)
            .collect();
        if days.is_empty() {
            continue;
        }
        let day_count: f64 = days.iter().map(|r| r.duration_s / DAY_S).sum();
        let mut n = 0;
        let mut on_change = 0;
        for r in &days {
            for i in &r.incidents {
                n += 1;
                let t = since_start_s(i);
                let change = operating_change(m, t);
                on_change += usize::from(change.is_some());
                *by_signal
                    .entry(format!("{}/{}", m.asset, i.signal))
                    .or_default() += 1;
                if false_list.len() < 60 {
                    false_list.push(json!({
                        "asset": i.asset, "seed": r.seed, "at": clock(t), "signal": i.signal,
                        "kind": i.kind, "diagnosis": i.diagnosis, "after_change": change,
                    }));
                }
            }
        }
        on_change_total += on_change;
        per_asset.insert(
            m.asset.into(),
            json!({
                "profile": profiles.get(mi).map(|p| p.name.clone()),
                "days": day_count,
                "incidents": n,
                "per_day": (n as f64 / day_count.max(1e-9) * 100.0).round() / 100.0,
                "on_operating_change": on_change,
            }),
        );
    }
    let n_cases = cases.len();
    let demo = demo_summary(results, args.deadline_s);
    json!({
        "bench": "plant",
        "poll_s": args.poll_s,
        "seeds": args.seeds,
        "threads": threads,
        "runs": results.len(),
        "sim_steps": steps,
        "wall_s": (wall_s * 10.0).round() / 10.0,
        "steps_per_s": (steps as f64 / wall_s.max(1e-9)).round(),
        "deadline_s": args.deadline_s,
        "fault_cases": n_cases,
        "fault_cases_ok": ok_cases,
        "diagnosed_right_cases": right_cases,
        "diagnosed_right_share": if n_cases > 0 { (right_cases as f64 / n_cases as f64 * 1000.0).round() / 1000.0 } else { 0.0 },
        "diagnosed_right_runs": format!("{right_runs}/{runs}"),
        "misses": misses,
        "max_delay_s": max_delay.map(f64::round),
        "faults": case_json,
        "demo": demo,
        "day": {
            "per_asset": per_asset,
            "on_operating_change": on_change_total,
            "by_signal": by_signal,
            "incidents": false_list,
        },
    })
}

/// The `make demo` scenario: the injected fault's incidents and diagnosis, the incidents of the
/// machines without a fault; `ok` when the fault gives exactly one incident, diagnosed right,
/// first action from that mode, in time, and the other machines none.
fn demo_summary(results: &[RunResult], deadline_s: f64) -> Value {
    let mut ok = true;
    let mut per_asset = serde_json::Map::new();
    for r in results.iter().filter(|r| r.demo) {
        let entry = match &r.fault {
            Some(f) => {
                let v = verdict(r, f, deadline_s);
                ok &= v.ok && v.before == 0;
                let first = v.after.first();
                json!({
                    "fault": f.kind.as_str(),
                    "incidents": v.after.len(),
                    "before_onset": v.before,
                    "diagnosis": first.and_then(|i| i.diagnosis.clone()),
                    "first_action": first.and_then(|i| i.first_action.clone()),
                    "first_action_in_mode": v.action_ok,
                    "delay_s": v.delay_s.map(f64::round),
                    "signals": v.after.iter().map(|i| format!("{}:{}", i.signal, i.kind)).collect::<Vec<_>>(),
                })
            }
            None => {
                ok &= r.incidents.is_empty();
                json!({
                    "incidents": r.incidents.len(),
                    "signals": r.incidents.iter().map(|i| format!("{}:{}", i.signal, i.kind)).collect::<Vec<_>>(),
                })
            }
        };
        per_asset.insert(r.asset.into(), entry);
    }
    json!({ "ok": ok, "per_asset": per_asset })
}

/// The per-run table for `--verbose` (stderr).
pub fn table(results: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<6} {:<13} {:>5} {:>6} {:>5} {:<14} {:<6} {:>7} {:>6}  signals",
        "asset", "fault", "seed", "before", "after", "diagnosis", "action", "delay_s", "wall_s"
    );
    for r in results {
        match &r.fault {
            Some(f) => {
                let v = verdict(r, f, f64::INFINITY);
                let first = v.after.first();
                let sigs: Vec<String> = v
                    .after
                    .iter()
                    .map(|i| format!("{}:{}", i.signal, i.kind))
                    .collect();
                let _ = writeln!(
                    s,
                    "{:<6} {:<13} {:>5} {:>6} {:>5} {:<14} {:<6} {:>7} {:>6.1}  {}",
                    r.asset,
                    format!("{}{}", if r.demo { "demo " } else { "" }, f.kind.as_str()),
                    r.seed,
                    v.before,
                    v.after.len(),
                    first.and_then(|i| i.diagnosis.as_deref()).unwrap_or("-"),
                    if v.action_ok { "yes" } else { "no" },
                    v.delay_s.map_or("-".into(), |d| format!("{d:.0}")),
                    r.wall_s,
                    sigs.join(" ")
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "{:<6} {:<13} {:>5} {:>6} {:>5} {:<14} {:<6} {:>7} {:>6.1}",
                    r.asset,
                    if r.demo { "(demo)" } else { "(none: day)" },
                    r.seed,
                    "",
                    r.incidents.len(),
                    "",
                    "",
                    "",
                    r.wall_s
                );
                let m = MACHINES.iter().find(|m| !r.demo && m.asset == r.asset);
                for i in &r.incidents {
                    let t = since_start_s(i);
                    let change = m.and_then(|m| operating_change(m, t));
                    let _ = writeln!(
                        s,
                        "         {} {}:{} -> {} {}\n             {}",
                        clock(t),
                        i.signal,
                        i.kind,
                        i.diagnosis.as_deref().unwrap_or("-"),
                        change.map_or(String::new(), |c| format!("(after {c})")),
                        i.evidence
                    );
                }
            }
        }
    }
    s
}
