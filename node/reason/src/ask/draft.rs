//! Building an answer: sentences with the evidence each rests on (every number written
//! through [`Draft::fact`], so the text and the evidence hold the same rounded value), the
//! prompt's fact lines, extra words the model may use, then the [`AskRequest`]. Also the
//! signals' context (unit, normal range, limits, how far a value is out of them).

use super::when::{phrase, TimeRange};
use super::{AskOptions, AskRequest, AssetContext, Understanding};
use crate::text::{display_signal, fixed, num, sig2};
use millwright_core::llm::Vocabulary;
use millwright_core::{AnswerEvidence, History, Question, SensorId};
use std::sync::Arc;

/// A number of the evidence as the texts write it.
#[derive(Clone, Debug, PartialEq)]
pub struct FactNumber {
    /// The value as written.
    pub value: f64,
    /// Decimals it was written with.
    pub decimals: usize,
    /// Its unit (empty or `count` for none).
    pub unit: String,
    /// Its evidence aggregate (`max`, `latest`, `limit_high`, …).
    pub aggregate: String,
}

/// One sentence and what it rests on.
#[derive(Clone, Debug, Default)]
pub struct Sentence {
    /// The text (ends with `.`).
    pub text: String,
    /// Its evidence.
    pub evidence: Vec<AnswerEvidence>,
    /// Its numbers as written.
    pub numbers: Vec<FactNumber>,
    /// Its facts for the prompt.
    pub lines: Vec<String>,
}

/// How a value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    /// Magnitude rule (`71.3`, `6.20`, `145`).
    Value,
    /// Two significant digits (rates).
    Rate,
    /// One decimal (confidence).
    One,
    /// Whole number (counts).
    Count,
}

impl Sentence {
    /// Writes `value` as the text will say it and records it as evidence; returns the text.
    #[allow(clippy::too_many_arguments)]
    pub fn fact(
        &mut self,
        asset: &str,
        signal: &str,
        aggregate: &str,
        (from_ns, to_ns): (i64, i64),
        value: f64,
        unit: &str,
        fmt: Fmt,
    ) -> String {
        let lit = match fmt {
            Fmt::Value => num(value),
            Fmt::Rate => sig2(value),
            Fmt::One => fixed(value, 1),
            Fmt::Count => fixed(value.round(), 0),
        };
        let shown: f64 = lit.parse().unwrap_or(value);
        self.numbers.push(FactNumber {
            value: shown,
            decimals: lit.split_once('.').map_or(0, |(_, f)| f.len()),
            unit: unit.to_string(),
            aggregate: aggregate.to_string(),
        });
        self.evidence.push(AnswerEvidence {
            asset: asset.to_string(),
            signal: signal.to_string(),
            aggregate: aggregate.to_string(),
            from: crate::text::rfc3339(from_ns),
            to: crate::text::rfc3339(to_ns),
            value: shown,
            unit: unit.to_string(),
        });
        lit
    }
}

/// A signal as answers name it: `bearing_temp_c` → `bearing temp`.
pub fn say_signal(name: &str) -> String {
    display_signal(name).replace('_', " ")
}

/// Unit, normal range and limits of a signal.
#[derive(Clone, Debug, Default)]
pub struct SignalInfo {
    /// Unit symbol.
    pub unit: String,
    /// Normal range.
    pub normal: Option<[f64; 2]>,
    /// Hard limits (min, max).
    pub limits: (Option<f64>, Option<f64>),
}

/// What the profile and the store say about a signal.
pub fn signal_info(a: &AssetContext, signal: &str, history: &dyn History) -> SignalInfo {
    let spec = a.profile.as_ref().and_then(|p| p.signal(signal));
    let unit = spec.map(|s| s.unit.clone()).unwrap_or_else(|| {
        history
            .unit(&SensorId::new(a.asset.as_str(), signal))
            .map(|u| u.to_string())
            .unwrap_or_default()
    });
    SignalInfo {
        unit,
        normal: spec.and_then(|s| s.normal),
        limits: spec.map_or((None, None), |s| (s.limits.min, s.limits.max)),
    }
}

/// How far `v` is out of its normal range: 0 inside, 1 to 2 between normal and limit, 3 and
/// more beyond the limit.
pub fn out_of_range(v: f64, i: &SignalInfo) -> f64 {
    let Some([lo, hi]) = i.normal else {
        return match i.limits {
            (_, Some(max)) if v > max => 3.0,
            (Some(min), _) if v < min => 3.0,
            _ => 0.0,
        };
    };
    if v > hi {
        match i.limits.1 {
            Some(max) if v >= max => 3.0 + (v - max) / (max - hi).abs().max(1e-9),
            Some(max) => 1.0 + (v - hi) / (max - hi).abs().max(1e-9),
            None => 1.0 + (v - hi) / (hi - lo).abs().max(1e-9),
        }
    } else if v < lo {
        match i.limits.0 {
            Some(min) if v <= min => 3.0 + (min - v) / (lo - min).abs().max(1e-9),
            Some(min) => 1.0 + (lo - v) / (lo - min).abs().max(1e-9),
            None => 1.0 + (lo - v) / (hi - lo).abs().max(1e-9),
        }
    } else {
        0.0
    }
}

/// The clause on `v` against the signal's range, recorded as evidence: `within its normal
/// range up to 75.0 °C`, `above its normal range (up to 75.0 °C)`, `above its limit of
/// 90.0 °C`. Empty when the profile gives no range.
pub fn range_clause(
    s: &mut Sentence,
    asset: &str,
    signal: &str,
    at: (i64, i64),
    v: f64,
    i: &SignalInfo,
) -> String {
    let u = &i.unit;
    let sp = if u.is_empty() { "" } else { " " };
    if let (Some(max), true) = (i.limits.1, i.limits.1.is_some_and(|m| v >= m)) {
        let l = s.fact(asset, signal, "limit_high", at, max, u, Fmt::Value);
        return format!("above its limit of {l}{sp}{u}");
    }
    if let (Some(min), true) = (i.limits.0, i.limits.0.is_some_and(|m| v <= m)) {
        let l = s.fact(asset, signal, "limit_low", at, min, u, Fmt::Value);
        return format!("below its limit of {l}{sp}{u}");
    }
    let Some([lo, hi]) = i.normal else {
        return String::new();
    };
    if v > hi {
        let h = s.fact(asset, signal, "normal_high", at, hi, u, Fmt::Value);
        format!("above its normal range (up to {h}{sp}{u})")
    } else if v < lo {
        let l = s.fact(asset, signal, "normal_low", at, lo, u, Fmt::Value);
        format!("below its normal range (from {l}{sp}{u})")
    } else {
        let h = s.fact(asset, signal, "normal_high", at, hi, u, Fmt::Value);
        format!("within its normal range up to {h}{sp}{u}")
    }
}

/// Words every answer may use besides the facts and [`crate::vocab::FUNCTION_WORDS`].
pub const ANSWER_WORDS: &[&str] = &[
    "highest",
    "lowest",
    "maximum",
    "minimum",
    "average",
    "mean",
    "latest",
    "reached",
    "peaked",
    "rose",
    "fell",
    "stayed",
    "flat",
    "per",
    "hour",
    "incident",
    "incidents",
    "open",
    "closed",
    "anomalies",
    "anomaly",
    "attention",
    "needs",
    "confidence",
    "utc",
    "critical",
    "warning",
    "watch",
    "within",
    "above",
    "below",
    "normal",
    "range",
    "limit",
    "now",
    "today",
    "yesterday",
    "shift",
    "last",
    "since",
    "at",
    "its",
    "it",
    "is",
    "was",
    "were",
    "machine",
    "machines",
    "likely",
    "cause",
    "action",
    "recommended",
    "symptoms",
    "still",
    "had",
    "has",
    "no",
    "reads",
    "read",
    "up",
    "to",
    "from",
    "in",
    "of",
    "on",
    "the",
    "and",
];

/// What a model answer must hold to besides its numbers and names.
#[derive(Clone, Debug, Default)]
pub struct Checks {
    /// Cause and action texts: every clause with claims takes them from one of these.
    pub claims: Vec<String>,
    /// Texts the answer must contain.
    pub must_say: Vec<String>,
}

/// Function words an answer may not use unless its facts do: comparisons, causes and
/// judgements the facts do not state.
const NOT_IN_ANSWERS: &[&str] = &[
    "than",
    "other",
    "another",
    "more",
    "most",
    "less",
    "least",
    "because",
    "therefore",
    "thus",
    "hence",
    "due",
    "probably",
    "possibly",
    "possible",
    "probable",
    "suggest",
    "suggests",
    "indicate",
    "indicates",
    "indicating",
    "higher",
    "lower",
    "risk",
    "damage",
    "safe",
    "safely",
    "urgent",
    "urgently",
    "important",
    "immediate",
    "immediately",
    "priority",
    "worsen",
    "worsens",
    "persist",
    "persists",
    "sudden",
    "suddenly",
    "sharp",
    "sharply",
    "strongly",
    "far",
    "beyond",
    "soon",
    "abnormal",
    "unusual",
    "expected",
    "typical",
    "stable",
    "steady",
    "steadily",
    "all",
    "every",
    "none",
    "both",
    "each",
    "many",
    "several",
    "few",
];

/// Assembles the request: at most three sentences, the prefix, the vocabulary.
#[allow(clippy::too_many_arguments)]
pub fn build(
    q: &Question,
    u: Understanding,
    sentences: Vec<Sentence>,
    prefix: String,
    extra_words: Vec<String>,
    verbatim: Vec<String>,
    (assets, signals, known_signals): (Vec<String>, Vec<String>, Vec<String>),
    checks: Checks,
    opts: &AskOptions,
) -> AskRequest {
    let kept: Vec<Sentence> = sentences.into_iter().take(3).collect();
    let text = kept
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let mut evidence = Vec::new();
    let mut numbers = Vec::new();
    let mut lines = Vec::new();
    for s in kept {
        evidence.extend(s.evidence);
        numbers.extend(s.numbers);
        lines.extend(s.lines);
    }
    let mut vocab = Vocabulary::new();
    for w in crate::vocab::FUNCTION_WORDS
        .iter()
        .filter(|w| !NOT_IN_ANSWERS.contains(w))
        .chain(ANSWER_WORDS)
    {
        vocab.allow_word(w);
    }
    for t in lines
        .iter()
        .chain(&extra_words)
        .chain(&verbatim)
        .chain(std::iter::once(&text))
        .chain(&assets)
    {
        vocab.allow_text(t);
        vocab.allow_punctuation_in(t);
    }
    for s in &signals {
        vocab.allow_text(&say_signal(s));
        vocab.allow_word(s);
        vocab.allow_word(display_signal(s));
    }
    let mut sig_names = Vec::new();
    for s in &signals {
        sig_names.push(s.clone());
        sig_names.push(display_signal(s).to_string());
        sig_names.push(say_signal(s));
    }
    AskRequest {
        question: q.clone(),
        understood: u,
        evidence,
        numbers,
        template_text: text,
        fact_lines: lines,
        prefix,
        vocabulary: Arc::new(vocab),
        verbatim,
        assets,
        signals: sig_names,
        known_signals,
        claims: checks.claims,
        must_say: checks.must_say,
        opts: opts.clone(),
    }
}

/// `In the last hour (05:12 to 06:12 UTC)` with a capital letter.
pub fn cap_phrase(r: &TimeRange, opts: &AskOptions) -> String {
    cap(&phrase(r, opts))
}

/// The first letter in upper case.
pub fn cap(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
