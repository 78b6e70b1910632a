//! Operator questions over MQTT: the transport and access side (issue 11).
//!
//! - `config.rs`: the `[ask]` section (limits, `[[ask.acl]]` globs) and its validation;
//! - `limits.rs`: the per-operator rate limit;
//! - `service.rs`: the MQTT 5 client task that receives questions on `<root>/<site>/ask` and
//!   `<root>/<site>/ask/<operator>`, checks them (payload, response topic, rate, open
//!   questions, ACL → visible assets), hands them to the analytics thread's input channel,
//!   runs the model part of answering on the model's queue, and publishes every answer on
//!   `<root>/<site>/answers/<id>` and on the MQTT 5 response topic with the correlation data.
//!
//! Understanding questions and writing answers is the analytics' (`millwright-analytics`,
//! `millwright-reason`); nothing here reads the store or decides what an answer says.

pub mod config;
pub mod limits;
pub mod service;

use millwright_analytics::AskRequest;
use millwright_core::ask::{Answer, AnswerSource};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use config::AskSection;
pub use service::{spawn, AskSetup};

/// Why a question got an error answer instead of being answered (a `/metrics` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not JSON or not the `{id, question, asset?}` object.
    NotJson,
    /// No id (nothing can be answered).
    NoId,
    /// An id not usable as a topic level (nothing can be answered).
    BadId,
    /// Empty question.
    EmptyQuestion,
    /// Question over `max_question_chars`.
    TooLong,
    /// An operator name in the topic that is not usable.
    BadOperator,
    /// A response topic the node does not publish on (wildcards, `$…`, the node's own topics).
    BadResponseTopic,
    /// A question with this id is still open.
    DuplicateId,
    /// The operator asked faster than `rate_per_min` / `burst`.
    RateLimited,
    /// `max_open` questions open, analytics behind, or the model's queue full.
    Busy,
    /// No answer within `answer_timeout_s` (analytics did not answer).
    Timeout,
}

impl Reason {
    /// Every reason, in `/metrics` order.
    pub const ALL: [Reason; 11] = [
        Reason::NotJson,
        Reason::NoId,
        Reason::BadId,
        Reason::EmptyQuestion,
        Reason::TooLong,
        Reason::BadOperator,
        Reason::BadResponseTopic,
        Reason::DuplicateId,
        Reason::RateLimited,
        Reason::Busy,
        Reason::Timeout,
    ];

    /// The label value and the error answer's `error` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotJson => "not_json",
            Reason::NoId => "no_id",
            Reason::BadId => "bad_id",
            Reason::EmptyQuestion => "empty_question",
            Reason::TooLong => "too_long",
            Reason::BadOperator => "bad_operator",
            Reason::BadResponseTopic => "bad_response_topic",
            Reason::DuplicateId => "duplicate_id",
            Reason::RateLimited => "rate_limited",
            Reason::Busy => "busy",
            Reason::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Answer sources in `/metrics` order.
pub const SOURCES: [AnswerSource; 4] = [
    AnswerSource::Model,
    AnswerSource::Template,
    AnswerSource::Refusal,
    AnswerSource::Error,
];

/// The label value of an answer source.
pub fn source_str(s: AnswerSource) -> &'static str {
    match s {
        AnswerSource::Model => "model",
        AnswerSource::Template => "template",
        AnswerSource::Refusal => "refusal",
        AnswerSource::Error => "error",
    }
}

/// Counters of the ask service (for `/metrics`).
#[derive(Debug, Default)]
pub struct AskStatus {
    /// Messages received on the ask topics.
    pub questions: AtomicU64,
    /// Questions answered with an error, per [`Reason`].
    rejected: [AtomicU64; Reason::ALL.len()],
    /// Answers published, per source ([`SOURCES`]).
    answers: [AtomicU64; SOURCES.len()],
    /// Questions received and not yet answered.
    pub open: AtomicU64,
    /// Model answers not ready within `answer_timeout_s` (the template answered).
    pub model_timeouts: AtomicU64,
    /// Answers that came after their question had timed out (not published).
    pub late_answers: AtomicU64,
    /// 1 while the ask client is connected to the broker.
    pub connected: AtomicU64,
}

impl AskStatus {
    /// Counts an error answer (or an unanswerable message).
    pub fn reject(&self, r: Reason) {
        if let Some(c) = self.rejected.get(r.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// Questions rejected for `r`.
    pub fn rejected(&self, r: Reason) -> u64 {
        self.rejected
            .get(r.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
    /// Counts a published answer.
    pub fn answered(&self, s: AnswerSource) {
        if let Some(i) = SOURCES.iter().position(|x| *x == s) {
            if let Some(c) = self.answers.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    /// Answers published from source `s`.
    pub fn answers(&self, s: AnswerSource) -> u64 {
        SOURCES
            .iter()
            .position(|x| *x == s)
            .and_then(|i| self.answers.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// What the analytics thread hands to the ask service.
pub enum FromAnalytics {
    /// A question that needs the model (or, without one, its template).
    Ask(Box<AskRequest>),
    /// A finished answer (template, refusal, "no data").
    Answer(Box<Answer>),
}

/// The analytics thread's sender to the ask service (cloneable; never blocks).
#[derive(Clone)]
pub struct AnswerPort {
    tx: tokio::sync::mpsc::Sender<FromAnalytics>,
    status: Arc<AskStatus>,
}

impl AnswerPort {
    /// Hands `m` over; when the service is gone or behind, the question times out (logged).
    pub fn send(&self, m: FromAnalytics) {
        if self.tx.try_send(m).is_err() {
            self.status.late_answers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("ask service behind or stopped: an answer was dropped");
        }
    }
}
