//! The words an explanation may use, and the check that its cause and action sentences say
//! what the diagnosed failure modes say.
//!
//! [`vocabulary`] builds a request's [`Vocabulary`] from the facts: the asset tag, the signal
//! names (full, display and their parts) and the words of their profile descriptions, the
//! values and units as written in the fact line and the limits line, the anomaly kind, and the
//! titles, causes and actions of the diagnosed failure modes (the top candidate and the
//! runner-up), plus [`FUNCTION_WORDS`]: a fixed list of function words, plain verbs and
//! measurement words with no machinery in it. The engine masks every token outside it, so
//! "vehicle", "battery" or "engine" cannot be written unless the facts contain them.
//!
//! [`claim_problems`] is the post-generation check: every clause (split at `.`, `;`, `,`, `!`,
//! `?`) that says more than the facts — it has *claim words*, i.e. words that are neither
//! function words nor fact words (asset, signals, values, units, kind, the modes' titles) —
//! must take at least [`CLAIM_MATCH`] of its claim words from one single cause or one single
//! action of a diagnosed mode. Mixing words of different causes or actions ("a blocked
//! bearing", "driven by the supply voltage") fails.
//! Pure functions, no I/O.

use crate::facts::{Candidate, Facts};
use millwright_core::llm::{split_words, Vocabulary};
use millwright_profile::Profile;
use std::collections::BTreeSet;

/// Share of a clause's claim words that must come from one cause or one action of a diagnosed
/// mode.
pub const CLAIM_MATCH: f64 = 0.75;

/// Function words, plain verbs and measurement words every explanation may use (no nouns of
/// machinery: those come only from the facts).
#[rustfmt::skip]
pub const FUNCTION_WORDS: &[&str] = &[
    // articles, pronouns, determiners
    "a", "an", "the", "this", "that", "these", "those", "it", "its", "they", "their", "them",
    "there", "here", "which", "what", "who", "whose", "we", "our", "you", "your", "some", "any",
    "all", "both", "each", "every", "other", "another", "such", "same", "no", "not", "none",
    "one", "two", "three", "first", "second", "next", "last", "more", "most", "less", "least",
    "much", "many", "few", "several", "only", "also", "very", "too", "so", "as", "than", "then",
    // prepositions and conjunctions
    "of", "on", "in", "at", "to", "for", "from", "with", "without", "by", "into", "onto", "over",
    "under", "above", "below", "between", "within", "about", "around", "near", "after",
    "before", "during", "until", "since", "while", "through", "across", "against", "per",
    "and", "or", "but", "nor", "because", "if", "when", "whether", "although", "though",
    "unless", "due", "so", "therefore", "thus", "hence", "however", "instead", "either",
    "neither",
    // be / have / do / modals
    "is", "are", "was", "were", "be", "been", "being", "has", "have", "had", "having", "do",
    "does", "did", "done", "can", "could", "may", "might", "must", "should", "will", "would",
    "shall",
    // judgement
    "likely", "unlikely", "probably", "possibly", "possible", "probable", "most", "suggest",
    "suggests", "indicate", "indicates", "indicating", "show", "shows", "showing", "point",
    "points", "mean", "means", "confirm", "confirms", "consistent", "typical", "sign", "signs",
    "cause", "causes", "caused", "causing", "reason", "result", "results", "resulting", "lead",
    "leads", "leading", "match", "matches", "matching", "diagnosis", "diagnosed", "failure",
    "mode", "fault", "problem", "issue", "anomaly", "detected", "observed", "seen", "found",
    // plain verbs of maintenance
    "check", "checks", "checking", "inspect", "inspection", "replace", "replacement", "repair",
    "clean", "reduce", "verify", "measure", "measurement", "monitor", "monitoring", "watch",
    "plan", "schedule", "stop", "restart", "keep", "ensure", "confirm", "look", "test", "adjust",
    "recommend", "recommended", "recommendation", "action", "actions", "act", "need", "needs",
    "needed", "required", "require", "requires", "do", "make", "take", "avoid", "prevent",
    "continue", "continues", "persist", "persists", "worsen", "worsens", "fix", "fixed",
    "call", "report", "record", "review", "compare", "treat", "follow", "use",
    // measurement and change
    "value", "values", "reading", "readings", "signal", "signals", "data", "level", "levels",
    "trend", "rate", "change", "changed", "changes", "changing", "rise", "rises", "rising",
    "rose", "risen", "fall", "falls", "falling", "fell", "fallen", "increase", "increased",
    "increasing", "decrease", "decreased", "decreasing", "drop", "dropped", "higher", "lower",
    "high", "low", "up", "down", "normal", "abnormal", "usual", "unusual", "expected", "steady",
    "steadily", "stable", "gradually", "gradual", "slowly", "slow", "quickly", "fast", "sudden",
    "suddenly", "sharp", "sharply", "slightly", "strongly", "far", "beyond", "outside",
    "inside", "range", "limit", "limits", "alarm", "warning", "threshold", "baseline", "sigma",
    "deviation", "standard", "spike", "drift", "shift", "stuck", "flat", "missing", "lost",
    "time", "minute", "minutes", "hour", "hours", "second", "seconds", "day", "days", "now",
    "soon", "immediately", "today", "again", "already", "still", "yet", "once", "further",
    // urgency and outcome
    "urgent", "urgently", "important", "immediate", "priority", "risk", "damage", "safe",
    "safely", "before", "early", "possible", "operator", "maintenance", "team", "site",
    "please", "note",
];

/// The diagnosed modes: the top candidate and the runner-up.
pub fn diagnosed(facts: &Facts) -> &[Candidate] {
    let n = facts.candidates.len().min(2);
    facts.candidates.get(..n).unwrap_or(&[])
}

/// Words that state facts: asset, signals and their parts, the fact and limits lines, the
/// kind, the unit, the diagnosed modes' titles, the signals' profile descriptions.
fn fact_texts(facts: &Facts, profile: Option<&Profile>) -> Vec<String> {
    let mut t = vec![
        facts.asset.clone(),
        facts.line.clone(),
        facts.limits_line.clone(),
        facts.kind.describe().to_string(),
        facts.kind.as_str().to_string(),
        facts.unit.clone(),
    ];
    for s in &facts.signals {
        t.push(s.clone());
        t.push(s.replace('_', " "));
    }
    for c in diagnosed(facts) {
        t.push(c.title.clone());
    }
    if let Some(p) = profile {
        for s in &p.signals {
            if facts.signals.contains(&s.name) {
                // words only: the description's numbers are not facts of this anomaly
                let words: Vec<&str> = split_words(&s.description)
                    .into_iter()
                    .filter(|w| !w.as_bytes()[0].is_ascii_digit())
                    .collect();
                t.push(words.join(" "));
            }
        }
    }
    t
}

/// Causes and actions of the diagnosed modes.
fn claim_texts(facts: &Facts) -> Vec<String> {
    let mut t = Vec::new();
    for c in diagnosed(facts) {
        t.extend(c.causes.iter().cloned());
        t.extend(c.actions.iter().map(|a| a.text.clone()));
    }
    t
}

/// The vocabulary of one explanation request (see the module doc).
pub fn vocabulary(facts: &Facts, profile: Option<&Profile>) -> Vocabulary {
    let mut v = Vocabulary::new();
    for w in FUNCTION_WORDS {
        v.allow_word(w);
    }
    for t in fact_texts(facts, profile)
        .iter()
        .chain(claim_texts(facts).iter())
    {
        v.allow_text(t);
    }
    for t in [&facts.line, &facts.limits_line, &facts.asset] {
        v.allow_punctuation_in(t);
    }
    for c in diagnosed(facts) {
        v.allow_punctuation_in(&c.title);
        c.causes.iter().for_each(|x| v.allow_punctuation_in(x));
        c.actions
            .iter()
            .for_each(|x| v.allow_punctuation_in(&x.text));
    }
    v
}

fn lower_set(text: &str) -> BTreeSet<String> {
    split_words(text)
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The clauses of `text`: split at `. ; , ! ?` (a `.` or `,` between digits does not split).
pub fn clauses(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..b.len() {
        let end = match b[i] {
            b';' | b'!' | b'?' => true,
            b'.' | b',' => {
                !(i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            }
            _ => false,
        };
        if end {
            if let Some(s) = text.get(start..i) {
                if !s.trim().is_empty() {
                    out.push(s.trim());
                }
            }
            start = i + 1;
        }
    }
    if let Some(s) = text.get(start..) {
        if !s.trim().is_empty() {
            out.push(s.trim());
        }
    }
    out
}

/// The clauses of `text` that claim more than the facts without matching a cause or action of
/// the diagnosed modes (see the module doc), each with its best match share.
pub fn claim_problems(text: &str, facts: &Facts, profile: Option<&Profile>) -> Vec<String> {
    let mut plain: BTreeSet<String> = FUNCTION_WORDS.iter().map(|w| w.to_string()).collect();
    for t in fact_texts(facts, profile) {
        plain.extend(lower_set(&t));
    }
    let content = |t: &str| -> BTreeSet<String> {
        lower_set(t)
            .into_iter()
            .filter(|w| !plain.contains(w) && !w.as_bytes()[0].is_ascii_digit())
            .collect()
    };
    let items: Vec<BTreeSet<String>> = claim_texts(facts).iter().map(|t| content(t)).collect();
    let mut problems = Vec::new();
    for cl in clauses(text) {
        let claim = content(cl);
        if claim.is_empty() {
            continue;
        }
        let best = items
            .iter()
            .map(|i| claim.intersection(i).count())
            .max()
            .unwrap_or(0);
        let share = best as f64 / claim.len() as f64;
        if share < CLAIM_MATCH {
            problems.push(format!(
                "\"{cl}\" matches no cause or action of the diagnosed modes ({:.0} % of {:?})",
                share * 100.0,
                claim
            ));
        }
    }
    problems
}

/// Whether `text` names the diagnosed failure mode (its title), when there is one.
pub fn names_mode(text: &str, facts: &Facts) -> bool {
    match facts.candidates.first() {
        Some(c) => text.to_lowercase().contains(&c.title.to_lowercase()),
        None => true,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::facts::encode;
    use millwright_core::{Anomaly, AnomalyKind, Evidence, Phase, RelatedSignal, SensorId, Unit};
    use std::sync::Arc;

    fn profile(name: &str) -> Profile {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../pipelines")
            .join(format!("{name}.toml"));
        Profile::load(&p).unwrap()
    }

    /// A learned level shift of `asset`'s `signal` (62 against 45±1.5).
    pub(crate) fn anomaly(asset: &str, signal: &str, unit: &str, related: &[&str]) -> Anomaly {
        Anomaly {
            id: "a".into(),
            sensor: SensorId::new(asset, signal),
            unit: Unit::new(unit),
            kind: AnomalyKind::LevelShift,
            kinds: vec![AnomalyKind::LevelShift],
            phase: Phase::Opened,
            since_ns: 0,
            ts_ns: 600_000_000_000,
            score: 0.9,
            peak_score: 0.9,
            evidence: Evidence {
                value: 62.0,
                baseline: 45.0,
                spread: 1.5,
                z: 11.0,
                learned: true,
                ..Evidence::default()
            },
            related: related
                .iter()
                .map(|s| RelatedSignal {
                    signal: (*s).into(),
                    z: 4.0,
                    rate_per_min: 0.0,
                    direction: millwright_core::Direction::Up,
                })
                .collect(),
            profile: Arc::from("x"),
            resolution: None,
        }
    }

    #[test]
    fn vocabulary_holds_the_facts_and_no_invented_machinery() {
        let p = profile("centrifugal-pump");
        let f = encode(
            &anomaly("P-101", "vibration_rms_mm_s", "mm/s", &["bearing_temp_c"]),
            Some(&p),
        );
        let v = vocabulary(&f, Some(&p));
        println!("{} words", v.len());
        assert!(v.len() < 600, "a few hundred words, not a dictionary");
        for w in [
            "P",
            "101",
            "vibration_rms",
            "62.0",
            "bearing",
            "raceways",
            "regrease",
            "the",
        ] {
            assert!(v.allows_word(w), "{w}");
        }
        for w in [
            "vehicle",
            "battery",
            "engine",
            "voltage",
            "electric",
            "combustion",
            "car",
        ] {
            assert!(!v.allows_word(w), "{w} must not be possible");
        }
        // "voltage" is possible where the facts contain it: the motor's overload actions
        let m = profile("electric-motor");
        let f = encode(&anomaly("M-201", "motor_current_a", "A", &[]), Some(&m));
        let titles: Vec<_> = diagnosed(&f).iter().map(|c| c.title.as_str()).collect();
        let v = vocabulary(&f, Some(&m));
        let says_voltage = diagnosed(&f).iter().any(|c| {
            c.actions.iter().any(|a| a.text.contains("voltage"))
                || c.causes.iter().any(|x| x.contains("voltage"))
        });
        assert_eq!(v.allows_word("voltage"), says_voltage, "{titles:?}");
    }

    #[test]
    fn claims_must_match_one_cause_or_action_of_the_diagnosed_modes() {
        let p = profile("centrifugal-pump");
        let f = encode(
            &anomaly("P-101", "vibration_rms_mm_s", "mm/s", &["bearing_temp_c"]),
            Some(&p),
        );
        assert_eq!(f.candidates[0].id, "bearing_wear");
        let ok = "Rolling-element bearing wear on P-101: vibration_rms is high at 62.0 mm/s. \
                  The likely cause is worn bearing raceways. Regrease the bearing.";
        assert!(
            claim_problems(ok, &f, Some(&p)).is_empty(),
            "{:?}",
            claim_problems(ok, &f, Some(&p))
        );
        assert!(names_mode(ok, &f));
        // words of two different causes mixed into a new claim
        let mixed = "The likely cause is pitted grease contamination of the raceways.";
        assert!(!claim_problems(mixed, &f, Some(&p)).is_empty());
        assert!(!names_mode(mixed, &f));
        assert_eq!(
            clauses("a 4.50 b, c; d. e"),
            vec!["a 4.50 b", "c", "d", "e"]
        );
    }
}
