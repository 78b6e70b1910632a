//! Model answers: the prompt (the facts as lines, the question as understood, an answer
//! prefix that states the range or the asset) with the facts' vocabulary for constrained
//! decoding, and the check a model text must pass before it replaces the template:
//! - form: a sentence or more of its own, at most three, no prompt markup copied;
//! - vocabulary: every word and separator from the request's vocabulary;
//! - assets: no tag but the answer's assets;
//! - signals: no signal name of the assets' profiles that is not in the facts;
//! - numbers: every number (outside the verbatim texts: time spans, moments, failure-mode
//!   titles, causes and actions) is an evidence value within the rounding both are written
//!   with (signs ignored), and its unit, when the evidence has one, is written after it and
//!   is the evidence's unit;
//! - time: the range (or, for a latest value, the moment) is stated.
//!
//! The template passes the same check (tested), so `verified` means the same for both.

use super::understand::tokens;
use super::AskRequest;
use crate::ground::{numbers_in, unit_of};
use millwright_core::{GenParams, Prompt};

const SYSTEM: &str = "You are a maintenance assistant at an industrial site. \
Answer the operator's question in one or two short sentences using only the facts given. \
Copy numbers, units and times exactly as written. Never invent numbers, machines or sensors.";

/// The question as understood, in plain words (the model never sees the raw text when it
/// tried injection).
fn restated(r: &AskRequest) -> String {
    if r.understood.injection {
        let what: Vec<String> = r.signals.iter().take(1).cloned().collect();
        format!(
            "Tell me about {} {}.",
            what.join(" "),
            r.assets.join(" and ")
        )
    } else {
        r.question.text.clone()
    }
}

/// The model input of a request.
pub fn prompt(r: &AskRequest) -> (Prompt, GenParams) {
    let mut user = String::from("Facts:\n");
    for l in &r.fact_lines {
        user.push_str("- ");
        user.push_str(l);
        user.push('\n');
    }
    user.push_str(&format!("Question: {}\n", restated(r)));
    let mut p = Prompt::new(SYSTEM, user);
    p.answer_prefix = (!r.prefix.is_empty()).then(|| r.prefix.clone());
    let params = GenParams {
        max_tokens: r.opts.max_tokens,
        budget_ms: r.opts.budget_ms,
        stop: vec!["\n".into()],
        vocabulary: Some(r.vocabulary.clone()),
        ..GenParams::default()
    };
    (p, params)
}

/// The answer prefix and the completion joined and tidied (at most three sentences).
pub fn model_text(prefix: &str, completion: &str) -> String {
    let sep = if prefix.is_empty() || completion.starts_with(char::is_whitespace) {
        ""
    } else {
        " "
    };
    let t = crate::explain::tidy(&format!("{prefix}{sep}{completion}"));
    let mut out = String::new();
    let mut n = 0;
    let chars: Vec<char> = t.chars().collect();
    for (i, ch) in chars.iter().enumerate() {
        out.push(*ch);
        if matches!(ch, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|c| *c == ' ') {
            n += 1;
            if n == 3 {
                break;
            }
        }
    }
    out.trim().to_string()
}

/// Looks like an asset tag (`P-101`, `M-201`).
fn tag_like(w: &str) -> bool {
    let Some((a, b)) = w.split_once('-') else {
        return false;
    };
    (1..=5).contains(&a.len())
        && a.chars().all(|c| c.is_ascii_alphabetic())
        && (1..=5).contains(&b.len())
        && b.chars().all(|c| c.is_ascii_digit())
}

fn same_unit(written: &str, evidence: &str) -> bool {
    let w = written.to_lowercase();
    let e = evidence.to_lowercase();
    w == e
        || match (unit_of(&w), unit_of(&e)) {
            (Some(a), Some(b)) => a == b && !e.contains("/h"),
            _ => false,
        }
}

/// Aggregates a number may be, from the closest keyword before it (since the previous
/// number): a limit, the normal range, a maximum, minimum or mean; with none, a measured
/// value of any aggregate but the profile's ranges.
fn aggregate_said(before: &str) -> &'static [&'static str] {
    const MEASURED: &[&str] = &[
        "latest",
        "max",
        "min",
        "mean",
        "first",
        "last",
        "trend_per_h",
        "anomalies",
        "open_anomalies",
        "confidence",
    ];
    let mut said: &'static [&'static str] = MEASURED;
    for w in tokens(before) {
        said = match w.as_str() {
            "limit" | "limits" | "alarm" | "trip" => &["limit_high", "limit_low"],
            "normal" | "range" | "ranges" => &["normal_high", "normal_low"],
            "max" | "maximum" | "highest" | "peak" | "peaked" | "top" => &["max"],
            "min" | "minimum" | "lowest" => &["min"],
            "average" | "mean" => &["mean"],
            "latest" | "now" | "currently" => &["latest"],
            "confidence" => &["confidence"],
            _ => continue,
        };
    }
    said
}

/// Share of a clause's claim words that must come from one cause or action text.
pub const CLAIM_MATCH: f64 = 0.75;

/// Clauses of `text` that claim what no single cause or action of the facts says (why
/// answers; nothing to check without causes and actions).
fn claim_problems(r: &AskRequest, text: &str) -> Vec<String> {
    if r.claims.is_empty() {
        return Vec::new();
    }
    let lowers = |t: &str| -> Vec<String> {
        millwright_core::llm::split_words(t)
            .into_iter()
            .map(str::to_ascii_lowercase)
            .collect()
    };
    let mut plain: Vec<String> = crate::vocab::FUNCTION_WORDS
        .iter()
        .chain(super::draft::ANSWER_WORDS)
        .map(|w| w.to_string())
        .collect();
    for t in r.assets.iter().chain(&r.signals).chain(&r.must_say) {
        plain.extend(lowers(t));
        plain.extend(lowers(&t.replace('_', " ")));
    }
    for n in &r.numbers {
        plain.extend(lowers(&n.unit));
    }
    plain.extend(["fault", "cause", "action", "recommended"].map(String::from));
    let content = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = lowers(t)
            .into_iter()
            .filter(|w| !plain.contains(w) && !w.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let items: Vec<Vec<String>> = r.claims.iter().map(|c| content(c)).collect();
    let mut out = Vec::new();
    for cl in crate::vocab::clauses(text) {
        let claim = content(cl);
        if claim.is_empty() {
            continue;
        }
        let best = items
            .iter()
            .map(|i| claim.iter().filter(|w| i.contains(w)).count())
            .max()
            .unwrap_or(0);
        if (best as f64) < CLAIM_MATCH * claim.len() as f64 {
            out.push(format!(
                "\"{cl}\" matches no cause or action of the facts ({claim:?})"
            ));
        }
    }
    out
}

/// Every problem of a text (empty: it may be published).
pub fn problems(r: &AskRequest, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = text.to_lowercase();
    let own = lower
        .strip_prefix(&r.prefix.to_lowercase())
        .unwrap_or(&lower);
    if text.len() < 12 || own.split_whitespace().count() < 2 {
        return vec!["answer too short".into()];
    }
    for bad in ["facts", "question:", "<", ">", "{", "}", "- "] {
        if lower.contains(bad) && !r.template_text.to_lowercase().contains(bad) {
            return vec![format!("answer contains {bad:?} (copied prompt)")];
        }
    }
    let ends = text
        .char_indices()
        .filter(|(i, c)| {
            matches!(c, '.' | '!' | '?') && text[i + 1..].chars().next().is_none_or(|n| n == ' ')
        })
        .count();
    if ends > 3 {
        out.push(format!("{ends} sentences (at most 3)"));
    }
    if !text.trim_end().ends_with(['.', '!', '?']) {
        out.push("unfinished sentence".into());
    }
    let outside = r.vocabulary.violations(text);
    if !outside.is_empty() {
        out.push(format!("words outside the vocabulary: {outside:?}"));
    }
    // Assets.
    for w in
        text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '(' | ')' | '"'))
    {
        let w = w.trim_end_matches(['.', '!', '?']);
        if tag_like(w) && !r.assets.iter().any(|a| a == w) {
            out.push(format!("names asset {w}, not in the facts"));
        }
    }
    // Signals.
    let toks = tokens(text);
    for t in &toks {
        if t.contains('_') && !r.signals.iter().any(|s| s == t) {
            out.push(format!("names signal {t}, not in the facts"));
        }
    }
    for k in &r.known_signals {
        let said = super::draft::say_signal(k);
        if r.signals.iter().any(|s| s == k) || !said.contains(' ') {
            continue;
        }
        if lower.contains(&said) && !r.verbatim.iter().any(|v| v.to_lowercase().contains(&said)) {
            out.push(format!("names signal {said}, not in the facts"));
        }
    }
    // Numbers, outside the verbatim texts, tags and identifiers.
    let mut masked = text.to_string();
    let mut verbatim = r.verbatim.clone();
    verbatim.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in verbatim.iter().chain(&r.assets).chain(&r.signals) {
        if !v.is_empty() {
            masked = masked.replace(v.as_str(), " ");
        }
    }
    let words: Vec<&str> = masked.split_whitespace().collect();
    let mut pos = 0usize;
    let mut seg_start = 0usize;
    for (lit, v, suffix) in numbers_in(&masked) {
        // The words since the previous number say what this one is.
        let lit_at = masked[seg_start..]
            .find(lit.as_str())
            .map_or(seg_start, |i| seg_start + i);
        let said = aggregate_said(&masked[seg_start..lit_at]);
        seg_start = (lit_at + lit.len()).min(masked.len());
        let d = lit.split_once('.').map_or(0, |(_, f)| f.len());
        let tol = 0.5 * 10f64.powi(-(d as i32));
        let matched: Vec<_> = r
            .numbers
            .iter()
            .filter(|f| {
                (v - f.value.abs()).abs() < tol + 0.5 * 10f64.powi(-(f.decimals as i32)) - 1e-12
            })
            .collect();
        // the unit: attached, else the next word
        let mut unit = (!suffix.is_empty()).then(|| suffix.clone());
        if unit.is_none() {
            while pos < words.len() && !words[pos].starts_with(lit.as_str()) {
                pos += 1;
            }
            unit = words.get(pos + 1).map(|w| {
                w.trim_end_matches(['.', ',', ';', ')', '!', '?'])
                    .to_string()
            });
            pos += 1;
        }
        if matched.is_empty() {
            out.push(format!("number {lit} is not in the evidence"));
            continue;
        }
        let fits: Vec<_> = matched
            .iter()
            .filter(|f| said.contains(&f.aggregate.as_str()))
            .collect();
        if fits.is_empty() {
            out.push(format!(
                "{lit} is said as {said:?}, the evidence has it as {:?}",
                matched
                    .iter()
                    .map(|f| f.aggregate.as_str())
                    .collect::<Vec<_>>()
            ));
            continue;
        }
        let matched = fits;
        let needs_unit = matched
            .iter()
            .all(|f| !f.unit.is_empty() && f.unit != "count");
        let unit_ok = match &unit {
            Some(u) => matched
                .iter()
                .any(|f| f.unit.is_empty() || f.unit == "count" || same_unit(u, &f.unit)),
            None => !needs_unit,
        };
        if !unit_ok {
            let stated: Vec<&str> = matched.iter().map(|f| f.unit.as_str()).collect();
            out.push(format!(
                "{lit} {}: the evidence gives {lit} in {}",
                unit.unwrap_or_default(),
                stated.join(" or ")
            ));
        }
    }
    // The diagnosed fault is named; claims are the facts' causes and actions.
    for m in &r.must_say {
        if !lower.contains(&m.to_lowercase()) {
            out.push(format!("does not name {m:?}"));
        }
    }
    out.extend(claim_problems(r, text));
    // Every asset the template names.
    for a in &r.assets {
        if r.template_text.contains(a.as_str()) && !text.contains(a.as_str()) {
            out.push(format!("does not name {a}"));
        }
    }
    // Time.
    let has_numbers = !r.numbers.is_empty();
    let range_said = lower.contains(&r.understood.range.label.to_lowercase())
        || r.verbatim
            .iter()
            .any(|v| v.contains(':') && text.contains(v.as_str()));
    if has_numbers && !range_said {
        out.push(format!(
            "does not state the time ({})",
            r.understood.range.label
        ));
    }
    out
}
