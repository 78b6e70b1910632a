//! With the real SmolLM2 model (GGUF at env MILLWRIGHT_MODEL, default
//! `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the workspace root): sensor summaries are at
//! most 40 tokens of the real tokenizer, and explanations of the scenario faults either pass
//! the grounding check or fall back to the template — never ungrounded text; and over 60
//! explanations built from every failure mode of the three profiles, the model's text never
//! uses a word outside its request's vocabulary, always names the diagnosed failure mode, and
//! most published explanations come from the model. Here rather than in `millwright-reason`
//! because the events come from the real detectors (`millwright-detect`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{
    Anomaly, AnomalyKind, Direction, Evidence, Phase, Quality, RelatedSignal, SensorId, TextSource,
    Unit,
};
use millwright_detect::synth::{FaultKind, Machine};
use millwright_detect::AssetMonitor;
use millwright_profile::FailureMode;
use millwright_profile::Profile;
use millwright_reason::{check, encode, vocabulary, ExplainOptions, Explainer, GroundingContext};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const T0: i64 = 1_767_225_600_000_000_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_path() -> PathBuf {
    std::env::var_os("MILLWRIGHT_MODEL")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

fn profile(name: &str) -> Profile {
    Profile::load(&root().join("pipelines").join(format!("{name}.toml"))).unwrap()
}

fn first_event(p: &Profile, asset: &str, faults: &[(&str, FaultKind)], seconds: f64) -> Anomaly {
    let mut m = Machine::for_profile(asset, p, 7);
    for (s, k) in faults {
        m.inject(s, 3600.0, *k);
    }
    let mut mon = AssetMonitor::new(asset, p).unwrap();
    let mon = std::cell::RefCell::new(&mut mon);
    let ev = std::cell::RefCell::new(Vec::new());
    m.run(
        T0,
        3600.0 + seconds,
        1.0,
        |i, ts, v| {
            mon.borrow_mut()
                .observe_at(i, ts, v, Quality::Good, &mut ev.borrow_mut())
        },
        |ts| {
            mon.borrow_mut()
                .tick(ts + 500_000_000, &mut ev.borrow_mut())
        },
    );
    ev.into_inner()
        .into_iter()
        .find(|a| a.phase == Phase::Opened)
        .expect("fault detected")
}

/// The six scenario faults of the issue, each with its profile.
fn scenarios() -> Vec<(&'static str, Profile, Anomaly)> {
    let pump = profile("centrifugal-pump");
    let motor = profile("electric-motor");
    vec![
        (
            "bearing wear",
            pump.clone(),
            first_event(
                &pump,
                "P-101",
                &[
                    (
                        "vibration_rms_mm_s",
                        FaultKind::Ramp {
                            total: 1.2,
                            over_s: 7200.0,
                        },
                    ),
                    (
                        "bearing_temp_c",
                        FaultKind::Ramp {
                            total: 8.0,
                            over_s: 7200.0,
                        },
                    ),
                ],
                3600.0,
            ),
        ),
        (
            "cavitation",
            pump.clone(),
            first_event(
                &pump,
                "P-101",
                &[
                    (
                        "suction_pressure_bar",
                        FaultKind::Ramp {
                            total: -0.5,
                            over_s: 180.0,
                        },
                    ),
                    ("vibration_rms_mm_s", FaultKind::Noise { sd: 0.15 }),
                ],
                900.0,
            ),
        ),
        (
            "overheating",
            motor.clone(),
            first_event(
                &motor,
                "M-201",
                &[(
                    "winding_temp_c",
                    FaultKind::Ramp {
                        total: 80.0,
                        over_s: 2400.0,
                    },
                )],
                2400.0,
            ),
        ),
        (
            "stuck sensor",
            pump.clone(),
            first_event(
                &pump,
                "P-101",
                &[("bearing_temp_c", FaultKind::Freeze)],
                900.0,
            ),
        ),
        (
            "dropout",
            pump.clone(),
            first_event(
                &pump,
                "P-101",
                &[("flow_m3_h", FaultKind::Gap { len_s: 120.0 })],
                300.0,
            ),
        ),
        (
            "leak",
            pump.clone(),
            first_event(
                &pump,
                "P-101",
                &[
                    (
                        "discharge_pressure_bar",
                        FaultKind::Ramp {
                            total: -0.8,
                            over_s: 120.0,
                        },
                    ),
                    (
                        "flow_m3_h",
                        FaultKind::Ramp {
                            total: 6.0,
                            over_s: 120.0,
                        },
                    ),
                ],
                900.0,
            ),
        ),
    ]
}

#[test]
fn sensor_summaries_are_at_most_40_tokens_of_the_real_tokenizer() {
    let f = millwright_slm::gguf::GgufFile::open(&model_path()).expect("model file");
    let tok = millwright_slm::Tokenizer::from_gguf(&f.content).expect("tokenizer");
    let mut counts = Vec::new();
    for (name, p, a) in scenarios() {
        let f = encode(&a, Some(&p));
        let n = tok.encode(&f.summary).len();
        let n_line = tok.encode(&f.line).len();
        println!(
            "{n:>3} tokens ({n_line:>3} with asset)  {name:<13} {}",
            f.line
        );
        counts.push(n);
        assert!(n <= 40, "{name}: {n} tokens: {}", f.summary);
        assert!(n_line <= n + 6, "the asset tag costs at most 6 tokens");
    }
    let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    println!(
        "sensor summary: mean {mean:.1} tokens, max {}",
        counts.iter().max().unwrap()
    );
}

#[test]
fn real_model_explanations_are_grounded_or_fall_back() {
    let mut engine =
        millwright_slm::Engine::load(&model_path(), &millwright_slm::EngineOptions::default())
            .expect("model loads");
    let ex = Explainer::new(ExplainOptions {
        known_assets: vec!["P-101".into(), "M-201".into(), "C-301".into()],
        ..ExplainOptions::default()
    });
    for (name, p, a) in scenarios() {
        let card = ex.explain(&a, Some(&p), Some(&mut engine));
        println!(
            "{name:<13} [{}] attempts {} :: {}",
            card.source.as_str(),
            card.attempts,
            card.text
        );
        assert!(card.attempts >= 1, "the model was asked");
        let facts = encode(&a, Some(&p));
        if card.source == TextSource::Model {
            let mut ctx = GroundingContext {
                known_assets: vec!["P-101".into(), "M-201".into(), "C-301".into()],
                ..GroundingContext::default()
            };
            for s in &p.signals {
                ctx.known_signals.push(s.name.clone());
            }
            for c in &facts.candidates {
                ctx.allow_numbers_in(&c.title);
                ctx.allow_numbers_in(&c.reference);
                c.causes.iter().for_each(|x| ctx.allow_numbers_in(x));
                c.actions.iter().for_each(|x| ctx.allow_numbers_in(&x.text));
            }
            let g = check(&card.text, &facts, &ctx);
            assert!(
                g.ok(),
                "{name}: published ungrounded model text {:?}: {}",
                g.problems,
                card.text
            );
            assert!(card.model.contains("SmolLM2") || !card.model.is_empty());
        } else {
            assert_eq!(card.model, "template");
        }
        assert!(!card.text.is_empty());
    }
    let s = ex.counters().snapshot();
    println!("{s:?}");
    assert_eq!(s.explanations, 6);
    assert_eq!(
        s.checks - s.check_failures,
        s.claim_checks,
        "every grounded answer had its causes and actions checked"
    );
    assert_eq!(
        s.claim_checks - s.claim_mismatches,
        6 - s.fallbacks,
        "every published model answer passed every check"
    );
    assert_eq!(
        s.vocab_violations, 0,
        "the mask keeps the text in the vocabulary"
    );
}

/// An anomaly event as the detectors report it for failure mode `m`: its first symptom's
/// signal deviating in its direction with one of its kinds, the other symptoms as related
/// signals; `v` varies the kind, the values and the durations.
fn anomaly_for(p: &Profile, asset: &str, m: &FailureMode, v: usize) -> Anomaly {
    use AnomalyKind::*;
    let s0 = &m.symptoms[0];
    let spec = p.signals.iter().find(|s| s.name == s0.signal).unwrap();
    let kind = if s0.kinds.is_empty() {
        [LevelShift, Drift, Limit][v % 3]
    } else {
        s0.kinds[v % s0.kinds.len()]
    };
    let [lo, hi] = spec.normal.unwrap_or([0.0, 100.0]);
    let span = hi - lo;
    let vf = v as f64;
    let baseline = lo + span * (0.4 + 0.07 * vf);
    let spread = span * (0.015 + 0.004 * vf);
    let sign = if s0.direction == Direction::Down {
        -1.0
    } else {
        1.0
    };
    let mut e = Evidence {
        value: baseline + sign * (6.0 + 3.0 * vf) * spread,
        baseline,
        spread,
        z: sign * (6.0 + 3.0 * vf),
        limits: spec.limits,
        normal: spec.normal,
        learned: true,
        ..Evidence::default()
    };
    match kind {
        Flatline => {
            e.value = baseline;
            e.z = 0.0;
            e.flat_s = 600.0 + 420.0 * vf;
        }
        Dropout => {
            e.value = baseline;
            e.z = 0.0;
            e.gap_s = 45.0 + 100.0 * vf;
        }
        Limit => {
            let beyond = span * 0.04 * (1.0 + vf);
            e.value = if sign > 0.0 {
                spec.limits.max.map_or(e.value, |x| x + beyond)
            } else {
                spec.limits.min.map_or(e.value, |x| x - beyond)
            };
            e.z = (e.value - baseline) / spread;
        }
        Drift | RateOfChange => {
            e.rate_per_min = sign * spread * (0.4 + 0.5 * vf);
            e.trend_s = 600.0 + 300.0 * vf;
        }
        _ => {}
    }
    let related = m.symptoms[1..]
        .iter()
        .filter(|s| s.direction != Direction::Flat)
        .map(|s| RelatedSignal {
            signal: s.signal.as_str().into(),
            z: 3.0 + vf,
            rate_per_min: 0.0,
            direction: s.direction,
        })
        .collect();
    let ts = T0 + 3_600_000_000_000 * (v as i64 + 1);
    Anomaly {
        id: format!("{asset}-{}-{v}", m.id),
        sensor: SensorId::new(asset, spec.name.as_str()),
        unit: Unit::new(spec.unit.as_str()),
        kind,
        kinds: vec![kind],
        phase: Phase::Opened,
        since_ns: ts - 900_000_000_000,
        ts_ns: ts,
        score: 0.9,
        peak_score: 0.9,
        evidence: e,
        related,
        profile: Arc::from(p.name.as_str()),
        resolution: None,
    }
}

/// The floor of the model's share of published explanations (the rest are the template).
const MODEL_SHARE_FLOOR: f64 = 0.5;

#[test]
fn model_text_stays_in_the_vocabulary_and_names_the_diagnosed_mode() {
    let mut engine =
        millwright_slm::Engine::load(&model_path(), &millwright_slm::EngineOptions::default())
            .expect("model loads");
    let assets = vec!["P-101".to_string(), "M-201".into(), "C-301".into()];
    let ex = Explainer::new(ExplainOptions {
        known_assets: assets.clone(),
        max_tokens: 60,
        ..ExplainOptions::default()
    });
    let mut n = 0;
    let mut from_model = 0;
    let mut modes = 0;
    for (name, asset) in [
        ("centrifugal-pump", "P-101"),
        ("electric-motor", "M-201"),
        ("air-compressor", "C-301"),
    ] {
        let p = profile(name);
        for m in &p.failure_modes {
            modes += 1;
            for v in 0..3 {
                let a = anomaly_for(&p, asset, m, v);
                let facts = encode(&a, Some(&p));
                let vocab = vocabulary(&facts, Some(&p));
                let card = ex.explain(&a, Some(&p), Some(&mut engine));
                n += 1;
                let top = facts.candidates.first().expect("a failure mode matches");
                println!(
                    "{asset} {:<14} v{v} -> {:<14} [{}] {}",
                    m.id,
                    top.id,
                    card.source.as_str(),
                    card.text
                );
                assert!(
                    card.text.to_lowercase().contains(&top.title.to_lowercase()),
                    "{}: the text does not name the diagnosed mode {:?}: {}",
                    a.id,
                    top.title,
                    card.text
                );
                if card.source == TextSource::Model {
                    from_model += 1;
                    let outside = vocab.violations(&card.text);
                    assert!(
                        outside.is_empty(),
                        "{}: words outside the vocabulary {outside:?}: {}",
                        a.id,
                        card.text
                    );
                    for w in ["vehicle", "battery", "engine", "combustion"] {
                        assert!(!card.text.to_lowercase().contains(w), "{w}: {}", card.text);
                    }
                }
            }
        }
    }
    let s = ex.counters().snapshot();
    let share = from_model as f64 / n as f64;
    println!(
        "{n} explanations over {modes} failure modes: {from_model} from the model ({:.0} %), \
         {} from the template; {s:?}",
        share * 100.0,
        n - from_model
    );
    assert!(n >= 50);
    assert_eq!(s.explanations, n as u64);
    assert_eq!(s.from_model(), from_model as u64);
    assert_eq!(
        s.vocab_violations, 0,
        "the mask keeps every answer in the vocabulary"
    );
    assert!(
        share >= MODEL_SHARE_FLOOR,
        "only {:.0} % of the published explanations came from the model",
        share * 100.0
    );
}
