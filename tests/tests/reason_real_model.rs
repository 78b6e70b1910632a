//! With the real SmolLM2 model (GGUF at env MILLWRIGHT_MODEL, default
//! `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the workspace root): sensor summaries are at
//! most 40 tokens of the real tokenizer, and explanations of the scenario faults either pass
//! the grounding check or fall back to the template — never ungrounded text. Here rather than
//! in `millwright-reason` because the events come from the real detectors (`millwright-detect`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{Anomaly, Phase, Quality, TextSource};
use millwright_detect::synth::{FaultKind, Machine};
use millwright_detect::AssetMonitor;
use millwright_profile::Profile;
use millwright_reason::{check, encode, ExplainOptions, Explainer, GroundingContext};
use std::path::{Path, PathBuf};

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
        s.checks,
        s.check_failures + (6 - s.fallbacks),
        "every model answer was checked"
    );
}
