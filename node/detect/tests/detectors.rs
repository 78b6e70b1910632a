//! Unit and property tests of every detector on signals with known change points: step, ramp,
//! spike, flatline, gap, limits, rate, correlation, and noise only (no alarm).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::rng::SplitMix64;
use millwright_core::{Anomaly, AnomalyKind, Limits, Phase, Quality, Reading, SensorId, Unit};
use millwright_detect::synth::{series, Shape};
use millwright_detect::{AssetMonitor, Hysteresis, SignalDetector, SignalParams};
use millwright_profile::Profile;
use std::sync::Arc;

const SEC: i64 = 1_000_000_000;

fn params() -> SignalParams {
    SignalParams {
        learn_n: 300,
        baseline_n: 3600,
        fast_n: 5,
        trend_n: 60,
        noise_floor: 1e-6,
        shift_z: Some(5.0),
        spike_z: Some(9.0),
        drift: Some((1.5, 30.0)),
        max_rate_per_min: None,
        flatline: Some((300.0, 0.0)),
        gap_s: Some(15.0),
        limits: None,
        normal: None,
        hysteresis: Hysteresis {
            open_score: 0.5,
            close_score: 0.3,
            close_after_ns: close_after_s_ns(),
        },
        ..SignalParams::default()
    }
}

#[allow(non_snake_case)]
const fn close_after_s_ns() -> i64 {
    120 * SEC
}

fn detector(p: SignalParams) -> SignalDetector {
    SignalDetector::new(
        SensorId::new("P-1", "x"),
        Unit::new("u"),
        Arc::from("test"),
        p,
    )
}

/// Feeds values at 1 Hz; returns (index, event) pairs.
fn run(det: &mut SignalDetector, values: &[f64]) -> Vec<(usize, Anomaly)> {
    let mut ev = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if let Some(a) = det.observe_value(i as i64 * SEC, *v, Quality::Good) {
            ev.push((i, a));
        }
        let s = millwright_core::Detector::score(det);
        assert!((0.0..=1.0).contains(&s), "score {s} out of range at {i}");
    }
    ev
}

fn opened(ev: &[(usize, Anomaly)]) -> Vec<(usize, AnomalyKind)> {
    ev.iter()
        .filter(|(_, a)| a.phase == Phase::Opened)
        .map(|(i, a)| (*i, a.kind))
        .collect()
}

#[test]
fn noise_only_raises_no_alarm_for_many_seeds() {
    for seed in 0..8 {
        let v = series(20_000, 50.0, 0.5, Shape::None, seed);
        let mut d = detector(params());
        let ev = run(&mut d, &v);
        assert!(ev.is_empty(), "seed {seed}: false alarms {:?}", opened(&ev));
    }
}

#[test]
fn step_opens_one_level_shift_event_quickly() {
    let v = series(
        6000,
        50.0,
        0.5,
        Shape::Step {
            start: 3000,
            size: 4.0,
        },
        1,
    ); // 8σ
    let mut d = detector(params());
    let ev = run(&mut d, &v);
    let o = opened(&ev);
    assert_eq!(o.len(), 1, "{o:?}");
    assert!(o[0].0 >= 3000 && o[0].0 <= 3005, "{o:?}");
    assert_eq!(ev.last().unwrap().1.kind, AnomalyKind::LevelShift);
    assert!(d.event_open(), "a persisting step keeps its event open");
    let e = &ev[0].1.evidence;
    assert!(
        (e.baseline - 50.0).abs() < 0.1 && (e.spread - 0.5).abs() < 0.1,
        "{e:?}"
    );
}

#[test]
fn downward_step_is_detected_too() {
    let v = series(
        6000,
        50.0,
        0.5,
        Shape::Step {
            start: 3000,
            size: -4.0,
        },
        2,
    );
    let mut d = detector(params());
    let o = opened(&run(&mut d, &v));
    assert_eq!(o.len(), 1, "{o:?}");
    assert!(o[0].0 <= 3005);
}

#[test]
fn slow_ramp_is_detected_as_drift_before_a_level_shift() {
    // 0.5σ per minute: invisible reading by reading.
    let v = series(
        8000,
        50.0,
        0.5,
        Shape::Ramp {
            start: 3000,
            per_reading: 0.25 / 60.0,
        },
        3,
    );
    let mut d = detector(params());
    let ev = run(&mut d, &v);
    let o = opened(&ev);
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(o[0].1, AnomalyKind::Drift, "{o:?}");
    let delay = o[0].0 - 3000;
    assert!(delay < 900, "drift detected {delay} s after onset");
    let e = &ev[0].1.evidence;
    assert!(
        e.rate_per_min > 0.1 && e.rate_per_min < 0.5,
        "rate {}",
        e.rate_per_min
    );
    assert!(e.trend_s > 60.0, "trend duration {}", e.trend_s);
}

#[test]
fn single_spike_gives_one_event_that_closes() {
    let v = series(
        4000,
        50.0,
        0.5,
        Shape::Spike {
            at: 2000,
            size: 8.0,
        },
        4,
    ); // 16σ
    let mut d = detector(params());
    let ev = run(&mut d, &v);
    let o = opened(&ev);
    assert_eq!(o, vec![(2000, AnomalyKind::Spike)]);
    let closed: Vec<usize> = ev
        .iter()
        .filter(|(_, a)| a.phase == Phase::Closed)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(
        closed[0] >= 2000 + 120 && closed[0] <= 2000 + 130,
        "{closed:?}"
    );
}

#[test]
fn flatline_is_detected_after_its_duration() {
    let v = series(4000, 50.0, 0.5, Shape::Flatline { start: 2000 }, 5);
    let mut d = detector(params());
    let o = opened(&run(&mut d, &v));
    assert_eq!(o, vec![(2300, AnomalyKind::Flatline)]);
}

#[test]
fn gap_opens_a_dropout_event_on_the_next_reading_and_on_tick() {
    let mut d = detector(params());
    let v = series(1000, 50.0, 0.5, Shape::None, 6);
    let mut events = Vec::new();
    for (i, x) in v.iter().enumerate() {
        let ts = if i < 500 { i as i64 } else { i as i64 + 40 } * SEC; // 41 s gap
        events.extend(d.observe_value(ts, *x, Quality::Good));
    }
    assert_eq!(events.len(), 2, "{events:?}"); // opened at the gap, closed later
    assert_eq!(events[0].kind, AnomalyKind::Dropout);
    assert!((events[0].evidence.gap_s - 41.0).abs() < 1e-9);
    assert_eq!(d.counters().gaps, 1);

    let mut d = detector(params());
    for (i, x) in v.iter().take(100).enumerate() {
        d.observe_value(i as i64 * SEC, *x, Quality::Good);
    }
    assert!(
        d.tick(110 * SEC).is_none(),
        "10 s without data is no dropout"
    );
    let a = d.tick(130 * SEC).expect("30 s without data is a dropout");
    assert_eq!((a.kind, a.phase), (AnomalyKind::Dropout, Phase::Opened));
    assert!(
        d.tick(140 * SEC).is_none(),
        "no second alert while the dropout lasts"
    );
}

#[test]
fn hard_limit_is_scored_even_while_learning() {
    let mut p = params();
    p.limits = Some(Limits {
        min: None,
        max: Some(90.0),
    });
    p.normal = Some([20.0, 75.0]);
    let mut d = detector(p);
    assert!(d.observe_value(0, 60.0, Quality::Good).is_none());
    assert_eq!(millwright_core::Detector::score(&d), 0.0);
    d.observe_value(SEC, 82.5, Quality::Good);
    let s = millwright_core::Detector::score(&d);
    assert!(
        (s - 0.25).abs() < 1e-9,
        "halfway to the limit scores 0.25, got {s}"
    );
    let a = d
        .observe_value(2 * SEC, 91.0, Quality::Good)
        .expect("limit event");
    assert_eq!((a.kind, a.phase), (AnomalyKind::Limit, Phase::Opened));
}

#[test]
fn fast_rise_is_a_rate_of_change() {
    let mut p = params();
    p.max_rate_per_min = Some(2.0);
    p.shift_z = None; // isolate the rate detector
    p.spike_z = None;
    p.drift = None;
    // 5 units per minute from reading 2000.
    let v = series(
        2600,
        50.0,
        0.2,
        Shape::Ramp {
            start: 2000,
            per_reading: 5.0 / 60.0,
        },
        7,
    );
    let mut d = detector(p);
    let ev = run(&mut d, &v);
    let o = opened(&ev);
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(o[0].1, AnomalyKind::RateOfChange);
    assert!(o[0].0 - 2000 < 90, "{o:?}");
    let r = ev[0].1.evidence.rate_per_min;
    assert!(r > 2.0 && r < 6.0, "rate {r}");
}

#[test]
fn bad_and_out_of_order_readings_are_counted_not_used() {
    // Issue 10 changed this: a small backward step (within the clock tolerance, 1 h by
    // default) is a clock correction and is used; only a larger one is out of order.
    let mut d = detector(params());
    d.observe_value(10_000 * SEC, 1.0, Quality::Good);
    d.observe_value(10_001 * SEC, f64::NAN, Quality::Good);
    d.observe_value(10_002 * SEC, 1.0, Quality::Bad);
    d.observe_value(5 * SEC, 1.0, Quality::Good);
    d.observe_value(9_995 * SEC, 1.0, Quality::Good);
    let c = d.counters();
    assert_eq!(
        (c.readings, c.bad, c.out_of_order, c.clock_corrections),
        (2, 2, 1, 1)
    );
}

#[test]
fn replay_is_deterministic() {
    let v = series(
        5000,
        10.0,
        1.0,
        Shape::Step {
            start: 2500,
            size: 9.0,
        },
        8,
    );
    let a = run(&mut detector(params()), &v);
    let b = run(&mut detector(params()), &v);
    assert_eq!(a, b);
    assert!(!a.is_empty());
}

#[test]
fn scores_stay_in_range_on_wild_input() {
    let mut rng = SplitMix64::new(99);
    let mut p = params();
    p.limits = Some(Limits {
        min: Some(-1e6),
        max: Some(1e6),
    });
    p.max_rate_per_min = Some(1.0);
    let mut d = detector(p);
    let mut ts = 0i64;
    for _ in 0..50_000 {
        ts += (rng.next_f64_open() * 3.0 * SEC as f64) as i64;
        let v = match rng.next_u64() % 5 {
            0 => rng.normal() * 1e9,
            1 => 0.0,
            _ => rng.normal(),
        };
        d.observe_value(ts, v, Quality::Good);
        let s = millwright_core::Detector::score(&d);
        assert!((0.0..=1.0).contains(&s) && s.is_finite(), "{s}");
    }
}

const PAIR: &str = r#"
name = "pair"
[defaults]
learn_n = 300
close_after_s = 60
[[signals]]
name = "vib_mm_s"
unit = "mm/s"
detect.level = { shift_z = 6.0 }
[[signals]]
name = "temp_c"
unit = "°C"
detect.level = { shift_z = 6.0 }
[[correlations]]
name = "both_up"
signals = ["vib_mm_s", "temp_c"]
directions = ["up", "up"]
z = 2.5
"#;

#[test]
fn correlated_rise_below_univariate_thresholds_is_flagged_by_the_group() {
    let p = Profile::from_toml_str(PAIR, "pair").unwrap();
    let mut m = AssetMonitor::new("M-1", &p).unwrap();
    // Both rise by 3.5σ at reading 2000: below shift_z = 6 each, above the group's 2.5σ.
    let vib = series(
        3000,
        1.0,
        0.05,
        Shape::Step {
            start: 2000,
            size: 0.175,
        },
        10,
    );
    let tmp = series(
        3000,
        60.0,
        0.5,
        Shape::Step {
            start: 2000,
            size: 1.75,
        },
        11,
    );
    let mut ev = Vec::new();
    for i in 0..3000 {
        let ts = i as i64 * SEC;
        m.observe(
            &Reading::new(
                SensorId::new("M-1", "vib_mm_s"),
                ts,
                vib[i],
                Unit::new("mm/s"),
            ),
            &mut ev,
        );
        m.observe(
            &Reading::new(SensorId::new("M-1", "temp_c"), ts, tmp[i], Unit::new("°C")),
            &mut ev,
        );
    }
    let o: Vec<_> = ev.iter().filter(|a| a.phase == Phase::Opened).collect();
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(o[0].kind, AnomalyKind::Correlated);
    assert!(o[0].since_ns >= 2000 * SEC && o[0].since_ns <= 2010 * SEC);
    assert_eq!(&*o[0].related[0].signal, "temp_c");
    // Only one of them rising is not a joint deviation.
    let mut m = AssetMonitor::new("M-1", &p).unwrap();
    let mut ev = Vec::new();
    let flat = series(3000, 60.0, 0.5, Shape::None, 12);
    for i in 0..3000 {
        let ts = i as i64 * SEC;
        m.observe(
            &Reading::new(
                SensorId::new("M-1", "vib_mm_s"),
                ts,
                vib[i],
                Unit::new("mm/s"),
            ),
            &mut ev,
        );
        m.observe(
            &Reading::new(SensorId::new("M-1", "temp_c"), ts, flat[i], Unit::new("°C")),
            &mut ev,
        );
    }
    assert!(ev.is_empty(), "{ev:?}");
    // Readings of other assets are ignored and counted.
    m.observe(
        &Reading::new(SensorId::new("M-2", "temp_c"), 0, 1.0, Unit::new("°C")),
        &mut ev,
    );
    assert_eq!(m.ignored(), 1);
}

#[test]
fn a_lasting_joint_step_of_a_group_closes_as_new_normal() {
    let text = PAIR.replace(
        "close_after_s = 60\n",
        "close_after_s = 60\nrelearn_after_s = 1200\n",
    );
    let p = Profile::from_toml_str(&text, "pair").unwrap();
    assert_eq!(p.defaults.relearn_after_s, 1200.0);
    let mut m = AssetMonitor::new("M-1", &p).unwrap();
    let n = 6000;
    let step = |start, size| Shape::Step { start, size };
    let vib = series(n, 1.0, 0.05, step(2000, 0.175), 20);
    let tmp = series(n, 60.0, 0.5, step(2000, 1.75), 21);
    let mut ev = Vec::new();
    let mut scores = Vec::new();
    for i in 0..n {
        let ts = i as i64 * SEC;
        m.observe_at(0, ts, vib[i], Quality::Good, &mut ev);
        m.observe_at(1, ts, tmp[i], Quality::Good, &mut ev);
        scores.push(m.score());
    }
    let closed: Vec<_> = ev
        .iter()
        .filter(|a| a.phase == Phase::Closed && a.kind == AnomalyKind::Correlated)
        .collect();
    assert_eq!(closed.len(), 1, "{ev:?}");
    assert_eq!(
        closed[0].resolution,
        Some(millwright_core::Resolution::NewNormal)
    );
    let at = ((closed[0].ts_ns) / SEC) as usize;
    assert!(at <= 2010 + 1200 + 120, "closed at {at}");
    assert!(
        scores[at..].iter().all(|s| *s < 0.5),
        "alarm after re-learning"
    );
}
