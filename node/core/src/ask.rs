//! Operator questions and their answers: the wire shapes of `<root>/<site>/ask` and
//! `<root>/<site>/answers/<id>` (JSON), shared by the analytics (which answers), the app (which
//! receives, checks access and publishes) and `millwright ask` (which asks).
//!
//! Only data shapes and their pure validation live here; understanding a question lives in
//! `millwright-reason` (`ask/`), access control and transport in the app.

use serde::{Deserialize, Serialize};

/// Longest question id, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Default longest question text, in characters (the config may lower it).
pub const MAX_QUESTION_CHARS: usize = 500;

/// A question as an operator sends it on `<root>/<site>/ask` (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskPayload {
    /// Chosen by the asker; the answer goes to `answers/<id>`.
    pub id: String,
    /// The question in plain words.
    pub question: String,
    /// Optional asset the question is about ("the pump" then means this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
}

/// Why a question payload cannot be answered (the error answer names it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AskPayloadError {
    /// Not JSON, or not the `{id, question, asset?}` object.
    #[error("not a question: {0}")]
    NotJson(String),
    /// `id` is missing or empty.
    #[error("the question has no id")]
    NoId,
    /// `id` would not make a valid topic level (`/`, `+`, `#`, NUL) or is too long.
    #[error("id {0:?} is not usable in a topic (no '/', '+', '#', at most {MAX_ID_LEN} bytes)")]
    BadId(String),
    /// `question` is empty (after trimming).
    #[error("the question is empty")]
    EmptyQuestion,
    /// `question` is longer than the limit.
    #[error("the question is {len} characters long; the limit is {max}")]
    TooLong {
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Checks an id for use as a topic level.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.contains(['/', '+', '#', '\0'])
        && !id.chars().any(char::is_control)
}

impl AskPayload {
    /// Parses and checks a payload. On error, also returns the id when one could be read (so
    /// the error can be answered to `answers/<id>`).
    pub fn parse(
        bytes: &[u8],
        max_chars: usize,
    ) -> Result<Self, (Option<String>, AskPayloadError)> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| (None, AskPayloadError::NotJson(e.to_string())))?;
        let id = v
            .get("id")
            .and_then(|i| i.as_str())
            .map(str::to_string)
            .filter(|i| valid_id(i));
        let p: AskPayload = serde_json::from_value(v.clone()).map_err(|e| {
            let err = match v.get("id") {
                None => AskPayloadError::NoId,
                Some(_) => AskPayloadError::NotJson(e.to_string()),
            };
            (id.clone(), err)
        })?;
        if p.id.is_empty() {
            return Err((None, AskPayloadError::NoId));
        }
        if !valid_id(&p.id) {
            return Err((None, AskPayloadError::BadId(p.id)));
        }
        let len = p.question.trim().chars().count();
        if len == 0 {
            return Err((Some(p.id), AskPayloadError::EmptyQuestion));
        }
        if len > max_chars {
            return Err((
                Some(p.id),
                AskPayloadError::TooLong {
                    len,
                    max: max_chars,
                },
            ));
        }
        Ok(p)
    }
}

/// A checked question handed to the analytics: who asks, and what they may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The asker's id (answers go to `answers/<id>`).
    pub id: String,
    /// The question text (trimmed, within the length limit).
    pub text: String,
    /// The asset the asker named in the payload, if any.
    pub asset: Option<String>,
    /// The operator (MQTT user name, or the client id / `anonymous`), for logs and limits.
    pub operator: String,
    /// The assets this operator may ask about (already resolved from the ACL's globs).
    /// Facts of other assets are never read, and refusals never say whether they exist.
    pub visible_assets: Vec<String>,
    /// When the question arrived (ns since the Unix epoch), the "now" of "last hour".
    pub received_ns: i64,
}

/// One fact an answer rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnswerEvidence {
    /// Asset tag.
    pub asset: String,
    /// Signal name (empty for asset-level facts such as an anomaly count).
    pub signal: String,
    /// `latest`, `max`, `min`, `mean`, `trend_per_h`, `anomalies`, `limit_high`, …
    pub aggregate: String,
    /// Start of the time range (RFC 3339, UTC).
    pub from: String,
    /// End of the time range (RFC 3339, UTC).
    pub to: String,
    /// The value.
    pub value: f64,
    /// Its unit (`°C`, `mm/s`, `count`; empty for none).
    pub unit: String,
}

/// Where an answer's text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    /// The language model, constrained and checked.
    Model,
    /// The rule-based template (always correct).
    Template,
    /// A refusal (no access, injection, out of scope).
    Refusal,
    /// An error answer (malformed question, busy).
    Error,
}

/// The answer published on `answers/<id>` (and the MQTT 5 response topic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The question's id.
    pub id: String,
    /// The answer text.
    pub answer: String,
    /// The facts it rests on.
    pub evidence: Vec<AnswerEvidence>,
    /// Every number in the text was checked against the evidence.
    pub verified: bool,
    /// Model, template, refusal or error.
    pub source: AnswerSource,
    /// From receipt to publication, in milliseconds.
    pub latency_ms: u64,
    /// For error answers: what was wrong (`busy`, `bad_request`, `rate_limited`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `busy` and `rate_limited`: when to ask again, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

impl Answer {
    /// An error answer (`error` is the machine-readable kind, `text` says it in words).
    pub fn error(id: impl Into<String>, kind: &str, text: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            answer: text.into(),
            evidence: Vec::new(),
            verified: true,
            source: AnswerSource::Error,
            latency_ms: 0,
            error: Some(kind.to_string()),
            retry_after_s: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_question_and_names_what_is_wrong() {
        let p = AskPayload::parse(br#"{"id":"q1","question":"Why is P-101 hot?"}"#, 500).unwrap();
        assert_eq!(p.id, "q1");
        assert_eq!(p.asset, None);
        assert!(matches!(
            AskPayload::parse(b"nope", 500),
            Err((None, AskPayloadError::NotJson(_)))
        ));
        assert_eq!(
            AskPayload::parse(br#"{"question":"x"}"#, 500)
                .unwrap_err()
                .1,
            AskPayloadError::NoId
        );
        assert!(matches!(
            AskPayload::parse(br#"{"id":"a/b","question":"x"}"#, 500),
            Err((None, AskPayloadError::BadId(_)))
        ));
        assert!(matches!(
            AskPayload::parse(br#"{"id":"a+","question":"x"}"#, 500),
            Err((None, AskPayloadError::BadId(_)))
        ));
        assert_eq!(
            AskPayload::parse(br#"{"id":"q2","question":"  "}"#, 500).unwrap_err(),
            (Some("q2".into()), AskPayloadError::EmptyQuestion)
        );
        assert_eq!(
            AskPayload::parse(br#"{"id":"q3","question":"abcdef"}"#, 5).unwrap_err(),
            (
                Some("q3".into()),
                AskPayloadError::TooLong { len: 6, max: 5 }
            )
        );
        // An id is still found when another field is wrong, so the error can be answered.
        assert_eq!(
            AskPayload::parse(br#"{"id":"q4","question":7}"#, 500)
                .unwrap_err()
                .0
                .as_deref(),
            Some("q4")
        );
    }

    #[test]
    fn answers_serialize_with_snake_case_source() {
        let a = Answer::error("q1", "busy", "The node is busy; ask again in 5 s.");
        let s = serde_json::to_string(&a).unwrap();
        assert!(s.contains(r#""source":"error""#), "{s}");
        assert!(s.contains(r#""error":"busy""#), "{s}");
        assert!(!s.contains("retry_after_s"), "{s}");
    }
}
