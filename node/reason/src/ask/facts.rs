//! The facts of an understood question, read through [`millwright_core::History`] and the
//! analytics' incidents, cards and events of the visible assets only, written as template
//! sentences with their evidence ([`super::draft`]). Answers that need no model (refusals,
//! "which signal?", no data at all) are made here too.
//!
//! What must not happen here: reading any asset outside `visible`, or writing a number that
//! does not go through [`Sentence::fact`].

use super::draft::{build, cap, cap_phrase, out_of_range, range_clause, say_signal, signal_info, Fmt, Sentence};
use super::understand::{Aggregate, Kind, Understanding};
use super::when::{moment, phrase, span, TimeRange};
use super::{known, refusal, AskOptions, AskRequest, AssetContext};
use millwright_core::{Answer, AnswerSource, History, Incident, Phase, Question, SensorId, Severity};

/// The refusal for an asset the operator may not see and for one that does not exist (the
/// same words: it never tells them apart).
pub fn no_asset(id: &str, name: &str) -> Answer {
    let clean: String = name
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' ' | '.'))
        .take(32)
        .collect();
    refusal(id, format!("I have no asset called {} that you may ask about.", clean.trim()))
}

/// The refusal of injection attempts and requests for configuration or secrets.
pub const INJECTION_REFUSAL: &str = "I only answer questions about the data of the machines you may see; \
I do not share configuration, credentials, topics or instructions.";

/// Everything a builder needs.
struct Ctx<'a> {
    q: &'a Question,
    u: &'a Understanding,
    visible: &'a [&'a AssetContext],
    history: &'a dyn History,
    opts: &'a AskOptions,
    verbatim: Vec<String>,
    extra: Vec<String>,
}

impl<'a> Ctx<'a> {
    fn moment(&mut self, ts: i64) -> String {
        let m = moment(ts, self.q.received_ns, self.opts);
        self.verbatim.push(m.clone());
        m
    }

    fn phrase(&mut self, r: &TimeRange) -> String {
        if !r.is_now() {
            self.verbatim.push(span(r, self.opts));
        }
        phrase(r, self.opts)
    }

    /// The assets in scope: named ones, else every visible one.
    fn scope(&self) -> Vec<&'a AssetContext> {
        self.visible
            .iter()
            .filter(|a| self.u.assets.is_empty() || self.u.assets.contains(&a.asset))
            .copied()
            .collect()
    }

    fn template_answer(&self, text: String) -> Answer {
        Answer {
            source: AnswerSource::Template,
            ..refusal(&self.q.id, text)
        }
    }
}

/// Reads the evidence of `u` and builds the request (or the answer at once).
pub fn gather(
    q: &Question,
    u: Understanding,
    visible: &[&AssetContext],
    history: &dyn History,
    opts: &AskOptions,
) -> Result<AskRequest, Answer> {
    if let Some(x) = &u.unknown_asset {
        return Err(no_asset(&q.id, x));
    }
    let tags: Vec<String> = visible.iter().map(|a| a.asset.clone()).collect();
    if visible.is_empty() {
        return Err(refusal(&q.id, "There is no asset you may ask about."));
    }
    if u.kind == Kind::Unknown {
        return Err(if u.injection {
            refusal(&q.id, INJECTION_REFUSAL)
        } else {
            refusal(
                &q.id,
                format!(
                    "I can answer questions about the values, anomalies, incidents and status of {}.",
                    tags.join(", ")
                ),
            )
        });
    }
    let mut c = Ctx {
        q,
        u: &u,
        visible,
        history,
        opts,
        verbatim: Vec::new(),
        extra: Vec::new(),
    };
    let (sentences, prefix, assets, signals) = match u.kind {
        Kind::Value => value(&mut c)?,
        Kind::Count => count(&mut c),
        Kind::Why => why(&mut c),
        Kind::Status => status(&mut c, false),
        Kind::Attention | Kind::Unknown => status(&mut c, true),
    };
    let known_signals: Vec<String> = c
        .scope()
        .iter()
        .flat_map(|a| known(a, history).signals)
        .collect();
    let (verbatim, extra) = (c.verbatim, c.extra);
    Ok(build(
        q,
        u.clone(),
        sentences,
        prefix,
        extra,
        verbatim,
        (assets, signals, known_signals),
        opts,
    ))
}

type Built = (Vec<Sentence>, String, Vec<String>, Vec<String>);

fn unit_sp(u: &str) -> String {
    if u.is_empty() {
        String::new()
    } else {
        format!(" {u}")
    }
}

/// Value and aggregate questions.
fn value(c: &mut Ctx) -> Result<Built, Answer> {
    let u = c.u;
    let scope = c.scope();
    let mut pairs: Vec<(&AssetContext, String)> = Vec::new();
    for a in &scope {
        let sigs = known(a, c.history).signals;
        for s in &u.signals {
            if sigs.contains(s) {
                pairs.push((a, s.clone()));
            }
        }
    }
    if pairs.is_empty() {
        let list = scope
            .iter()
            .map(|a| {
                let s: Vec<String> = known(a, c.history).signals.iter().map(|s| say_signal(s)).collect();
                format!("{} measures {}", a.asset, s.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ");
        let names: Vec<&str> = scope.iter().map(|a| a.asset.as_str()).collect();
        return Err(c.template_answer(if u.signal_words.is_empty() {
            format!("Which signal do you mean? {list}.")
        } else {
            format!(
                "I have no data for {} of {}. {list}.",
                u.signal_words.join(" "),
                names.join(" or ")
            )
        }));
    }
    let r = u.range.clone();
    let ph = c.phrase(&r);
    let mut out = Vec::new();
    let (mut assets, mut signals) = (Vec::new(), Vec::new());
    for (a, sig) in pairs.into_iter().take(3) {
        let sensor = SensorId::new(a.asset.as_str(), sig.as_ref() as &str);
        let info = signal_info(a, &sig, c.history);
        let us = unit_sp(&info.unit);
        let name = say_signal(&sig);
        let mut s = Sentence::default();
        let stats = c.history.stats(&sensor, r.from_ns, r.to_ns);
        let latest_now = u.aggregate == Aggregate::Latest && r.is_now();
        let text = if latest_now {
            match c.history.last(&sensor) {
                Some(x) => {
                    let at = (x.ts_ns, x.ts_ns);
                    let v = s.fact(&a.asset, &sig, "latest", at, x.value, &info.unit, Fmt::Value);
                    let m = c.moment(x.ts_ns);
                    let cl = range_clause(&mut s, &a.asset, &sig, at, x.value, &info);
                    s.lines.push(format!("{} {name} latest at {m}: {v}{us}; {cl}", a.asset));
                    format!("The latest {name} of {} is {v}{us} (at {m}), {cl}.", a.asset)
                }
                None => no_data(c, &mut s, a, &sig, &r),
            }
        } else {
            match stats {
                None => no_data(c, &mut s, a, &sig, &r),
                Some(st) => {
                    let span_ns = (r.from_ns, r.to_ns);
                    match u.aggregate {
                        Aggregate::Latest => {
                            let v = s.fact(&a.asset, &sig, "latest", (st.last_ts_ns, st.last_ts_ns), st.last, &info.unit, Fmt::Value);
                            let m = c.moment(st.last_ts_ns);
                            s.lines.push(format!("{} {name} last value {ph}: {v}{us} at {m}", a.asset));
                            format!("The last {name} of {} {ph} was {v}{us} (at {m}).", a.asset)
                        }
                        Aggregate::Max | Aggregate::Min | Aggregate::Mean => {
                            let (agg, word, x) = match u.aggregate {
                                Aggregate::Max => ("max", "highest", st.max),
                                Aggregate::Min => ("min", "lowest", st.min),
                                _ => ("mean", "average", st.mean),
                            };
                            let v = s.fact(&a.asset, &sig, agg, span_ns, x, &info.unit, Fmt::Value);
                            let cl = range_clause(&mut s, &a.asset, &sig, span_ns, x, &info);
                            s.lines.push(format!("{} {name} {word} {ph}: {v}{us}; {cl}", a.asset));
                            let cl = if cl.is_empty() { String::new() } else { format!(", {cl}") };
                            format!("The {word} {name} of {} {ph} was {v}{us}{cl}.", a.asset)
                        }
                        Aggregate::Trend => trend(c, &mut s, a, &sig, &st, &ph, &info.unit),
                    }
                }
            }
        };
        s.text = text;
        out.push(s);
        if !assets.contains(&a.asset) {
            assets.push(a.asset.clone());
        }
        signals.push(sig);
    }
    let prefix = if u.range.is_now() {
        "The latest".to_string()
    } else {
        format!("{},", cap_phrase(&u.range, c.opts))
    };
    Ok((out, prefix, assets, signals))
}

fn trend(
    c: &mut Ctx,
    s: &mut Sentence,
    a: &AssetContext,
    sig: &str,
    st: &millwright_core::history::Stats,
    ph: &str,
    unit: &str,
) -> String {
    let name = say_signal(sig);
    let us = unit_sp(unit);
    let hours = (st.last_ts_ns - st.first_ts_ns) as f64 / 3.6e12;
    if st.count < 2 || hours <= 0.0 {
        let v = s.fact(&a.asset, sig, "latest", (st.last_ts_ns, st.last_ts_ns), st.last, unit, Fmt::Value);
        let m = c.moment(st.last_ts_ns);
        s.lines.push(format!("{} {name} only one reading {ph}: {v}{us} at {m}", a.asset));
        return format!("{} has only one {name} reading {ph}: {v}{us} (at {m}).", a.asset);
    }
    let span_ns = (st.first_ts_ns, st.last_ts_ns);
    let f = s.fact(&a.asset, sig, "first", (st.first_ts_ns, st.first_ts_ns), st.first, unit, Fmt::Value);
    let l = s.fact(&a.asset, sig, "last", (st.last_ts_ns, st.last_ts_ns), st.last, unit, Fmt::Value);
    let rate = (st.last - st.first) / hours;
    let rate_unit = if unit.is_empty() { "/h".to_string() } else { format!("{unit}/h") };
    let rt = s.fact(&a.asset, sig, "trend_per_h", span_ns, rate, &rate_unit, Fmt::Rate);
    let rt = rt.trim_start_matches('-');
    let verb = if f == l {
        "stayed at"
    } else if st.last > st.first {
        "rose"
    } else {
        "fell"
    };
    s.lines.push(format!("{} {name} {ph}: first {f}{us}, last {l}{us}, change {rt} {rate_unit}", a.asset));
    if f == l {
        format!("The {name} of {} stayed at {l}{us} {ph}.", a.asset)
    } else {
        format!("The {name} of {} {verb} from {f}{us} to {l}{us} {ph}, {rt} {rate_unit}.", a.asset)
    }
}

/// "I have no data for …" with what the store holds.
fn no_data(c: &mut Ctx, s: &mut Sentence, a: &AssetContext, sig: &str, r: &TimeRange) -> String {
    let name = say_signal(sig);
    let ph = c.phrase(r);
    let held = c.history.stats(&SensorId::new(a.asset.as_str(), sig.as_ref() as &str), i64::MIN, i64::MAX);
    s.lines.push(format!("{} {name}: no data {ph}", a.asset));
    match held {
        Some(st) => {
            let (m1, m2) = (c.moment(st.first_ts_ns), c.moment(st.last_ts_ns));
            format!("I have no data for {name} of {} {ph}; the store holds it from {m1} to {m2}.", a.asset)
        }
        None => format!("I have no data for {name} of {} {ph}, nor any stored before.", a.asset),
    }
}

/// Events of `a` overlapping the range (of `signals` when given): (all, still open).
fn anomalies(a: &AssetContext, signals: &[String], r: &TimeRange) -> (usize, usize) {
    let evs: Vec<_> = a
        .events
        .iter()
        .filter(|e| signals.is_empty() || signals.iter().any(|s| **s == *e.sensor.signal))
        .filter(|e| e.since_ns < r.to_ns && (e.phase != Phase::Closed || e.ts_ns >= r.from_ns))
        .collect();
    let open = evs.iter().filter(|e| e.phase != Phase::Closed).count();
    (evs.len(), open)
}

/// "How many anomalies" questions.
fn count(c: &mut Ctx) -> Built {
    let r = c.u.range.clone();
    let ph = c.phrase(&r);
    let mut out = Vec::new();
    let mut assets = Vec::new();
    for a in c.scope().into_iter().take(3) {
        let sigs: Vec<String> = c.u.signals.iter().filter(|s| known(a, c.history).signals.contains(s)).cloned().collect();
        let (n, open) = anomalies(a, &sigs, &r);
        let on = if sigs.is_empty() {
            String::new()
        } else {
            format!(" on {}", sigs.iter().map(|s| say_signal(s)).collect::<Vec<_>>().join(" and "))
        };
        let mut s = Sentence::default();
        let span_ns = (r.from_ns, r.to_ns);
        let sig0 = sigs.first().cloned().unwrap_or_default();
        let nt = s.fact(&a.asset, &sig0, "anomalies", span_ns, n as f64, "count", Fmt::Count);
        s.text = if n == 0 {
            format!("{} had no anomalies{on} {ph}.", a.asset)
        } else {
            let ot = s.fact(&a.asset, &sig0, "open_anomalies", span_ns, open as f64, "count", Fmt::Count);
            let word = if n == 1 { "anomaly" } else { "anomalies" };
            let still = match open {
                0 => "none is still open".to_string(),
                _ => format!("{ot} {} still open", if open == 1 { "is" } else { "are" }),
            };
            format!("{} had {nt} {word}{on} {ph}; {still}.", a.asset)
        };
        s.lines.push(format!("{} anomalies{on} {ph}: {nt}; still open: {open}", a.asset));
        out.push(s);
        assets.push(a.asset.clone());
    }
    let prefix = format!("{},", cap_phrase(&r, c.opts));
    (out, prefix, assets, c.u.signals.clone())
}

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
        .max_by_key(|i| (i.phase != Phase::Closed, named(i), sev_rank(i.severity), i.updated_ns))
}

/// Likely cause and first action of an incident: from its card, else from the profile.
fn cause_action(a: &AssetContext, i: &Incident) -> (Option<String>, Option<String>) {
    let card = a.cards.iter().rev().find(|c| c.id == i.id);
    let mode = i
        .top()
        .and_then(|t| a.profile.as_ref()?.failure_modes.iter().find(|m| m.id == t.id));
    let cause = card
        .and_then(|c| c.likely_causes.first().cloned())
        .or_else(|| mode.and_then(|m| m.causes.first().cloned()));
    let action = card
        .and_then(|c| c.actions.first().map(|x| x.text.clone()))
        .or_else(|| {
            let m = mode?;
            m.actions.iter().min_by_key(|x| x.urgency).map(|x| x.text.clone())
        });
    let trim = |s: String| s.trim().trim_end_matches('.').to_string();
    (cause.map(trim), action.map(trim))
}

/// The latest value of `sig` on `a` as "bearing temp is 71.3 °C (at 06:12 UTC), above …".
fn latest_clause(c: &mut Ctx, s: &mut Sentence, a: &AssetContext, sig: &str) -> Option<String> {
    let x = c.history.last(&SensorId::new(a.asset.as_str(), sig.as_ref() as &str))?;
    let info = signal_info(a, sig, c.history);
    let at = (x.ts_ns, x.ts_ns);
    let v = s.fact(&a.asset, sig, "latest", at, x.value, &info.unit, Fmt::Value);
    let m = c.moment(x.ts_ns);
    let cl = range_clause(s, &a.asset, sig, at, x.value, &info);
    let cl = if cl.is_empty() { String::new() } else { format!(", {cl}") };
    let line = format!("{} {} is {v}{} (at {m}){cl}", a.asset, say_signal(sig), unit_sp(&info.unit));
    s.lines.push(line);
    Some(format!("{} is {v}{} (at {m}){cl}", say_signal(sig), unit_sp(&info.unit)))
}

/// "Why" questions: the incident, its diagnosis, cause and action.
fn why(c: &mut Ctx) -> Built {
    let r = c.u.range.clone();
    let scope = c.scope();
    let signals = c.u.signals.clone();
    let found = scope.iter().find_map(|a| incident_of(a, &signals, &r).map(|i| (*a, i)));
    let mut out = Vec::new();
    let Some((a, i)) = found else {
        let ph = c.phrase(&r);
        let mut s = Sentence::default();
        let names: Vec<&str> = scope.iter().map(|a| a.asset.as_str()).collect();
        let a = scope.first().copied();
        let sig = a.and_then(|a| signals.iter().find(|x| known(a, c.history).signals.contains(x)).cloned());
        let tail = match (a, sig) {
            (Some(a), Some(sig)) => latest_clause(c, &mut s, a, &sig).map(|t| format!("; its {t}")),
            _ => None,
        };
        s.lines.push(format!("{}: no open or recent incident {ph}", names.join(", ")));
        s.text = format!(
            "{} {} no open or recent incident {ph}{}.",
            names.join(" and "),
            if names.len() == 1 { "has" } else { "have" },
            tail.unwrap_or_default()
        );
        return (vec![s], String::new(), names.iter().map(|n| n.to_string()).collect(), signals);
    };
    let mut s1 = Sentence::default();
    let mut syms: Vec<String> = Vec::new();
    for sym in &i.symptoms {
        if !syms.contains(&sym.signal) {
            syms.push(sym.signal.clone());
        }
    }
    syms.truncate(3);
    let list = syms.iter().map(|x| say_signal(x)).collect::<Vec<_>>().join(" and ");
    let focus = syms
        .iter()
        .find(|x| signals.contains(x))
        .or_else(|| syms.first())
        .cloned()
        .unwrap_or_default();
    let sev = i.severity.as_str();
    let opened = c.moment(i.opened_ns);
    s1.text = if i.phase != Phase::Closed {
        let tail = latest_clause(c, &mut s1, a, &focus).map(|t| format!("; {t}")).unwrap_or_default();
        format!("{} has had an open {sev} incident since {opened} with symptoms on {list}{tail}.", a.asset)
    } else {
        let closed = c.moment(i.closed_ns.unwrap_or(i.updated_ns));
        format!("{} had a {sev} incident from {opened} to {closed} with symptoms on {list}.", a.asset)
    };
    s1.lines.push(format!("{} incident: {sev}, since {opened}, symptoms on {list}", a.asset));
    out.push(s1);
    let mut s2 = Sentence::default();
    match i.top() {
        Some(t) => {
            let conf = s2.fact(&a.asset, "", "confidence", (i.opened_ns, i.updated_ns), t.confidence, "", Fmt::One);
            s2.text = format!("The likely fault is {} (confidence {conf}).", t.title);
            s2.lines.push(format!("Diagnosis: {} (confidence {conf})", t.title));
            c.extra.push(t.title.clone());
            c.verbatim.push(t.title.clone());
        }
        None => s2.text = "No known failure mode of its profile matches these symptoms.".into(),
    }
    out.push(s2);
    let (cause, action) = cause_action(a, i);
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
    let prefix = a.asset.clone();
    (out, prefix, vec![a.asset.clone()], syms)
}

/// How much an asset needs attention, and why (one clause).
struct Rank {
    score: f64,
    sentence: Sentence,
    reason: String,
}

fn rank(c: &mut Ctx, a: &AssetContext, r: &TimeRange) -> Rank {
    let mut s = Sentence::default();
    let mut parts = Vec::new();
    let mut score = 0.0;
    let open: Vec<&Incident> = a.incidents.iter().filter(|i| i.phase != Phase::Closed).collect();
    if let Some(w) = open.iter().max_by_key(|i| (sev_rank(i.severity), i.updated_ns)) {
        score += 100.0 * f64::from(sev_rank(w.severity));
        let title = w.top().map(|t| format!(" ({})", t.title)).unwrap_or_default();
        if let Some(t) = w.top() {
            c.extra.push(t.title.clone());
            c.verbatim.push(t.title.clone());
        }
        parts.push(format!("an open {} incident{title} since {}", w.severity.as_str(), c.moment(w.opened_ns)));
    }
    let (n, _) = anomalies(a, &[], r);
    if n > 0 {
        score += 10.0 * (n.min(9) as f64);
        let nt = s.fact(&a.asset, "", "anomalies", (r.from_ns, r.to_ns), n as f64, "count", Fmt::Count);
        parts.push(format!("{nt} {}", if n == 1 { "anomaly" } else { "anomalies" }));
    }
    let mut worst: Option<(f64, String)> = None;
    for sig in known(a, c.history).signals {
        if let Some(x) = c.history.last(&SensorId::new(a.asset.as_str(), sig.as_ref() as &str)) {
            let p = out_of_range(x.value, &signal_info(a, &sig, c.history));
            if p > 0.0 && worst.as_ref().is_none_or(|(wp, _)| p > *wp) {
                worst = Some((p, sig));
            }
        }
    }
    if let Some((p, sig)) = worst {
        score += 5.0 * p.min(9.0);
        if let Some(t) = latest_clause(c, &mut s, a, &sig) {
            parts.push(t);
        }
    }
    let reason = parts.join("; ");
    s.lines.push(format!("{}: {}", a.asset, if reason.is_empty() { "nothing abnormal" } else { &reason }));
    Rank { score, sentence: s, reason }
}

/// Status of the assets in scope, or (attention) every visible asset ranked.
fn status(c: &mut Ctx, attention: bool) -> Built {
    let r = c.u.range.clone();
    let mut scope = c.scope();
    if let Some(k) = &c.u.kind_filter {
        scope.retain(|a| a.profile.as_ref().is_some_and(|p| super::understand::kind_of(&p.name) == *k));
    }
    let mut ranks: Vec<(&AssetContext, Rank)> = scope.iter().map(|a| (*a, rank(c, a, &r))).collect();
    ranks.sort_by(|(a, x), (b, y)| y.score.total_cmp(&x.score).then(a.asset.cmp(&b.asset)));
    let calm: Vec<String> = ranks.iter().filter(|(_, k)| k.score <= 0.0).map(|(a, _)| a.asset.clone()).collect();
    let busy: Vec<(&AssetContext, Rank)> = ranks.into_iter().filter(|(_, k)| k.score > 0.0).collect();
    let assets: Vec<String> = scope.iter().map(|a| a.asset.clone()).collect();
    let head = if attention { format!("{}, ", cap_phrase(&r, c.opts)) } else { String::new() };
    if attention {
        c.phrase(&r);
    }
    let mut out = Vec::new();
    for (n, (a, k)) in busy.into_iter().enumerate().take(if calm.is_empty() { 3 } else { 2 }) {
        let mut s = k.sentence;
        s.text = match (attention, n) {
            (true, 0) => format!("{head}{} needs attention first: {}.", a.asset, k.reason),
            (true, _) => format!("Next is {}: {}.", a.asset, k.reason),
            (false, _) => format!("{} has {}.", a.asset, k.reason),
        };
        out.push(s);
    }
    if !calm.is_empty() {
        let mut s = Sentence::default();
        let (has, read) = if calm.len() == 1 { ("has", "reads") } else { ("have", "read") };
        let list = calm.join(" and ");
        s.lines.push(format!("{list}: no open incident, no anomaly, within normal ranges"));
        s.text = if out.is_empty() && attention {
            format!("{head}no machine needs attention: {list} {has} no open incidents or anomalies and {read} within their normal ranges.")
        } else {
            let now = c.moment(c.q.received_ns);
            format!("{list} {has} no open incidents or anomalies and {read} within their normal ranges (at {now}).")
        };
        out.push(s);
    }
    let prefix = if attention { head.trim_end().to_string() } else { String::new() };
    (out, prefix, assets, Vec::new())
}
