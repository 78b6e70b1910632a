//! Millwright core: the types every other crate speaks (readings, sensors, units, quality,
//! anomalies, the [`Record`]s that leave the node) and the traits that connect the parts
//! (detectors, the language model).
//!
//! This crate does no I/O (reading the wall clock in [`time::now_ns`] aside) and has no async
//! runtime (the byte-capped queues of [`budget`] use tokio's runtime-free `sync` parts); it
//! depends on nothing of ours.

pub mod anomaly;
pub mod ask;
pub mod budget;
pub mod egress;
pub mod history;
pub mod incident;
pub mod llm;
pub mod reading;
pub mod record;
pub mod rng;
pub mod schema;
pub mod secret;
pub mod time;
pub mod validate;

pub use anomaly::{
    Action, Anomaly, AnomalyKind, DataQuality, Detector, Direction, Evidence, ExplanationCard,
    MaintenanceReport, Phase, RankedAction, RelatedSignal, ReportAnomaly, ReportIncident,
    ReportInput, Resolution, SignalPeriodStats, SignalState, SignalStatus, TextSource, Urgency,
};
pub use ask::{Answer, AnswerEvidence, AnswerSource, AskPayload, AskPayloadError, Question};
pub use history::History;
pub use incident::{DiagnosedMode, Incident, IncidentSymptom, Severity};
pub use llm::{
    ChatMessage, Completion, GenParams, LanguageModel, Prompt, Role, SlmError, StopReason,
};
pub use reading::{Batch, Limits, Quality, Reading, SensorId, SensorMeta, Unit};
pub use record::{NodeMetricsPoint, Record, ReportRecord, SignalLimits};
pub use secret::Secret;
pub use validate::{check_name, NameKind, NameProblem, TimeProblem, TimeWindow, ValidationError};
