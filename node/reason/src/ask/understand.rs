//! Understanding a question (deterministic, no model): which assets, signals, aggregate and
//! time range it asks about, and what kind of question it is.

use super::{AskOptions, AssetContext};

/// What kind of question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A value or aggregate of signals.
    Value,
    /// Why an asset behaves as it does (its incident and diagnosis).
    Why,
    /// How an asset is doing.
    Status,
    /// Which assets need attention (ranked).
    Attention,
    /// How many anomalies.
    Count,
    /// Nothing the node can answer.
    Unknown,
}

/// The aggregate asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// Latest value.
    Latest,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Mean.
    Mean,
    /// Change per hour over the range.
    Trend,
}

/// A time range, `from_ns <= t < to_ns`, with how it is said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// Start (ns since the epoch).
    pub from_ns: i64,
    /// End (ns since the epoch).
    pub to_ns: i64,
    /// In words, e.g. `the last hour`.
    pub label: String,
    /// Whether the question said it (otherwise the default of its kind).
    pub stated: bool,
}

/// What a question was understood to ask.
#[derive(Clone, Debug, PartialEq)]
pub struct Understanding {
    /// Its kind.
    pub kind: Kind,
    /// Visible assets it is about (tags).
    pub assets: Vec<String>,
    /// An asset it names that is not visible (or does not exist), as written.
    pub unknown_asset: Option<String>,
    /// Signals it names (full names, of any of its assets).
    pub signals: Vec<String>,
    /// The aggregate.
    pub aggregate: Aggregate,
    /// The time range.
    pub range: TimeRange,
    /// It contains a prompt-injection attempt or asks for configuration or secrets.
    pub injection: bool,
}

/// Understands `text` (see the module doc). `hint` is the payload's asset.
pub fn understand(
    text: &str,
    hint: Option<&str>,
    visible: &[&AssetContext],
    received_ns: i64,
    opts: &AskOptions,
) -> Understanding {
    let _ = (text, opts);
    Understanding {
        kind: Kind::Unknown,
        assets: hint
            .filter(|h| visible.iter().any(|a| a.asset == *h))
            .map(|h| vec![h.to_string()])
            .unwrap_or_default(),
        unknown_asset: None,
        signals: Vec::new(),
        aggregate: Aggregate::Latest,
        range: TimeRange {
            from_ns: received_ns.saturating_sub(3_600_000_000_000),
            to_ns: received_ns,
            label: "the last hour".into(),
            stated: false,
        },
        injection: false,
    }
}
