//! Streaming anomaly detectors: pure, synchronous, deterministic; time comes from the reading,
//! never from a clock, so a replay gives the same events.
//!
//! Asset profiles (what to watch and with which parameters) live in `millwright-profile`; this
//! crate only reads them.
//!
//! - [`signal`]: the univariate detector set of one signal (baseline, level shift, spike, drift,
//!   rate, flatline, gap, limits) — O(1) per reading, no allocation.
//! - [`regress`]: the online regression baseline of a dependent signal (`depends_on`).
//! - [`monitor`]: all detectors of one asset, including the multivariate correlation groups,
//!   the operating state (stopped / starting / running) and the drivers of dependent signals.
//! - [`backtest`]: CSV in, `timestamp,anomaly_score,flag` out (`millwright detect`).
//! - [`synth`]: deterministic synthetic series for tests and benchmarks.
//!
//! Typical use: `let p = millwright_profile::Profile::load(path)?;`
//! `let mut m = AssetMonitor::new("P-101", &p)?;` then `m.observe(&reading, &mut events)` for
//! each reading and `m.tick(now_ns, &mut events)` on a timer for dropouts. This crate does no
//! I/O except on the streams handed to [`backtest::run`].

pub mod backtest;
mod event;
pub mod monitor;
mod params;
pub mod regress;
mod scores;
pub mod signal;
pub mod synth;

pub use event::Hysteresis;
pub use monitor::{AssetMonitor, CorrelationDetector, DetectError};
pub use signal::{SignalCounters, SignalDetector, SignalParams, SubScores};
