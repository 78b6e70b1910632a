//! Reasoning about anomalies: the compact text encoding of a sensor's behaviour, explanation
//! cards written by the language model and checked by the grounding check (with a rule-based
//! template fallback), and maintenance reports.
//!
//! - [`facts`]: anomaly → [`Facts`] (one compact line, every number with its rounding, the
//!   matching failure modes of the profile).
//! - [`ask`]: operator questions: understanding, facts, template and checked model answers.
//! - [`diagnose`]: failure modes ranked by an incident's symptoms, with confidence.
//! - [`ground`]: the grounding check of generated text against the facts.
//! - [`explain`]: [`Explainer::explain`] → [`millwright_core::ExplanationCard`].
//! - [`report`]: [`report::build_report`] → [`millwright_core::MaintenanceReport`], Markdown, JSON.
//! - [`select`]: [`select::select_input`] reads a report's facts from
//!   [`millwright_core::History`] (signals, statistics, data quality).
//! - [`publish`]: the card's JSON payload for MQTT (line protocol is the sinks' encoder's).
//! - [`text`]: number, duration and time formatting.
//! - [`vocab`]: the vocabulary of an explanation request and the cause/action check.
//!
//! No I/O: the model is passed in through [`millwright_core::LanguageModel`], the report's data
//! through [`millwright_core::ReportInput`] or read through [`millwright_core::History`].

pub mod ask;
pub mod diagnose;
pub mod explain;
pub mod facts;
pub mod ground;
pub mod publish;
pub mod report;
pub mod select;
pub mod text;
pub mod vocab;

pub use ask::{AskOptions, AskRequest, AssetContext};
pub use diagnose::{diagnose, Observed};
pub use explain::{ExplainCounters, ExplainOptions, ExplainStats, Explainer};
pub use facts::{encode, match_failure_modes, Candidate, FactNumber, Facts};
pub use ground::{check, Grounding, GroundingContext};
pub use publish::card_json;
pub use report::{build_report, site_markdown, to_json, to_markdown};
pub use select::{asset_report, select_input};
pub use vocab::{claim_problems, names_mode, vocabulary};
