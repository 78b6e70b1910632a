//! `millwright bench detect`: detector throughput (every univariate detector of a profile, the
//! regression baselines of its dependent signals, then the whole asset monitor, on one core) and
//! explanation latency with the default model; one JSON line.
//!
//! The detection itself lives in `millwright-detect`; profiles are found as `millwright detect`
//! finds them (`cmd::detect::resolve_profile`).

use crate::cli::BenchDetectArgs;
use crate::cmd::detect::resolve_profile;
use millwright_core::{Anomaly, LanguageModel, Phase, Quality};
use millwright_detect::synth::{FaultKind, Machine};
use millwright_detect::{AssetMonitor, SignalDetector, SignalParams};
use millwright_profile::Profile;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Events of a few injected faults on the profile's simulated machine (for explanation timing).
fn sample_events(profile: &Profile) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (k, sig) in profile.signals.iter().enumerate() {
        let mut m = Machine::for_profile("P-101", profile, 100 + k as u64);
        let [lo, hi] = sig.normal.unwrap_or([0.0, 100.0]);
        m.inject(
            &sig.name,
            1800.0,
            FaultKind::Ramp {
                total: 0.3 * (hi - lo),
                over_s: 300.0,
            },
        );
        let Ok(mut mon) = AssetMonitor::new("P-101", profile) else {
            continue;
        };
        let mon_cell = std::cell::RefCell::new(&mut mon);
        let ev = std::cell::RefCell::new(Vec::new());
        m.run(
            0,
            2400.0,
            1.0,
            |i, ts, v| {
                mon_cell
                    .borrow_mut()
                    .observe_at(i, ts, v, Quality::Good, &mut ev.borrow_mut())
            },
            |_| {},
        );
        out.extend(
            ev.into_inner()
                .into_iter()
                .filter(|a| a.phase == Phase::Opened)
                .take(1),
        );
    }
    out
}

fn percentile(v: &mut [f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v.get(i).copied()
}

/// Runs `millwright bench detect`.
pub fn run(args: &BenchDetectArgs) -> anyhow::Result<ExitCode> {
    let profile = resolve_profile(&args.profile, &args.pipelines)?;
    let n_sig = profile.signals.len();
    let per_signal = (args.readings / n_sig as u64).max(1) as usize;
    // Pre-generate the values so the timed loop only detects.
    let mut m = Machine::for_profile("P-101", &profile, 1);
    let mut values: Vec<f64> = Vec::with_capacity(per_signal * n_sig);
    m.run(0, per_signal as f64, 1.0, |_, _, v| values.push(v), |_| {});
    // The univariate detectors alone (no drivers), as before dependent signals existed.
    let mut dets: Vec<SignalDetector> = profile
        .signals
        .iter()
        .map(|s| {
            SignalDetector::new(
                millwright_core::SensorId::new("P-101", s.name.as_str()),
                millwright_core::Unit::new(s.unit.as_str()),
                std::sync::Arc::from(profile.name.as_str()),
                SignalParams::from_spec(s, &profile.defaults),
            )
        })
        .collect();
    let mut events = 0u64;
    let t = Instant::now();
    for (k, chunk) in values.chunks_exact(n_sig).enumerate() {
        let ts = k as i64 * 1_000_000_000;
        for (d, v) in dets.iter_mut().zip(chunk) {
            if d.observe_value(ts, *v, Quality::Good).is_some() {
                events += 1;
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let readings = values.len() as f64;
    std::hint::black_box(&dets);

    // The dependent signals with their regression baselines, fed their drivers' values.
    let deps: Vec<(usize, &millwright_profile::SignalSpec, Vec<usize>)> = profile
        .signals
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.depends_on.is_empty())
        .map(|(i, s)| {
            let d = s
                .depends_on
                .iter()
                .filter_map(|n| profile.signal_index(n))
                .collect();
            (i, s, d)
        })
        .collect();
    let mut reg_dets: Vec<SignalDetector> = deps
        .iter()
        .map(|(_, spec, _)| SignalDetector::from_profile("P-101", &profile, spec))
        .collect();
    let t = Instant::now();
    for (k, chunk) in values.chunks_exact(n_sig).enumerate() {
        let ts = k as i64 * 1_000_000_000;
        for (d, (i, _, drv)) in reg_dets.iter_mut().zip(&deps) {
            let mut x = [f64::NAN; 3];
            for (slot, j) in x.iter_mut().zip(drv) {
                *slot = chunk.get(*j).copied().unwrap_or(f64::NAN);
            }
            let v = chunk.get(*i).copied().unwrap_or(0.0);
            if d.observe_driven(ts, v, Quality::Good, &x).is_some() {
                events += 1;
            }
        }
    }
    let secs_reg = t.elapsed().as_secs_f64();
    let reg_readings = (values.len() / n_sig * deps.len()) as f64;
    std::hint::black_box(&reg_dets);

    // The whole asset monitor (routing, states, drivers, correlation groups).
    let mut mon = AssetMonitor::new("P-101", &profile)?;
    let mut buf = Vec::new();
    let t = Instant::now();
    for (k, chunk) in values.chunks_exact(n_sig).enumerate() {
        let ts = k as i64 * 1_000_000_000;
        for (i, v) in chunk.iter().enumerate() {
            mon.observe_at(i, ts, *v, Quality::Good, &mut buf);
        }
        buf.clear();
    }
    let secs_mon = t.elapsed().as_secs_f64();

    let mut out = serde_json::json!({
        "bench": "detect",
        "profile": profile.name,
        "signals": n_sig,
        "readings": values.len(),
        "readings_per_s": (readings / secs).round(),
        "ns_per_reading": (secs * 1e9 / readings * 100.0).round() / 100.0,
        "readings_per_s_monitor": (readings / secs_mon).round(),
        "dependent_signals": deps.len(),
        "regression_readings_per_s": if reg_readings > 0.0 { (reg_readings / secs_reg).round() } else { 0.0 },
        "regression_ns_per_reading": if reg_readings > 0.0 { (secs_reg * 1e9 / reg_readings * 100.0).round() / 100.0 } else { 0.0 },
        "events": events,
    });

    // Explanation latency with the default model.
    if !args.no_model {
        let path = args
            .model
            .clone()
            .or_else(|| std::env::var_os("MILLWRIGHT_MODEL").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
        let samples = sample_events(&profile);
        match millwright_slm::Engine::load(&path, &millwright_slm::EngineOptions::default()) {
            Ok(mut engine) => {
                let explainer = millwright_reason::Explainer::new(Default::default());
                let mut ms = Vec::new();
                let mut from_model = 0;
                for a in samples.iter().cycle().take(args.explanations) {
                    let t = Instant::now();
                    let card = explainer.explain(
                        a,
                        Some(&profile),
                        Some(&mut engine as &mut dyn LanguageModel),
                    );
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                    if card.source == millwright_core::TextSource::Model {
                        from_model += 1;
                    }
                }
                let stats = explainer.counters().snapshot();
                out["model"] = serde_json::json!(engine.name());
                out["explanations"] = serde_json::json!(ms.len());
                out["explain_ms_p50"] =
                    serde_json::json!(percentile(&mut ms, 0.5).map(|x| x.round()));
                out["explain_ms_p95"] =
                    serde_json::json!(percentile(&mut ms, 0.95).map(|x| x.round()));
                out["explain_from_model"] = serde_json::json!(from_model);
                out["grounding_check_failures"] = serde_json::json!(stats.check_failures);
            }
            Err(e) => {
                out["model_error"] = serde_json::json!(e.to_string());
            }
        }
    }
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
