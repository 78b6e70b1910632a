//! Asset profiles (`pipelines/*.toml`): what a kind of machine measures (signals with units,
//! normal ranges and hard limits), how each signal is watched (detector parameters, correlated
//! groups) and how its faults show (failure modes: symptoms → likely causes → actions).
//!
//! The vocabulary both `millwright-detect` (which runs the detectors a profile asks for) and
//! `millwright-reason` (which explains events with the profile's failure modes) speak; it
//! depends on `millwright-core` only and does no detection and no explaining.
//!
//! - `types`: the profile data and its serde shape (strict: `deny_unknown_fields`).
//! - `parse`: TOML text or a file in, a validated [`Profile`] or a [`ProfileError`] out; the
//!   only I/O is [`Profile::load`].
//! - `validate`: [`Profile::validate`], pure, every problem with its path.
//!
//! Typical use: `let p = Profile::load(path)?;` then hand `&p` to a monitor or an explainer.

mod parse;
mod types;
mod validate;

pub use parse::ProfileError;
pub use types::{
    ActionSpec, CorrelationSpec, DetectDefaults, DetectSpec, DriftSpec, FailureMode, FlatlineSpec,
    GapSpec, LevelSpec, Profile, RateSpec, SignalSpec, StatesSpec, Symptom,
};
