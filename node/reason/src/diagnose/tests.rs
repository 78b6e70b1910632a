//! Diagnosis over the real profiles of `pipelines/`: every failure mode is found from its own
//! symptoms, the simulator's faults as they show, and the actions of the top mode come first.

use super::*;
use crate::facts::encode;
use millwright_core::{Evidence, Phase, SensorId, Unit, Urgency};

fn profiles() -> Vec<Profile> {
    [
        include_str!("../../../../pipelines/centrifugal-pump.toml"),
        include_str!("../../../../pipelines/electric-motor.toml"),
        include_str!("../../../../pipelines/air-compressor.toml"),
    ]
    .iter()
    .map(|t| Profile::from_toml_str(t, "pipelines").unwrap())
    .collect()
}

fn profile(name: &str) -> Profile {
    profiles().into_iter().find(|p| p.name == name).unwrap()
}

fn obs(signal: &str, direction: Direction, kinds: &[AnomalyKind]) -> Observed {
    Observed {
        signal: signal.into(),
        direction,
        kinds: kinds.to_vec(),
    }
}

fn ids(c: &[Candidate]) -> Vec<&str> {
    c.iter().map(|c| c.id.as_str()).collect()
}

/// The symptoms of a mode as observed: each with its first listed kind (a level shift when
/// any kind fits; a flatline for stuck/absent data). A sensor fault shows on one signal.
fn symptoms_of(m: &FailureMode) -> Vec<Observed> {
    let mut out = Vec::new();
    for s in &m.symptoms {
        let kind = s.kinds.first().copied().unwrap_or(AnomalyKind::LevelShift);
        out.push(obs(&s.signal, s.direction, &[kind]));
        if s.direction == Direction::Flat {
            break;
        }
    }
    out
}

#[test]
fn every_failure_mode_of_every_profile_is_diagnosed_from_its_own_symptoms() {
    let mut checked = 0;
    for p in profiles() {
        for m in &p.failure_modes {
            let observed = symptoms_of(m);
            // Every other signal of the asset is learned and normal.
            let quiet: Vec<String> = p
                .signals
                .iter()
                .map(|s| s.name.clone())
                .filter(|s| !observed.iter().any(|o| o.signal == *s))
                .collect();
            for quiet in [&quiet[..], &[][..]] {
                let c = diagnose(&observed, quiet, &p);
                assert_eq!(
                    c.first().map(|c| c.id.as_str()),
                    Some(m.id.as_str()),
                    "{} {} (quiet {quiet:?}): {:?}",
                    p.name,
                    m.id,
                    c.iter().map(|c| (&c.id, c.score)).collect::<Vec<_>>()
                );
                let top = &c[0];
                assert!(top.score > 0.0 && top.score <= 1.0);
                assert!(top.confidence > 0.0 && top.confidence <= top.score);
                if let Some(r) = close_runner_up(&c) {
                    assert!(r.score >= CLOSE_RUNNER_UP * top.score && r.id != top.id);
                    assert!(r.confidence < top.confidence);
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 18, "{checked} modes");
}

#[test]
fn the_simulators_faults_are_diagnosed_as_their_own_modes() {
    use AnomalyKind::*;
    use Direction::*;
    // How each injected fault shows (firmware/sim/src/physics.rs); stuck sensors and dropouts
    // hit the temperature sensor and loop channel 0.
    let cases: Vec<(&str, &str, Vec<Observed>)> = vec![
        (
            "centrifugal-pump",
            "bearing_wear",
            vec![
                obs("vibration_rms_mm_s", Up, &[Drift, LevelShift]),
                obs("bearing_temp_c", Up, &[Drift]),
            ],
        ),
        (
            "centrifugal-pump",
            "cavitation",
            vec![
                obs("suction_pressure_bar", Down, &[LevelShift]),
                obs("flow_m3_h", Down, &[LevelShift]),
                obs("vibration_rms_mm_s", Up, &[LevelShift, Spike]),
                obs("motor_current_a", Down, &[LevelShift]),
            ],
        ),
        (
            "centrifugal-pump",
            "overheating",
            vec![obs("bearing_temp_c", Up, &[Drift, RateOfChange])],
        ),
        (
            "centrifugal-pump",
            "leak",
            vec![
                obs("discharge_pressure_bar", Down, &[LevelShift]),
                obs("flow_m3_h", Up, &[Drift]),
            ],
        ),
        (
            "centrifugal-pump",
            "sensor_fault",
            vec![
                obs("bearing_temp_c", Flat, &[Flatline]),
                obs("discharge_pressure_bar", Flat, &[Flatline]),
            ],
        ),
        (
            "centrifugal-pump",
            "sensor_fault",
            vec![obs("discharge_pressure_bar", Flat, &[Dropout])],
        ),
        (
            "electric-motor",
            "bearing_wear",
            vec![
                obs("vibration_rms_mm_s", Up, &[Drift]),
                obs("bearing_temp_c", Up, &[Drift]),
            ],
        ),
        (
            "electric-motor",
            "overheating",
            vec![
                obs("winding_temp_c", Up, &[Drift]),
                obs("bearing_temp_c", Up, &[LevelShift]),
            ],
        ),
        (
            "electric-motor",
            "sensor_fault",
            vec![
                obs("motor_current_a", Flat, &[Flatline]),
                obs("bearing_temp_c", Flat, &[Flatline]),
            ],
        ),
        (
            "electric-motor",
            "sensor_fault",
            vec![obs("motor_current_a", Flat, &[Dropout])],
        ),
        (
            "air-compressor",
            "bearing_wear",
            vec![obs("vibration_rms_mm_s", Up, &[Drift])],
        ),
        (
            "air-compressor",
            "overheating",
            vec![obs("discharge_temp_c", Up, &[Drift, LevelShift])],
        ),
        (
            "air-compressor",
            "leak",
            vec![
                obs("discharge_pressure_bar", Down, &[LevelShift, Limit]),
                obs("motor_current_a", Up, &[LevelShift]),
            ],
        ),
        (
            "air-compressor",
            "sensor_fault",
            vec![obs("discharge_pressure_bar", Flat, &[Flatline])],
        ),
    ];
    for (name, want, observed) in cases {
        let p = profile(name);
        let quiet: Vec<String> = p
            .signals
            .iter()
            .map(|s| s.name.clone())
            .filter(|s| !observed.iter().any(|o| o.signal == *s))
            .collect();
        let c = diagnose(&observed, &quiet, &p);
        assert_eq!(
            c.first().map(|c| c.id.as_str()),
            Some(want),
            "{name}: {:?}",
            ids(&c)
        );
    }
}

#[test]
fn a_mode_whose_symptoms_stay_quiet_loses_to_one_that_explains_them() {
    let p = profile("centrifugal-pump");
    let vib = [obs(
        "vibration_rms_mm_s",
        Direction::Up,
        &[AnomalyKind::LevelShift],
    )];
    // Vibration alone: with the current quiet misalignment loses its second symptom, with the
    // bearing temperature quiet bearing wear does; the one whose other signal moved wins.
    let with_current = [
        vib[0].clone(),
        obs("motor_current_a", Direction::Up, &[AnomalyKind::LevelShift]),
    ];
    let c = diagnose(&with_current, &["bearing_temp_c".into()], &p);
    assert_eq!(ids(&c)[0], "misalignment", "{:?}", ids(&c));
    let with_temp = [
        vib[0].clone(),
        obs("bearing_temp_c", Direction::Up, &[AnomalyKind::Drift]),
    ];
    let c = diagnose(&with_temp, &["motor_current_a".into()], &p);
    assert_eq!(ids(&c)[0], "bearing_wear", "{:?}", ids(&c));
    // A quiet signal counts against a mode more than an unknown one.
    let quiet = diagnose(&vib, &["bearing_temp_c".into()], &p);
    let unknown = diagnose(&vib, &[], &p);
    let score = |c: &[Candidate], id: &str| c.iter().find(|c| c.id == id).unwrap().score;
    assert!(score(&quiet, "bearing_wear") < score(&unknown, "bearing_wear"));
    // Nothing the profile knows: no candidate.
    assert!(diagnose(&[obs("speed_rpm", Direction::Up, &[])], &[], &p).is_empty());
}

fn bearing_event() -> Anomaly {
    Anomaly {
        id: "P-101/vibration_rms_mm_s@1".into(),
        sensor: SensorId::new("P-101", "vibration_rms_mm_s"),
        unit: Unit::new("mm/s"),
        kind: AnomalyKind::Drift,
        kinds: vec![AnomalyKind::Drift],
        phase: Phase::Opened,
        since_ns: 1,
        ts_ns: 60_000_000_000,
        score: 0.8,
        peak_score: 0.8,
        evidence: Evidence {
            value: 4.2,
            baseline: 2.1,
            spread: 0.2,
            z: 8.0,
            rate_per_min: 0.05,
            learned: true,
            ..Default::default()
        },
        related: vec![millwright_core::RelatedSignal {
            signal: "bearing_temp_c".into(),
            z: 3.0,
            rate_per_min: 0.1,
            direction: Direction::Up,
        }],
        profile: "centrifugal-pump".into(),
        resolution: None,
    }
}

#[test]
fn the_top_modes_actions_come_first_ordered_by_urgency_and_then_one_of_the_runner_up() {
    let p = profile("centrifugal-pump");
    let f = encode(&bearing_event(), Some(&p));
    assert_eq!(
        f.candidates[0].id,
        "bearing_wear",
        "{:?}",
        ids(&f.candidates)
    );
    let own: Vec<&str> = f.candidates[0]
        .actions
        .iter()
        .map(|a| a.text.as_str())
        .collect();
    let acts = f.actions(10);
    // Before the fix the cavitation action (immediate) came first.
    assert!(own.contains(&acts[0].text.as_str()), "{acts:?}");
    let n_own = acts
        .iter()
        .take_while(|a| own.contains(&a.text.as_str()))
        .count();
    assert_eq!(
        n_own,
        own.len(),
        "every own action before any other: {acts:?}"
    );
    assert!(
        acts.len() <= own.len() + 1,
        "at most one of the runner-up: {acts:?}"
    );
    let urgencies: Vec<Urgency> = acts[..n_own].iter().map(|a| a.urgency).collect();
    let mut sorted = urgencies.clone();
    sorted.sort();
    assert_eq!(urgencies, sorted);
    if acts.len() > own.len() {
        let r = f
            .runner_up()
            .expect("a runner-up action only with a close runner-up");
        assert!(r.actions.iter().any(|a| a.text == acts[own.len()].text));
    }
    // Causes: the top mode's first.
    assert_eq!(f.causes(3)[0], f.candidates[0].causes[0]);
    // The template states the confidence, and it is a fact number.
    let t = crate::explain::template(&f);
    let conf = format!("{:.1}", f.confidence());
    assert!(t.contains(&format!("confidence {conf}")), "{t}");
    assert!(f.numbers.iter().any(|n| format!("{:.1}", n.value) == conf));
}
