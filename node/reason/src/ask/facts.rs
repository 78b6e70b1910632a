//! The facts of an understood question, read through [`millwright_core::History`] and the
//! analytics' incidents, cards and events of the visible assets only, written as template
//! sentences with their evidence ([`super::draft`]). Answers that need no model (refusals,
//! "which signal?", no data at all) are made here too.
//!
//! What must not happen here: reading any asset outside `visible`, or writing a number that
//! does not go through [`Sentence::fact`].

use super::draft::{build, cap_phrase, range_clause, say_signal, signal_info, Fmt, Sentence};
use super::understand::{Aggregate, Kind, Understanding};
use super::when::{moment, phrase, span, TimeRange};
use super::{known, refusal, AskOptions, AskRequest, AssetContext};
use millwright_core::{Answer, AnswerSource, History, Phase, Question, SensorId};

/// The refusal for an asset the operator may not see and for one that does not exist (the
/// same words: it never tells them apart).
pub fn no_asset(id: &str, name: &str) -> Answer {
    let clean: String = name
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' ' | '.'))
        .take(32)
        .collect();
    refusal(
        id,
        format!(
            "I have no asset called {} that you may ask about.",
            clean.trim()
        ),
    )
}

/// The refusal of injection attempts and requests for configuration or secrets.
pub const INJECTION_REFUSAL: &str =
    "I only answer questions about the data of the machines you may see; \
I do not share configuration, credentials, topics or instructions.";

/// Everything a builder needs.
pub(super) struct Ctx<'a> {
    pub(super) q: &'a Question,
    pub(super) u: &'a Understanding,
    pub(super) visible: &'a [&'a AssetContext],
    pub(super) history: &'a dyn History,
    pub(super) opts: &'a AskOptions,
    pub(super) verbatim: Vec<String>,
    pub(super) extra: Vec<String>,
    /// Signals the sentences name.
    pub(super) used: Vec<String>,
    /// Cause and action texts a model clause must take its claims from (why answers).
    pub(super) claims: Vec<String>,
    /// Texts a model answer must contain (the diagnosed fault).
    pub(super) must_say: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub(super) fn moment(&mut self, ts: i64) -> String {
        let m = moment(ts, self.q.received_ns, self.opts);
        self.verbatim.push(m.clone());
        m
    }

    pub(super) fn phrase(&mut self, r: &TimeRange) -> String {
        let p = phrase(r, self.opts);
        if !r.is_now() {
            self.verbatim.push(span(r, self.opts));
            self.verbatim.push(p.clone());
            self.verbatim.push(r.label.clone());
        }
        p
    }

    /// The assets in scope: named ones, else every visible one.
    pub(super) fn scope(&self) -> Vec<&'a AssetContext> {
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
#[allow(clippy::result_large_err)] // the Err is the finished answer, made once per question
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
        used: Vec::new(),
        claims: Vec::new(),
        must_say: Vec::new(),
    };
    let (sentences, prefix, assets, mut signals) = match u.kind {
        Kind::Value => value(&mut c)?,
        Kind::Count => count(&mut c),
        Kind::Why => super::incidents::why(&mut c),
        Kind::Status => super::incidents::status(&mut c, false),
        Kind::Attention | Kind::Unknown => super::incidents::status(&mut c, true),
    };
    let known_signals: Vec<String> = c
        .scope()
        .iter()
        .flat_map(|a| known(a, history).signals)
        .collect();
    for s in c.used {
        if !signals.contains(&s) {
            signals.push(s);
        }
    }
    let (verbatim, extra) = (c.verbatim, c.extra);
    let checks = super::draft::Checks {
        claims: c.claims,
        must_say: c.must_say,
    };
    Ok(build(
        q,
        u.clone(),
        sentences,
        prefix,
        extra,
        verbatim,
        (assets, signals, known_signals),
        checks,
        opts,
    ))
}

pub(super) type Built = (Vec<Sentence>, String, Vec<String>, Vec<String>);

pub(super) fn unit_sp(u: &str) -> String {
    if u.is_empty() {
        String::new()
    } else {
        format!(" {u}")
    }
}

/// Value and aggregate questions.
#[allow(clippy::result_large_err)] // the Err is the finished answer
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
                let s: Vec<String> = known(a, c.history)
                    .signals
                    .iter()
                    .map(|s| say_signal(s))
                    .collect();
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
        let sensor = SensorId::new(a.asset.as_str(), sig.as_str());
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
                    let v = s.fact(
                        &a.asset,
                        &sig,
                        "latest",
                        at,
                        x.value,
                        &info.unit,
                        Fmt::Value,
                    );
                    let m = c.moment(x.ts_ns);
                    let cl = range_clause(&mut s, &a.asset, &sig, at, x.value, &info);
                    s.lines
                        .push(format!("{} {name} latest at {m}: {v}{us}; {cl}", a.asset));
                    format!(
                        "The latest {name} of {} is {v}{us} (at {m}), {cl}.",
                        a.asset
                    )
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
                            let v = s.fact(
                                &a.asset,
                                &sig,
                                "latest",
                                (st.last_ts_ns, st.last_ts_ns),
                                st.last,
                                &info.unit,
                                Fmt::Value,
                            );
                            let m = c.moment(st.last_ts_ns);
                            s.lines.push(format!(
                                "{} {name} last value {ph}: {v}{us} at {m}",
                                a.asset
                            ));
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
                            s.lines
                                .push(format!("{} {name} {word} {ph}: {v}{us}; {cl}", a.asset));
                            let cl = if cl.is_empty() {
                                String::new()
                            } else {
                                format!(", {cl}")
                            };
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
    let first_moment = c
        .verbatim
        .iter()
        .find(|v| v.ends_with(&super::when::zone(c.opts)) && !v.contains(" to "))
        .cloned();
    let prefix = if u.range.is_now() {
        match first_moment {
            Some(m) => format!("At {m},"),
            None => "The latest".to_string(),
        }
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
        let v = s.fact(
            &a.asset,
            sig,
            "latest",
            (st.last_ts_ns, st.last_ts_ns),
            st.last,
            unit,
            Fmt::Value,
        );
        let m = c.moment(st.last_ts_ns);
        s.lines.push(format!(
            "{} {name} only one reading {ph}: {v}{us} at {m}",
            a.asset
        ));
        return format!(
            "{} has only one {name} reading {ph}: {v}{us} (at {m}).",
            a.asset
        );
    }
    let span_ns = (st.first_ts_ns, st.last_ts_ns);
    let f = s.fact(
        &a.asset,
        sig,
        "first",
        (st.first_ts_ns, st.first_ts_ns),
        st.first,
        unit,
        Fmt::Value,
    );
    let l = s.fact(
        &a.asset,
        sig,
        "last",
        (st.last_ts_ns, st.last_ts_ns),
        st.last,
        unit,
        Fmt::Value,
    );
    let rate = (st.last - st.first) / hours;
    let rate_unit = if unit.is_empty() {
        "/h".to_string()
    } else {
        format!("{unit}/h")
    };
    let rt = s.fact(
        &a.asset,
        sig,
        "trend_per_h",
        span_ns,
        rate,
        &rate_unit,
        Fmt::Rate,
    );
    let rt = rt.trim_start_matches('-');
    let verb = if f == l {
        "stayed at"
    } else if st.last > st.first {
        "rose"
    } else {
        "fell"
    };
    s.lines.push(format!(
        "{} {name} {ph}: first {f}{us}, last {l}{us}, change {rt} {rate_unit}",
        a.asset
    ));
    if f == l {
        format!("The {name} of {} stayed at {l}{us} {ph}.", a.asset)
    } else {
        format!(
            "The {name} of {} {verb} from {f}{us} to {l}{us} {ph}, {rt} {rate_unit}.",
            a.asset
        )
    }
}

/// "I have no data for …" with what the store holds.
fn no_data(c: &mut Ctx, s: &mut Sentence, a: &AssetContext, sig: &str, r: &TimeRange) -> String {
    let name = say_signal(sig);
    let ph = c.phrase(r);
    let held = c
        .history
        .stats(&SensorId::new(a.asset.as_str(), sig), i64::MIN, i64::MAX);
    s.lines.push(format!("{} {name}: no data {ph}", a.asset));
    match held {
        Some(st) => {
            let (m1, m2) = (c.moment(st.first_ts_ns), c.moment(st.last_ts_ns));
            format!(
                "I have no data for {name} of {} {ph}; the store holds it from {m1} to {m2}.",
                a.asset
            )
        }
        None => format!(
            "I have no data for {name} of {} {ph}, nor any stored before.",
            a.asset
        ),
    }
}

/// Events of `a` overlapping the range (of `signals` when given): (all, still open).
pub(super) fn anomalies(a: &AssetContext, signals: &[String], r: &TimeRange) -> (usize, usize) {
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
        let sigs: Vec<String> =
            c.u.signals
                .iter()
                .filter(|s| known(a, c.history).signals.contains(s))
                .cloned()
                .collect();
        let (n, open) = anomalies(a, &sigs, &r);
        let on = if sigs.is_empty() {
            String::new()
        } else {
            format!(
                " on {}",
                sigs.iter()
                    .map(|s| say_signal(s))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        };
        let mut s = Sentence::default();
        let span_ns = (r.from_ns, r.to_ns);
        let sig0 = sigs.first().cloned().unwrap_or_default();
        let nt = s.fact(
            &a.asset,
            &sig0,
            "anomalies",
            span_ns,
            n as f64,
            "count",
            Fmt::Count,
        );
        s.text = if n == 0 {
            format!("{} had no anomalies{on} {ph}.", a.asset)
        } else {
            let ot = s.fact(
                &a.asset,
                &sig0,
                "open_anomalies",
                span_ns,
                open as f64,
                "count",
                Fmt::Count,
            );
            let word = if n == 1 { "anomaly" } else { "anomalies" };
            let still = match open {
                0 => "none is still open".to_string(),
                _ => format!("{ot} {} still open", if open == 1 { "is" } else { "are" }),
            };
            format!("{} had {nt} {word}{on} {ph}; {still}.", a.asset)
        };
        s.lines.push(format!(
            "{} anomalies{on} {ph}: {nt}; still open: {open}",
            a.asset
        ));
        out.push(s);
        assets.push(a.asset.clone());
    }
    let prefix = format!("{},", cap_phrase(&r, c.opts));
    (out, prefix, assets, c.u.signals.clone())
}
