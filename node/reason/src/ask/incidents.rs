//! "Why", status and attention answers: the incident a question is about (its diagnosis,
//! likely cause and action from its card or the profile), and the ranking of assets by open
//! incidents, anomalies and how far their latest values are out of their normal ranges.
//! Like [`super::facts`], reads only the visible assets and writes every number through
//! [`Sentence::fact`].

use super::draft::{
    cap, cap_phrase, out_of_range, range_clause, say_signal, signal_info, Fmt, Sentence,
};
use super::facts::{anomalies, unit_sp, Built, Ctx};
use super::known;
use super::when::TimeRange;
use super::AssetContext;
use millwright_core::{Incident, Phase, SensorId, Severity};

fn sev_rank(s: Severity) -> u32 {
    match s {
        Severity::Watch => 1,
        Severity::Warning => 2,
        Severity::Critical => 3,
    }
}

/// The incident of `a` a "why" question is about: an open one (one with a named signal
/// first, then the worst), else the latest closed within the range.
fn incident_of<'a>(a: &'a AssetContext, signals: &[String], r: &TimeRange) -> Option<&'a Incident> {
    let named = |i: &Incident| i.symptoms.iter().any(|s| signals.contains(&s.signal));
    a.incidents
        .iter()
        .filter(|i| i.phase != Phase::Closed || i.closed_ns.unwrap_or(i.updated_ns) >= r.from_ns)
        .max_by_key(|i| {
            (
                i.phase != Phase::Closed,
                named(i),
                sev_rank(i.severity),
                i.updated_ns,
            )
        })
}

/// Likely cause and first action of an incident: from its card, else from the profile.
fn cause_action(a: &AssetContext, i: &Incident) -> (Option<String>, Option<String>) {
    let card = a.cards.iter().rev().find(|c| c.id == i.id);
    let mode = i.top().and_then(|t| {
        a.profile
            .as_ref()?
            .failure_modes
            .iter()
            .find(|m| m.id == t.id)
    });
    let cause = card
        .and_then(|c| c.likely_causes.first().cloned())
        .or_else(|| mode.and_then(|m| m.causes.first().cloned()));
    let action = card
        .and_then(|c| c.actions.first().map(|x| x.text.clone()))
        .or_else(|| {
            let m = mode?;
            m.actions
                .iter()
                .min_by_key(|x| x.urgency)
                .map(|x| x.text.clone())
        });
    let trim = |s: String| s.trim().trim_end_matches('.').to_string();
    (cause.map(trim), action.map(trim))
}

/// The latest value of `sig` on `a` as "bearing temp is 71.3 °C (at 06:12 UTC), above …".
fn latest_clause(c: &mut Ctx, s: &mut Sentence, a: &AssetContext, sig: &str) -> Option<String> {
    let x = c.history.last(&SensorId::new(a.asset.as_str(), sig))?;
    c.used.push(sig.to_string());
    let info = signal_info(a, sig, c.history);
    let at = (x.ts_ns, x.ts_ns);
    let v = s.fact(&a.asset, sig, "latest", at, x.value, &info.unit, Fmt::Value);
    let m = c.moment(x.ts_ns);
    let cl = range_clause(s, &a.asset, sig, at, x.value, &info);
    let cl = if cl.is_empty() {
        String::new()
    } else {
        format!(", {cl}")
    };
    let line = format!(
        "{} {} is {v}{} (at {m}){cl}",
        a.asset,
        say_signal(sig),
        unit_sp(&info.unit)
    );
    s.lines.push(line);
    Some(format!(
        "{} is {v}{} (at {m}){cl}",
        say_signal(sig),
        unit_sp(&info.unit)
    ))
}

/// "Why" questions: the incident, its diagnosis, cause and action.
pub(super) fn why(c: &mut Ctx) -> Built {
    let r = c.u.range.clone();
    let scope = c.scope();
    let signals = c.u.signals.clone();
    let found = scope
        .iter()
        .find_map(|a| incident_of(a, &signals, &r).map(|i| (*a, i)));
    let mut out = Vec::new();
    let Some((a, i)) = found else {
        let ph = c.phrase(&r);
        let mut s = Sentence::default();
        let names: Vec<&str> = scope.iter().map(|a| a.asset.as_str()).collect();
        let a = scope.first().copied();
        let sig = a.and_then(|a| {
            signals
                .iter()
                .find(|x| known(a, c.history).signals.contains(x))
                .cloned()
        });
        let tail = match (a, sig) {
            (Some(a), Some(sig)) => latest_clause(c, &mut s, a, &sig).map(|t| format!("; its {t}")),
            _ => None,
        };
        s.lines.push(format!(
            "{}: no open or recent incident {ph}",
            names.join(", ")
        ));
        s.text = format!(
            "{} {} no open or recent incident {ph}{}.",
            names.join(" and "),
            if names.len() == 1 { "has" } else { "have" },
            tail.unwrap_or_default()
        );
        return (
            vec![s],
            String::new(),
            names.iter().map(|n| n.to_string()).collect(),
            signals,
        );
    };
    let mut s1 = Sentence::default();
    let mut syms: Vec<String> = Vec::new();
    for sym in &i.symptoms {
        if !syms.contains(&sym.signal) {
            syms.push(sym.signal.clone());
        }
    }
    syms.truncate(3);
    let list = syms
        .iter()
        .map(|x| say_signal(x))
        .collect::<Vec<_>>()
        .join(" and ");
    let focus = syms
        .iter()
        .find(|x| signals.contains(x))
        .or_else(|| syms.first())
        .cloned()
        .unwrap_or_default();
    let sev = i.severity.as_str();
    let opened = c.moment(i.opened_ns);
    s1.text = if i.phase != Phase::Closed {
        let tail = latest_clause(c, &mut s1, a, &focus)
            .map(|t| format!("; {t}"))
            .unwrap_or_default();
        format!(
            "{} has had an open {sev} incident since {opened} with symptoms on {list}{tail}.",
            a.asset
        )
    } else {
        let closed = c.moment(i.closed_ns.unwrap_or(i.updated_ns));
        format!(
            "{} had a {sev} incident from {opened} to {closed} with symptoms on {list}.",
            a.asset
        )
    };
    s1.lines.push(format!(
        "{} incident: {sev}, since {opened}, symptoms on {list}",
        a.asset
    ));
    out.push(s1);
    let mut s2 = Sentence::default();
    match i.top() {
        Some(t) => {
            let conf = s2.fact(
                &a.asset,
                "",
                "confidence",
                (i.opened_ns, i.updated_ns),
                t.confidence,
                "",
                Fmt::One,
            );
            s2.text = format!("The likely fault is {} (confidence {conf}).", t.title);
            s2.lines
                .push(format!("Diagnosis: {} (confidence {conf})", t.title));
            c.extra.push(t.title.clone());
            c.verbatim.push(t.title.clone());
            c.must_say.push(t.title.clone());
        }
        None => s2.text = "No known failure mode of its profile matches these symptoms.".into(),
    }
    out.push(s2);
    let (cause, action) = cause_action(a, i);
    c.claims.extend(cause.iter().chain(action.iter()).cloned());
    let mut s3 = Sentence::default();
    let parts: Vec<String> = [
        cause.map(|x| format!("Likely cause: {x}")),
        action.map(|x| format!("recommended action: {x}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !parts.is_empty() {
        for p in &parts {
            c.extra.push(p.clone());
            c.verbatim.push(p.clone());
            s3.lines.push(p.clone());
        }
        s3.text = format!("{}.", cap(&parts.join("; ")));
        out.push(s3);
    }
    // The model is told the fault and writes its cause and action.
    let prefix = match i.top() {
        Some(t) if i.phase != Phase::Closed => format!(
            "{} has an open {sev} incident; the likely fault is {}. Likely cause:",
            a.asset, t.title
        ),
        Some(t) => format!(
            "{} had a {sev} incident; the likely fault was {}. Likely cause:",
            a.asset, t.title
        ),
        None => a.asset.clone(),
    };
    (out, prefix, vec![a.asset.clone()], syms)
}

/// How much an asset needs attention, and why (one clause).
struct Rank {
    score: f64,
    sentence: Sentence,
    reason: String,
}

fn rank(c: &mut Ctx, a: &AssetContext, r: &TimeRange, attention: bool) -> Rank {
    let mut s = Sentence::default();
    let mut parts = Vec::new();
    let mut score = 0.0;
    let open: Vec<&Incident> = a
        .incidents
        .iter()
        .filter(|i| i.phase != Phase::Closed)
        .collect();
    if let Some(w) = open
        .iter()
        .max_by_key(|i| (sev_rank(i.severity), i.updated_ns))
    {
        score += 100.0 * f64::from(sev_rank(w.severity));
        let title = w
            .top()
            .map(|t| format!(" ({})", t.title))
            .unwrap_or_default();
        if let Some(t) = w.top() {
            c.extra.push(t.title.clone());
            c.verbatim.push(t.title.clone());
        }
        parts.push(format!(
            "it has an open {} incident{title} since {}",
            w.severity.as_str(),
            c.moment(w.opened_ns)
        ));
    }
    let (all, open) = anomalies(a, &[], r);
    let n = if attention { all } else { open };
    if n > 0 {
        score += 10.0 * (n.min(9) as f64);
        let agg = if attention {
            "anomalies"
        } else {
            "open_anomalies"
        };
        let nt = s.fact(
            &a.asset,
            "",
            agg,
            (r.from_ns, r.to_ns),
            n as f64,
            "count",
            Fmt::Count,
        );
        let word = if n == 1 { "anomaly" } else { "anomalies" };
        parts.push(if attention {
            format!("it had {nt} {word}")
        } else {
            format!("it has {nt} open {word}")
        });
    }
    let mut worst: Option<(f64, String)> = None;
    for sig in known(a, c.history).signals {
        if let Some(x) = c
            .history
            .last(&SensorId::new(a.asset.as_str(), sig.as_str()))
        {
            let p = out_of_range(x.value, &signal_info(a, &sig, c.history));
            if p > 0.0 && worst.as_ref().is_none_or(|(wp, _)| p > *wp) {
                worst = Some((p, sig));
            }
        }
    }
    if let Some((p, sig)) = worst {
        score += 5.0 * p.min(9.0);
        if let Some(t) = latest_clause(c, &mut s, a, &sig) {
            parts.push(format!("its {t}"));
        }
    }
    let reason = match parts.len() {
        0 | 1 => parts.join(""),
        n => format!("{}, and {}", parts[..n - 1].join(", "), parts[n - 1]),
    };
    s.lines.push(format!(
        "{}: {}",
        a.asset,
        if reason.is_empty() {
            "nothing abnormal"
        } else {
            &reason
        }
    ));
    Rank {
        score,
        sentence: s,
        reason,
    }
}

/// Status of the assets in scope, or (attention) every visible asset ranked.
pub(super) fn status(c: &mut Ctx, attention: bool) -> Built {
    let r = c.u.range.clone();
    let mut scope = c.scope();
    if let Some(k) = &c.u.kind_filter {
        scope.retain(|a| {
            a.profile
                .as_ref()
                .is_some_and(|p| super::understand::kind_of(&p.name) == *k)
        });
    }
    let mut ranks: Vec<(&AssetContext, Rank)> = scope
        .iter()
        .map(|a| (*a, rank(c, a, &r, attention)))
        .collect();
    ranks.sort_by(|(a, x), (b, y)| y.score.total_cmp(&x.score).then(a.asset.cmp(&b.asset)));
    let calm: Vec<String> = ranks
        .iter()
        .filter(|(_, k)| k.score <= 0.0)
        .map(|(a, _)| a.asset.clone())
        .collect();
    let busy: Vec<(&AssetContext, Rank)> =
        ranks.into_iter().filter(|(_, k)| k.score > 0.0).collect();
    let assets: Vec<String> = scope.iter().map(|a| a.asset.clone()).collect();
    let head = if attention {
        format!("{}, ", cap_phrase(&r, c.opts))
    } else {
        String::new()
    };
    if attention {
        c.phrase(&r);
    }
    let mut out = Vec::new();
    for (n, (a, k)) in busy
        .into_iter()
        .enumerate()
        .take(if calm.is_empty() { 3 } else { 2 })
    {
        let mut s = k.sentence;
        s.text = match (attention, n) {
            (true, 0) => format!("{head}{} needs attention first: {}.", a.asset, k.reason),
            (true, _) => format!("Next is {}: {}.", a.asset, k.reason),
            (false, _) => format!("{} needs attention: {}.", a.asset, k.reason),
        };
        out.push(s);
    }
    if !calm.is_empty() {
        let mut s = Sentence::default();
        let (has, read, its) = if calm.len() == 1 {
            ("has", "reads", "its")
        } else {
            ("have", "read", "their")
        };
        let list = calm.join(" and ");
        s.lines.push(format!(
            "{list}: no open incident, no anomaly, within normal ranges"
        ));
        s.text = if out.is_empty() && attention {
            format!("{head}no machine needs attention: {list} {has} no open incidents or anomalies and {read} within {its} normal ranges.")
        } else {
            let now = c.moment(c.q.received_ns);
            format!("{list} {has} no open incidents or anomalies and {read} within {its} normal ranges (at {now}).")
        };
        out.push(s);
    }
    let prefix = if attention {
        head.trim_end().to_string()
    } else {
        String::new()
    };
    (out, prefix, assets, Vec::new())
}
