//! Counters of one ingest source, cheap to update from the hot path (relaxed atomics) and
//! read by the node's health/metrics endpoint and the demo view.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a message was rejected. Each reason has its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not valid UTF-8 where text was required.
    InvalidUtf8,
    /// Not parseable in the subscription's format (syntax).
    Syntax,
    /// Parseable, but a field has the wrong type or is missing.
    Schema,
    /// A value is NaN, infinite or outside the range of f64.
    NonFinite,
    /// The payload is larger than `max_payload_bytes`.
    TooLarge,
    /// The topic matched no subscription.
    UnknownTopic,
    /// The reading bus was closed (node shutting down).
    Dropped,
    /// Sparkplug B: DATA (or a device birth or death) of an edge node or device whose birth
    /// the node has not seen; answered with a rebirth request.
    NoBirth,
    /// Mapped JSON: a path of the subscription's mapping matched nothing in the payload.
    NoMatch,
    /// An asset or signal name is empty, too long, has a control character, starts with `#`
    /// (or, for an asset, has an MQTT wildcard).
    BadName,
    /// A reading is dated further into the future or the past than the subscription allows.
    BadTime,
}

impl RejectReason {
    /// All reasons, for iteration in reports.
    pub const ALL: [RejectReason; 11] = [
        RejectReason::InvalidUtf8,
        RejectReason::Syntax,
        RejectReason::Schema,
        RejectReason::NonFinite,
        RejectReason::TooLarge,
        RejectReason::UnknownTopic,
        RejectReason::Dropped,
        RejectReason::NoBirth,
        RejectReason::NoMatch,
        RejectReason::BadName,
        RejectReason::BadTime,
    ];
    /// Snake-case name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::Syntax => "syntax",
            RejectReason::Schema => "schema",
            RejectReason::NonFinite => "non_finite",
            RejectReason::TooLarge => "too_large",
            RejectReason::UnknownTopic => "unknown_topic",
            RejectReason::Dropped => "dropped",
            RejectReason::NoBirth => "no_birth",
            RejectReason::NoMatch => "no_match",
            RejectReason::BadName => "bad_name",
            RejectReason::BadTime => "bad_time",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Why one part of an accepted message (a Sparkplug B metric) gave no reading. The rest of the
/// message is used; each reason has its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// A DATA metric's alias (or name) is not in the birth certificate.
    UnknownAlias,
    /// String, text, UUID, bytes, file, date-time, dataset or template: not a number.
    Unsupported,
    /// The value does not match the metric's datatype, or is missing.
    WrongType,
    /// NaN or infinite float.
    NonFinite,
    /// `is_null`: no value at this time (not an error; counted to be visible).
    Null,
    /// The metric's asset or signal name cannot be carried (see [`RejectReason::BadName`]).
    BadName,
    /// The metric is dated beyond the subscription's allowed skew.
    BadTime,
}

impl SkipReason {
    /// All reasons, for iteration in reports.
    pub const ALL: [SkipReason; 7] = [
        SkipReason::UnknownAlias,
        SkipReason::Unsupported,
        SkipReason::WrongType,
        SkipReason::NonFinite,
        SkipReason::Null,
        SkipReason::BadName,
        SkipReason::BadTime,
    ];
    /// Snake-case name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnknownAlias => "unknown_alias",
            SkipReason::Unsupported => "unsupported_type",
            SkipReason::WrongType => "wrong_type",
            SkipReason::NonFinite => "non_finite",
            SkipReason::Null => "null",
            SkipReason::BadName => "bad_name",
            SkipReason::BadTime => "bad_time",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// What decoding one message noticed besides its readings: parts skipped and, for Sparkplug B,
/// protocol events. Returned by the decoder per message and added to [`SourceCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeTally {
    /// Skipped parts per [`SkipReason`] (in `SkipReason::ALL` order).
    pub skipped: [u64; SkipReason::ALL.len()],
    /// Sparkplug B sequence gaps.
    pub sequence_gaps: u64,
    /// Sparkplug B rebirth requests sent.
    pub rebirth_requests: u64,
    /// Sparkplug B NDEATHs ignored because their bdSeq is not the current session's.
    pub stale_deaths: u64,
}

impl DecodeTally {
    /// Counts one skipped part.
    pub fn skip(&mut self, r: SkipReason) {
        self.skipped[r.index()] += 1;
    }
    /// Skipped parts for one reason.
    pub fn skipped(&self, r: SkipReason) -> u64 {
        self.skipped[r.index()]
    }
    /// True when nothing was noticed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Counters for one subscription (or one device).
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Messages received.
    pub messages: AtomicU64,
    /// Readings produced.
    pub readings: AtomicU64,
    /// Payload bytes received.
    pub bytes: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    skipped: [AtomicU64; SkipReason::ALL.len()],
    /// Sparkplug B sequence gaps (and DATA before BIRTH).
    pub sequence_gaps: AtomicU64,
    /// Sparkplug B rebirth requests sent (`NCMD` `Node Control/Rebirth`).
    pub rebirth_requests: AtomicU64,
    /// Sparkplug B NDEATHs ignored because their bdSeq belongs to an older session.
    pub stale_deaths: AtomicU64,
}

impl SourceCounters {
    /// Counts a rejected message.
    pub fn reject(&self, reason: RejectReason) {
        self.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
    }
    /// Rejected messages for one reason.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()].load(Ordering::Relaxed)
    }
    /// Skipped message parts for one reason.
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped[reason.index()].load(Ordering::Relaxed)
    }
    /// Adds what one decoded message noticed.
    pub fn add(&self, t: &DecodeTally) {
        if t.is_empty() {
            return;
        }
        for (c, n) in self.skipped.iter().zip(t.skipped) {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.sequence_gaps
            .fetch_add(t.sequence_gaps, Ordering::Relaxed);
        self.rebirth_requests
            .fetch_add(t.rebirth_requests, Ordering::Relaxed);
        self.stale_deaths
            .fetch_add(t.stale_deaths, Ordering::Relaxed);
    }
    /// Rejected messages, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
    /// Plain snapshot for reporting.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            messages: self.messages.load(Ordering::Relaxed),
            readings: self.readings.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            rejected: RejectReason::ALL
                .iter()
                .map(|r| (r.as_str(), self.rejected(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            skipped: SkipReason::ALL
                .iter()
                .map(|r| (r.as_str(), self.skipped(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// A point-in-time copy of [`SourceCounters`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CounterSnapshot {
    /// Messages received.
    pub messages: u64,
    /// Readings produced.
    pub readings: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Non-zero reject counters by reason.
    pub rejected: Vec<(&'static str, u64)>,
    /// Non-zero skipped-part counters by reason.
    pub skipped: Vec<(&'static str, u64)>,
}
