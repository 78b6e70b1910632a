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
}

impl RejectReason {
    /// All reasons, for iteration in reports.
    pub const ALL: [RejectReason; 7] = [
        RejectReason::InvalidUtf8,
        RejectReason::Syntax,
        RejectReason::Schema,
        RejectReason::NonFinite,
        RejectReason::TooLarge,
        RejectReason::UnknownTopic,
        RejectReason::Dropped,
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
        }
    }
    fn index(self) -> usize {
        self as usize
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
    rejected: [AtomicU64; 7],
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
}
