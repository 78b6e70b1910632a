//! Explanation cards: facts + matching failure modes + a 2–4 sentence explanation written by
//! the language model, checked by the grounding check; an ungrounded answer is retried once
//! with a constrained prompt, then replaced by the rule-based template. Ungrounded text is
//! never put on a card.
//!
//! The model is borrowed per call (`Option<&mut dyn LanguageModel>`), so the caller decides
//! where it runs (a blocking task, the model thread). Counters are atomics, readable from a
//! metrics task while explanations run.

use crate::facts::{encode, Facts};
use crate::ground::{check, GroundingContext};
use crate::text::{duration, rfc3339};
use millwright_core::{
    Anomaly, AnomalyKind, Direction, ExplanationCard, GenParams, LanguageModel, Prompt, TextSource,
};
use millwright_profile::Profile;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of the explanation path (for metrics).
#[derive(Debug, Default)]
pub struct ExplainCounters {
    /// Explanations made.
    pub explanations: AtomicU64,
    /// Grounding checks run on model text.
    pub checks: AtomicU64,
    /// Checks that failed.
    pub check_failures: AtomicU64,
    /// Cards that got the template text (no model, model error, or two failed checks).
    pub fallbacks: AtomicU64,
    /// Model calls that returned an error.
    pub model_errors: AtomicU64,
}

/// A plain snapshot of [`ExplainCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExplainStats {
    /// Explanations made.
    pub explanations: u64,
    /// Grounding checks run.
    pub checks: u64,
    /// Failed checks.
    pub check_failures: u64,
    /// Template fallbacks.
    pub fallbacks: u64,
    /// Model errors.
    pub model_errors: u64,
}

impl ExplainCounters {
    /// Current values.
    pub fn snapshot(&self) -> ExplainStats {
        ExplainStats {
            explanations: self.explanations.load(Ordering::Relaxed),
            checks: self.checks.load(Ordering::Relaxed),
            check_failures: self.check_failures.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            model_errors: self.model_errors.load(Ordering::Relaxed),
        }
    }
}

/// Settings of the explainer.
#[derive(Clone, Debug)]
pub struct ExplainOptions {
    /// Most new tokens per model answer.
    pub max_tokens: usize,
    /// Wall-clock budget per model call in ms (None: no limit).
    pub budget_ms: Option<u64>,
    /// Every asset tag of the site (the text may not name another one).
    pub known_assets: Vec<String>,
}

impl Default for ExplainOptions {
    fn default() -> Self {
        Self {
            max_tokens: 80,
            budget_ms: Some(20_000),
            known_assets: Vec::new(),
        }
    }
}

/// Builds explanation cards.
#[derive(Clone, Debug, Default)]
pub struct Explainer {
    opts: ExplainOptions,
    counters: Arc<ExplainCounters>,
}

const SYSTEM: &str = "You are a maintenance assistant for industrial machines. \
Explain the anomaly in 2 to 4 short sentences: the likely cause and the recommended action. \
Use only the facts given. Copy numbers exactly as written. Never invent numbers, machines or sensors.";

const SYSTEM_STRICT: &str = "You are a maintenance assistant for industrial machines. \
Answer in exactly two sentences. Do not write any numbers. Do not name any machine or sensor.";

impl Explainer {
    /// An explainer with options.
    pub fn new(opts: ExplainOptions) -> Self {
        Self {
            opts,
            counters: Arc::new(ExplainCounters::default()),
        }
    }

    /// The counters (shared; clone the `Arc` for a metrics task).
    pub fn counters(&self) -> &Arc<ExplainCounters> {
        &self.counters
    }

    /// The first prompt for `facts`.
    pub fn prompt(facts: &Facts) -> Prompt {
        let mut user = format!("Facts: {}\n", facts.line);
        if !facts.limits_line.is_empty() {
            user.push_str(&format!("{}\n", facts.limits_line));
        }
        user.push_str(&format!("Detected: {}.\n", facts.kind.describe()));
        user.push_str(&format!(
            "Possible causes: {}.\n",
            facts.causes(3).join("; ")
        ));
        let actions: Vec<String> = facts.actions(3).into_iter().map(|a| a.text).collect();
        user.push_str(&format!("Recommended actions: {}.\n", actions.join("; ")));
        user.push_str("Explain the likely cause and the action.");
        Prompt::new(SYSTEM, user)
    }

    /// The constrained retry prompt: no numbers, no names, a fixed shape.
    pub fn strict_prompt(facts: &Facts) -> Prompt {
        let actions: Vec<String> = facts.actions(2).into_iter().map(|a| a.text).collect();
        let user = format!(
            "A {} was detected. Possible causes: {}.\nRecommended actions: {}.\n\
             In the first sentence name the most likely cause from these causes. \
             In the second sentence, starting with \"Action:\", give one of these actions.",
            facts.kind.describe(),
            facts.causes(2).join("; "),
            actions.join("; ")
        );
        let mut p = Prompt::new(SYSTEM_STRICT, user);
        p.answer_prefix = Some("Likely cause:".into());
        p
    }

    fn context(&self, facts: &Facts, profile: Option<&Profile>) -> GroundingContext {
        let mut ctx = GroundingContext {
            known_assets: self.opts.known_assets.clone(),
            ..GroundingContext::default()
        };
        if let Some(p) = profile {
            for s in &p.signals {
                ctx.known_signals.push(s.name.clone());
                ctx.known_signals
                    .push(crate::text::display_signal(&s.name).to_string());
            }
        }
        for c in &facts.candidates {
            ctx.allow_numbers_in(&c.title);
            ctx.allow_numbers_in(&c.reference);
            for s in &c.causes {
                ctx.allow_numbers_in(s);
            }
            for a in &c.actions {
                ctx.allow_numbers_in(&a.text);
            }
        }
        ctx
    }

    /// Makes the card of an anomaly event; `model` None uses the template directly.
    pub fn explain(
        &self,
        anomaly: &Anomaly,
        profile: Option<&Profile>,
        model: Option<&mut dyn LanguageModel>,
    ) -> ExplanationCard {
        self.explain_facts(anomaly, encode(anomaly, profile), profile, model)
    }

    /// Makes the card from facts already encoded (an incident's: its diagnosis in
    /// `facts.candidates`).
    pub fn explain_facts(
        &self,
        anomaly: &Anomaly,
        facts: Facts,
        profile: Option<&Profile>,
        model: Option<&mut dyn LanguageModel>,
    ) -> ExplanationCard {
        self.counters.explanations.fetch_add(1, Ordering::Relaxed);
        let ctx = self.context(&facts, profile);
        let mut attempts = 0u32;
        let mut model_name = String::from("template");
        let mut text = None;
        if let Some(m) = model {
            model_name = m.name().to_string();
            for strict in [false, true] {
                attempts += 1;
                let (prompt, prefix) = if strict {
                    (Self::strict_prompt(&facts), "Likely cause:")
                } else {
                    (Self::prompt(&facts), "")
                };
                let params = GenParams {
                    max_tokens: self.opts.max_tokens,
                    budget_ms: self.opts.budget_ms,
                    stop: vec!["\n\n".into()],
                    ..GenParams::default()
                };
                match m.generate(&prompt, &params, &mut |_| {}) {
                    Ok(c) => {
                        model_name = c.model.clone();
                        let candidate = tidy(&format!("{prefix}{}", c.text));
                        self.counters.checks.fetch_add(1, Ordering::Relaxed);
                        let g = match form_problem(&candidate) {
                            Some(p) => vec![p],
                            None => check(&candidate, &facts, &ctx).problems,
                        };
                        if g.is_empty() {
                            text = Some(candidate);
                            break;
                        }
                        self.counters.check_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(asset = %facts.asset, signal = %facts.signal, problems = ?g, "ungrounded explanation rejected");
                    }
                    Err(e) => {
                        self.counters.model_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(asset = %facts.asset, error = %e, "model failed; using the template");
                        break;
                    }
                }
            }
        }
        let (text, source) = match text {
            Some(t) => (t, TextSource::Model),
            None => {
                self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                (template(&facts), TextSource::Fallback)
            }
        };
        ExplanationCard {
            id: anomaly.id.clone(),
            asset: facts.asset.clone(),
            signal: facts.signal.clone(),
            unit: facts.unit.clone(),
            kind: anomaly.kind,
            phase: anomaly.phase,
            since: rfc3339(anomaly.since_ns),
            since_ns: anomaly.since_ns,
            ts_ns: anomaly.ts_ns,
            score: (anomaly.peak_score * 1000.0).round() / 1000.0,
            evidence: facts.line.clone(),
            evidence_data: anomaly.evidence.clone(),
            failure_modes: facts.candidates.iter().map(|c| c.id.clone()).collect(),
            likely_causes: facts.causes(3),
            actions: facts.actions(4),
            text,
            model: if source == TextSource::Model {
                model_name
            } else {
                "template".into()
            },
            source,
            attempts,
            confidence: facts.confidence(),
            runner_up: facts.runner_up().map(|c| c.id.clone()),
        }
    }
}

/// Rejects answers that are not an explanation: too short, placeholders or template
/// markup copied from the prompt.
fn form_problem(t: &str) -> Option<String> {
    if t.len() < 20 {
        return Some("answer too short".into());
    }
    let lower = t.to_lowercase();
    for bad in [
        "<",
        ">",
        "{",
        "}",
        "from the list",
        "from these",
        "facts:",
        "possible causes:",
    ] {
        if lower.contains(bad) {
            return Some(format!(
                "answer contains {bad:?} (copied prompt or placeholder)"
            ));
        }
    }
    None
}

/// Collapses whitespace, keeps at most four sentences, and drops an unfinished last sentence
/// when a finished one comes before it.
pub fn tidy(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    let mut sentences = 0;
    let chars: Vec<char> = flat.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        out.push(*c);
        let end = matches!(c, '.' | '!' | '?')
            && chars.get(i + 1).is_none_or(|n| *n == ' ')
            && !chars.get(i.wrapping_sub(1)).is_some_and(|p| {
                p.is_ascii_digit() && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
            });
        if end {
            sentences += 1;
            if sentences == 4 {
                break;
            }
        }
    }
    let out = out.trim();
    if !out.ends_with(['.', '!', '?']) {
        if let Some(i) = out.rfind(['.', '!', '?']) {
            return out[..=i].trim().to_string();
        }
    }
    out.to_string()
}

fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The rule-based explanation: always grounded by construction (it uses only fact numbers).
pub fn template(f: &Facts) -> String {
    let e = &f.evidence;
    let u = if f.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", f.unit)
    };
    let line = &f.line;
    // The numbers are taken from the encoded line so they are written exactly as in the facts.
    let value = line
        .split_whitespace()
        .nth(2)
        .map(str::to_string)
        .unwrap_or_default();
    let what = match f.kind {
        AnomalyKind::Dropout => format!(
            "{} {} sent no data for {}",
            f.asset,
            f.display,
            duration(e.gap_s)
        ),
        AnomalyKind::Flatline => format!(
            "{} {} has not changed for {} (stuck at {value}{u})",
            f.asset,
            f.display,
            duration(e.flat_s)
        ),
        _ => {
            let inside = line
                .split_once('(')
                .map(|(_, r)| r.trim_end_matches(')').to_string())
                .unwrap_or_default();
            let dir = match f.direction {
                Direction::Up => "is high at",
                Direction::Down => "is low at",
                Direction::Flat => "reads",
            };
            format!(
                "{} {} {dir} {value}{u} ({}: {inside})",
                f.asset,
                f.display,
                f.kind.describe(),
            )
        }
    };
    let cause = f.causes(1).into_iter().next().unwrap_or_default();
    let action = f
        .actions(1)
        .into_iter()
        .next()
        .map(|a| a.text)
        .unwrap_or_default();
    let mut t = format!(
        "{what}. Likely cause: {cause}. Recommended action: {}.",
        action
    );
    if let Some(c) = f.candidates.first() {
        t.push_str(&format!(
            " This matches the failure mode \"{}\"{}.",
            c.title,
            crate::diagnose::confidence_note(f)
        ));
    }
    sentence(&t)
}
