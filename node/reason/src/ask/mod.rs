//! Answering operator questions from the node's own facts: [`understand`] finds assets,
//! signals, aggregates and a time range in the question (deterministic, no model); [`facts`]
//! reads the evidence of the assets the operator may see through
//! [`millwright_core::History`] and the analytics' incidents and cards; [`answer`] writes the
//! always-correct template answer, the model prompt with its vocabulary, and checks model
//! text (every number an evidence value with its unit, no other asset or signal, only the
//! facts' words) before it may replace the template.
//!
//! [`prepare`] is the one entry: it gives either an [`Answer`] at once (refusal, no data, a
//! question it cannot place) or an [`AskRequest`] to run through the model (or to answer
//! with its template when there is none). No I/O here: no clock, no model, no MQTT.

pub mod answer;
pub mod draft;
pub mod facts;
pub mod incidents;
#[cfg(test)]
mod tests_answers;
#[cfg(test)]
mod tests_understand;
pub mod understand;
pub mod when;
pub mod words;

use millwright_core::llm::Vocabulary;
use millwright_core::{
    Anomaly, Answer, AnswerEvidence, AnswerSource, Completion, ExplanationCard, GenParams, History,
    Incident, Prompt, Question, SlmError,
};
use millwright_profile::Profile;
use std::sync::Arc;

pub use understand::{understand, Aggregate, Kind, Known, Understanding};
pub use when::TimeRange;

/// Settings of the answering path.
#[derive(Clone, Debug, PartialEq)]
pub struct AskOptions {
    /// Shift starts, minutes after local midnight (default 06:00, 14:00, 22:00).
    pub shift_starts_min: Vec<u32>,
    /// Local time's offset from UTC in minutes (default 0: UTC); "today", "since 06:00" and
    /// shifts are local.
    pub utc_offset_min: i32,
    /// Most new tokens per model answer.
    pub max_tokens: usize,
    /// Wall-clock budget per model call in ms.
    pub budget_ms: Option<u64>,
}

impl Default for AskOptions {
    fn default() -> Self {
        Self {
            shift_starts_min: vec![6 * 60, 14 * 60, 22 * 60],
            utc_offset_min: 0,
            max_tokens: 48,
            budget_ms: Some(10_000),
        }
    }
}

/// What the analytics know of one asset the operator may see (never built for others).
#[derive(Clone, Debug)]
pub struct AssetContext {
    /// Asset tag.
    pub asset: String,
    /// Its profile (signals, units, limits, failure modes), when it has one.
    pub profile: Option<Arc<Profile>>,
    /// Its kept incidents (open and recently closed), in their latest phase.
    pub incidents: Vec<Incident>,
    /// Its kept explanation cards, oldest first.
    pub cards: Vec<ExplanationCard>,
    /// Its kept anomaly events (each in its latest phase), oldest first.
    pub events: Vec<Anomaly>,
}

/// A question understood and its facts read: ready for the model, or for the template.
#[derive(Clone, Debug)]
pub struct AskRequest {
    /// The question.
    pub question: Question,
    /// What the question was understood to ask.
    pub understood: Understanding,
    /// The facts the answer rests on.
    pub evidence: Vec<AnswerEvidence>,
    /// The numbers of the evidence as the texts write them.
    pub numbers: Vec<draft::FactNumber>,
    /// The template answer's text (checked by construction).
    pub template_text: String,
    /// The facts as prompt lines.
    pub fact_lines: Vec<String>,
    /// Text the model's answer starts with.
    pub prefix: String,
    /// The words the model may write.
    pub vocabulary: Arc<Vocabulary>,
    /// Texts that may appear verbatim (the time range as written, signal display names).
    pub verbatim: Vec<String>,
    /// Assets the answer is about (every other tag is a problem).
    pub assets: Vec<String>,
    /// Signals the answer is about (full and display names).
    pub signals: Vec<String>,
    /// Every signal name of the assets' profiles (naming one not in the facts is a problem).
    pub known_signals: Vec<String>,
    /// Cause and action texts (why answers): a model clause that claims something takes at
    /// least [`answer::CLAIM_MATCH`] of its claim words from one of them.
    pub claims: Vec<String>,
    /// Texts a model answer must contain (the diagnosed fault).
    pub must_say: Vec<String>,
    /// Generation settings.
    pub opts: AskOptions,
}

impl AskRequest {
    /// The model input: the prompt (facts, the operator's question, the answer prefix) and the
    /// generation settings with the facts' vocabulary (constrained decoding).
    pub fn prompt(&self) -> (Prompt, GenParams) {
        answer::prompt(self)
    }

    /// The always-correct rule-based answer (source `template`, verified).
    pub fn template(&self) -> Answer {
        Answer {
            id: self.question.id.clone(),
            answer: self.template_text.clone(),
            evidence: self.evidence.clone(),
            verified: true,
            source: AnswerSource::Template,
            latency_ms: 0,
            error: None,
            retry_after_s: None,
        }
    }

    /// The model's completion checked (form, vocabulary, numbers with units, assets, signals,
    /// time range); the template when it fails or the model failed.
    pub fn finish(&self, completion: Result<Completion, SlmError>) -> Answer {
        match completion {
            Ok(c) => {
                let text = answer::model_text(&self.prefix, &c.text);
                let problems = answer::problems(self, &text);
                if problems.is_empty() {
                    return Answer {
                        source: AnswerSource::Model,
                        answer: text,
                        ..self.template()
                    };
                }
                tracing::debug!(id = %self.question.id, ?problems, %text, "model answer rejected");
                self.template()
            }
            Err(e) => {
                tracing::debug!(id = %self.question.id, error = %e, "model failed; template answer");
                self.template()
            }
        }
    }
}

/// Understands `q` and reads its facts from `assets` (the operator's visible assets only) and
/// `history`: an answer at once (refusal, no data, which asset?) or a request for the model.
#[allow(clippy::result_large_err)] // the Err is the finished answer, made once per question
pub fn prepare(
    q: &Question,
    assets: &[AssetContext],
    history: &dyn History,
    opts: &AskOptions,
) -> Result<AskRequest, Answer> {
    let visible: Vec<&AssetContext> = assets
        .iter()
        .filter(|a| q.visible_assets.contains(&a.asset))
        .collect();
    let known: Vec<Known> = visible.iter().map(|a| known(a, history)).collect();
    let u = understand(&q.text, q.asset.as_deref(), &known, q.received_ns, opts);
    facts::gather(q, u, &visible, history, opts)
}

/// How understanding sees an asset: its tag, kind and signals (profile and store).
pub fn known(a: &AssetContext, history: &dyn History) -> Known {
    let mut signals: Vec<String> = a
        .profile
        .iter()
        .flat_map(|p| p.signals.iter().map(|s| s.name.clone()))
        .collect();
    for s in history.signals_of(&a.asset) {
        if !signals.iter().any(|n| **n == *s.signal) {
            signals.push(s.signal.to_string());
        }
    }
    Known {
        tag: a.asset.clone(),
        kind: a
            .profile
            .as_ref()
            .map(|p| understand::kind_of(&p.name))
            .unwrap_or_default(),
        signals,
    }
}

/// A refusal (no numbers; verified).
pub fn refusal(id: &str, text: impl Into<String>) -> Answer {
    Answer {
        id: id.to_string(),
        answer: text.into(),
        evidence: Vec::new(),
        verified: true,
        source: AnswerSource::Refusal,
        latency_ms: 0,
        error: None,
        retry_after_s: None,
    }
}
