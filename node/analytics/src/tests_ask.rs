//! Operator questions through the machine: readings of simulated machines (a pump with a
//! bearing fault, a healthy motor) go through the real detectors into incidents and cards and
//! into a real `millwright_store::Store`; then "why", attention, count and refusal questions
//! are answered from them. `model_answers_*` runs the real SmolLM2 GGUF (it fails when the
//! model file is missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use millwright_core::ask::AnswerSource;
use millwright_core::{Question, SensorId, Unit};
use millwright_detect::synth::{FaultKind, Machine};
use millwright_reason::ask::answer::problems;
use millwright_store::{Store, StoreConfig};
use std::path::{Path, PathBuf};

const S: i64 = 1_000_000_000;
/// 2026-12-01T07:00:00Z: the run ends at 08:00, inside the 06:00 shift.
const T0: i64 = 1_796_108_400 * S;
const RUN_S: f64 = 3600.0;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn profile(name: &str) -> Profile {
    Profile::load(&root().join("pipelines").join(format!("{name}.toml"))).unwrap()
}

/// Readings of `m` (one per signal per second), in time order.
fn readings(m: &mut Machine) -> Vec<Reading> {
    let names: Vec<(String, String)> = m
        .signals
        .iter()
        .map(|s| (s.name.clone(), s.unit.clone()))
        .collect();
    let asset = m.asset.clone();
    let mut out = Vec::new();
    m.run(
        T0,
        RUN_S,
        1.0,
        |i, ts, v| {
            let (n, u) = &names[i];
            out.push(Reading::new(
                SensorId::new(asset.as_str(), n.as_str()),
                ts,
                v,
                Unit::new(u.as_str()),
            ));
        },
        |_| {},
    );
    out
}

/// The site after an hour: P-101's vibration and bearing temperature rise from minute 40
/// (bearing wear), M-201 stays healthy. Returns the machine and the store.
fn site() -> (Analytics, Store) {
    let (pump, motor) = (profile("centrifugal-pump"), profile("electric-motor"));
    let mut a = Analytics::new(
        Options::new("s"),
        vec![
            ("P-101".into(), pump.clone()),
            ("M-201".into(), motor.clone()),
        ],
    );
    let mut p = Machine::for_profile("P-101", &pump, 11);
    p.inject(
        "vibration_rms_mm_s",
        2400.0,
        FaultKind::Ramp {
            total: 5.0,
            over_s: 600.0,
        },
    );
    p.inject(
        "bearing_temp_c",
        2400.0,
        FaultKind::Ramp {
            total: 25.0,
            over_s: 600.0,
        },
    );
    let mut m = Machine::for_profile("M-201", &motor, 12);
    let mut all = readings(&mut p);
    all.extend(readings(&mut m));
    all.sort_by_key(|r| r.ts_ns);
    let mut store = Store::new(StoreConfig::default());
    let mut out = Vec::new();
    for batch in all.chunk_by(|x, y| x.ts_ns == y.ts_ns) {
        store.insert(batch);
        a.on_batch(batch, &store, &mut out);
        a.on_tick(batch[0].ts_ns, &store, &mut out);
        while !out.is_empty() {
            for o in std::mem::take(&mut out) {
                if let Output::Explain(req) = o {
                    let card = req.explain(a.explainer(), None);
                    a.on_explained(card, &mut out);
                }
            }
        }
    }
    (a, store)
}

fn question(text: &str, visible: &[&str]) -> Question {
    Question {
        id: "q".into(),
        text: text.into(),
        asset: None,
        operator: "op".into(),
        visible_assets: visible.iter().map(|s| s.to_string()).collect(),
        received_ns: T0 + RUN_S as i64 * S,
    }
}

enum Got {
    Ask(Box<AskRequest>),
    Answer(millwright_core::Answer),
}

fn ask(a: &mut Analytics, h: &Store, text: &str, visible: &[&str]) -> Got {
    let mut out = Vec::new();
    a.on_question(question(text, visible), h, &mut out);
    assert_eq!(out.len(), 1, "{text}");
    match out.pop() {
        Some(Output::Ask(r)) => Got::Ask(r),
        Some(Output::Answer(x)) => Got::Answer(x),
        _ => panic!("{text}: neither Ask nor Answer"),
    }
}

fn request(a: &mut Analytics, h: &Store, text: &str, visible: &[&str]) -> Box<AskRequest> {
    match ask(a, h, text, visible) {
        Got::Ask(r) => {
            let t = r.template();
            assert!(
                problems(&r, &t.answer).is_empty(),
                "{text}: {:?} {}",
                problems(&r, &t.answer),
                t.answer
            );
            println!("{text}\n  -> {}", t.answer);
            r
        }
        Got::Answer(x) => panic!("{text}: answered at once: {}", x.answer),
    }
}

#[test]
fn questions_are_answered_from_real_incidents() {
    let (mut a, h) = site();
    let inc = a
        .incidents()
        .find(|i| i.asset == "P-101" && i.phase != millwright_core::Phase::Closed)
        .cloned()
        .expect("the bearing fault opened an incident");
    let top = inc.top().expect("diagnosed").title.clone();
    assert!(
        a.incidents().all(|i| i.asset != "M-201"),
        "the motor is healthy"
    );

    // Why: the open incident, its diagnosis and its card's cause and action.
    let r = request(&mut a, &h, "Why is P-101 vibrating?", &["P-101", "M-201"]);
    let t = r.template().answer;
    assert!(t.starts_with("P-101 has had an open"), "{t}");
    assert!(
        t.contains(&format!("The likely fault is {top} (confidence")),
        "{t}"
    );
    let card = a
        .cards()
        .iter()
        .rev()
        .find(|c| c.id == inc.id)
        .expect("card");
    assert!(
        t.contains(card.likely_causes[0].trim_end_matches('.')),
        "{t}"
    );
    let vib = h
        .last(&SensorId::new("P-101", "vibration_rms_mm_s"))
        .unwrap()
        .value;
    assert!(
        t.contains(&format!(
            "vibration rms is {} mm/s",
            millwright_reason::text::num(vib)
        )),
        "{t}"
    );
    assert!(r.evidence.iter().any(|e| e.aggregate == "confidence"));
    assert!(
        r.prefix.contains(&top),
        "the model is told the fault: {}",
        r.prefix
    );
    let cause = card.likely_causes[0].trim_end_matches('.').to_string();
    let ok = r.finish(completion(&format!(" {cause}.")));
    assert_eq!(ok.source, AnswerSource::Model, "{}", ok.answer);
    let words: Vec<&str> = cause.split(' ').collect();
    let mixed = format!(" {} envelope {}.", words[0], words[words.len() - 1]);
    let bad = r.finish(completion(&mixed));
    assert_eq!(
        bad.source,
        AnswerSource::Template,
        "a cause mixed with an action: {mixed}"
    );

    // Attention: P-101 first with its incident; the motor among the calm ones.
    let r = request(
        &mut a,
        &h,
        "Which machines need attention this shift?",
        &["P-101", "M-201"],
    );
    let t = r.template().answer;
    assert!(
        t.starts_with(
            "In this shift (06:00 to 08:00 UTC), P-101 needs attention first: it has an open"
        ),
        "{t}"
    );
    assert!(t.contains(&top), "{t}");
    assert!(
        t.contains("M-201 has no open incidents or anomalies"),
        "{t}"
    );

    // Count: the events the machine kept in the last hour.
    let n = a
        .events()
        .iter()
        .filter(|e| *e.sensor.asset == *"P-101")
        .count();
    assert!(n > 0);
    let r = request(
        &mut a,
        &h,
        "how many anomalies did P-101 have in the last hour?",
        &["P-101"],
    );
    let e = r
        .evidence
        .iter()
        .find(|e| e.aggregate == "anomalies")
        .unwrap();
    assert_eq!(e.value, n as f64);
    assert!(
        r.template()
            .answer
            .contains(&format!("P-101 had {n} anomal")),
        "{}",
        r.template().answer
    );

    // Status of the healthy motor.
    let r = request(&mut a, &h, "how is motor 201 doing?", &["P-101", "M-201"]);
    assert!(
        r.template()
            .answer
            .starts_with("M-201 has no open incidents or anomalies"),
        "{}",
        r.template().answer
    );

    // The motor's operator may not see the pump: worded as if it did not exist.
    let (x, y) = match (
        ask(&mut a, &h, "Why is P-101 vibrating?", &["M-201"]),
        ask(&mut a, &h, "Why is Q-999 vibrating?", &["M-201"]),
    ) {
        (Got::Answer(x), Got::Answer(y)) => (x, y),
        _ => panic!("refusals are answered at once"),
    };
    assert_eq!(x.source, AnswerSource::Refusal);
    assert_eq!(
        x.answer.replace("P-101", "X"),
        y.answer.replace("Q-999", "X")
    );
    // …and an attention question of that operator does not mention the pump at all.
    let r = request(&mut a, &h, "which machines need attention?", &["M-201"]);
    assert!(
        !r.template().answer.contains("P-101") && r.evidence.iter().all(|e| e.asset == "M-201")
    );
}

fn completion(text: &str) -> Result<millwright_core::Completion, millwright_core::SlmError> {
    Ok(millwright_core::Completion {
        text: text.into(),
        prompt_tokens: 0,
        cached_tokens: 0,
        generated_tokens: 0,
        stop_reason: millwright_core::StopReason::Eos,
        ttft_ms: 0.0,
        total_ms: 0.0,
        model: "test".into(),
    })
}

fn model_path() -> PathBuf {
    std::env::var_os("MILLWRIGHT_MODEL")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

/// Numbers written in `text`, outside `HH:MM` times and asset tags.
fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')'))
        .map(|w| w.trim_end_matches(['.', '!', '?']))
        .filter(|w| !w.contains(':') && !w.contains('-'))
        .filter_map(|w| w.parse::<f64>().ok())
        .collect()
}

#[test]
fn model_answers_are_checked_and_some_are_published() {
    let (mut a, h) = site();
    let mut engine =
        millwright_slm::Engine::load(&model_path(), &millwright_slm::EngineOptions::default())
            .expect("model loads (models/SmolLM2-135M-Instruct.Q4_1.gguf)");
    let vis = ["P-101", "M-201"];
    let questions = [
        "What was the max bearing temperature on P-101 in the last hour?",
        "What is the vibration of P-101 now?",
        "average flow of P-101 in the last 30 minutes",
        "lowest discharge pressure on pump 101 in the last hour",
        "What is the motor current of M-201?",
        "max winding temperature of M-201 in the last hour",
        "Is the bearing temperature of P-101 rising in the last 15 minutes?",
        "What is the speed of M-201?",
        "how many anomalies did P-101 have in the last hour?",
        "Why is P-101 vibrating?",
        "How is M-201?",
        "Which machines need attention this shift?",
    ];
    let (mut model, mut template) = (0, 0);
    for q in questions {
        let r = match ask(&mut a, &h, q, &vis) {
            Got::Ask(r) => r,
            Got::Answer(x) => panic!("{q}: answered at once: {}", x.answer),
        };
        let (prompt, params) = r.prompt();
        let c =
            millwright_core::LanguageModel::generate(&mut engine, &prompt, &params, &mut |_| {});
        let raw = c.as_ref().map(|c| c.text.clone()).unwrap_or_default();
        let ans = r.finish(c);
        assert!(ans.verified);
        match ans.source {
            AnswerSource::Model => {
                model += 1;
                for n in numbers(&ans.answer) {
                    assert!(
                        ans.evidence
                            .iter()
                            .any(|e| (e.value.abs() - n).abs() < 0.051),
                        "{q}: {n} of {:?} is not an evidence value: {:?}",
                        ans.answer,
                        ans.evidence
                    );
                }
                assert!(problems(&r, &ans.answer).is_empty());
            }
            _ => {
                template += 1;
                assert_eq!(ans.answer, r.template().answer);
            }
        }
        println!(
            "{q}\n  model: {raw:?}\n  -> [{:?}] {}",
            ans.source, ans.answer
        );
    }
    println!("model {model} / template {template} of {}", questions.len());
    assert!(model >= 1, "no model answer passed the check");
}
