//! Hostile input to the detectors: values near ±f64::MAX, subnormals, alternating extremes and
//! non-finite values never leave the state NaN or infinite, later normal data scores normally,
//! a hard-limit breach always opens an event; one reading dated hours ahead does not blind the
//! detector (its readings, its events, its dropout check).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{Limits, Quality};
use millwright_core::{SensorId, Unit};
use millwright_detect::{Hysteresis, SignalDetector, SignalParams};
use proptest::prelude::*;
use std::sync::Arc;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_800_000_000 * SEC;

fn detector(limits: Option<Limits>) -> SignalDetector {
    SignalDetector::new(
        SensorId::new("P-1", "x"),
        Unit::new("u"),
        Arc::from("test"),
        SignalParams {
            learn_n: 30,
            baseline_n: 600,
            fast_n: 5,
            trend_n: 30,
            noise_floor: 1e-6,
            shift_z: Some(5.0),
            spike_z: Some(9.0),
            drift: Some((1.5, 30.0)),
            max_rate_per_min: Some(100.0),
            flatline: Some((300.0, 0.0)),
            gap_s: Some(15.0),
            limits,
            normal: None,
            hysteresis: Hysteresis {
                open_score: 0.5,
                close_score: 0.3,
                close_after_ns: 60 * SEC,
            },
            ..SignalParams::default()
        },
    )
}

/// A normal reading: 50 with a little deterministic noise.
fn normal(i: i64) -> f64 {
    50.0 + ((i * 7919) % 13) as f64 * 0.05
}

fn hostile() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::MAX),
        Just(-f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(-5e-324),
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(1e308),
        Just(-1e308),
        any::<f64>(),
        -100.0..200.0f64,
    ]
}

fn feed(d: &mut SignalDetector, from: i64, values: &[f64]) {
    for (k, v) in values.iter().enumerate() {
        d.observe_value(T0 + (from + k as i64) * SEC, *v, Quality::Good);
        assert!(
            d.is_sane(),
            "state not finite after {v} at {}",
            from + k as i64
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn extremes_after_learning_leave_the_state_finite_and_normal_data_scores_normally(
        seq in proptest::collection::vec(hostile(), 0..120),
    ) {
        let mut d = detector(None);
        let learn: Vec<f64> = (0..60).map(normal).collect();
        feed(&mut d, 0, &learn);
        prop_assert!(d.learned());
        feed(&mut d, 60, &seq);
        let from = 60 + seq.len() as i64;
        let calm: Vec<f64> = (from..from + 400).map(normal).collect();
        feed(&mut d, from, &calm);
        prop_assert!(d.is_sane());
        prop_assert!(!d.event_open(), "still open after 400 s of normal data: {:?}", d.sub_scores());
        prop_assert!(millwright_core::Detector::score(&d) < 0.3);
        // And it still sees a real step.
        let step: Vec<f64> = (0..30).map(|i| normal(i) + 40.0).collect();
        feed(&mut d, from + 400, &step);
        prop_assert!(d.event_open(), "a 40-unit step on a learned baseline was not seen");
    }

    #[test]
    fn any_sequence_from_the_start_stays_finite_and_a_limit_breach_opens_an_event(
        seq in proptest::collection::vec(hostile(), 0..200),
        over in 100.0001..1e300f64,
    ) {
        let mut d = detector(Some(Limits { min: Some(-100.0), max: Some(100.0) }));
        feed(&mut d, 0, &seq);
        let n = seq.len() as i64;
        d.observe_value(T0 + n * SEC, over, Quality::Good);
        prop_assert!(d.is_sane());
        prop_assert!(d.event_open(), "limit breach {over} did not open an event");
        prop_assert!(d.sub_scores().limit >= 0.5);
    }
}

#[test]
fn f64_max_itself_breaches_a_limit() {
    for v in [f64::MAX, -f64::MAX] {
        let mut d = detector(Some(Limits {
            min: Some(-100.0),
            max: Some(100.0),
        }));
        feed(&mut d, 0, &(0..40).map(normal).collect::<Vec<_>>());
        d.observe_value(T0 + 40 * SEC, v, Quality::Good);
        assert!(d.is_sane() && d.event_open(), "{v}");
    }
}

#[test]
fn one_reading_dated_hours_ahead_does_not_blind_the_detector() {
    let mut d = detector(None);
    feed(&mut d, 0, &(0..100).map(normal).collect::<Vec<_>>());
    // One reading from a publisher whose clock is ten hours ahead.
    d.observe_value(T0 + 36_000 * SEC, 50.0, Quality::Good);
    let before = d.counters().readings;
    feed(&mut d, 101, &(101..200).map(normal).collect::<Vec<_>>());
    let c = d.counters();
    assert_eq!(c.clock_resyncs, 1, "{c:?}");
    assert!(
        c.readings - before >= 95,
        "only {} of 99 readings used: {c:?}",
        c.readings - before
    );
    assert_eq!(d.last_ts(), Some(T0 + 199 * SEC));
    // Events still open on a real step ...
    feed(
        &mut d,
        200,
        &(200..230).map(|i| normal(i) + 40.0).collect::<Vec<_>>(),
    );
    assert!(d.event_open());
    // ... and the dropout check runs on the right clock.
    let mut d = detector(None);
    feed(&mut d, 0, &(0..100).map(normal).collect::<Vec<_>>());
    d.observe_value(T0 + 36_000 * SEC, 50.0, Quality::Good);
    // The jump itself looked like a gap; that event closes on the corrected clock.
    feed(&mut d, 101, &(101..200).map(normal).collect::<Vec<_>>());
    assert!(!d.event_open(), "{:?}", d.sub_scores());
    let a = d.tick(T0 + 290 * SEC);
    assert!(
        a.is_some() && d.event_open(),
        "no dropout 90 s after the last reading: {:?}",
        d.counters()
    );
}

#[test]
fn a_replayed_older_buffer_does_not_move_the_clock_back() {
    // Readings older than those before the newest one (a device replaying its buffer) stay
    // out of order: only readings continuing the timeline re-anchor it.
    let mut d = detector(None);
    feed(&mut d, 0, &(0..100).map(normal).collect::<Vec<_>>());
    for k in 0..20 {
        d.observe_value(T0 + (k - 7200) * SEC, 50.0, Quality::Good);
    }
    let c = d.counters();
    assert_eq!((c.clock_resyncs, c.out_of_order), (0, 20), "{c:?}");
    assert_eq!(d.last_ts(), Some(T0 + 99 * SEC));
}

#[test]
fn extreme_timestamps_do_not_overflow() {
    let mut d = detector(Some(Limits {
        min: None,
        max: Some(100.0),
    }));
    for ts in [i64::MIN, -1, 0, i64::MAX, i64::MIN, i64::MAX - 1, 0] {
        d.observe_value(ts, 50.0, Quality::Good);
        assert!(d.is_sane());
    }
    let _ = d.tick(i64::MAX);
    let _ = d.tick(i64::MIN);
    let _ = d.evidence();
}

fn pump() -> millwright_profile::Profile {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../pipelines/centrifugal-pump.toml");
    millwright_profile::Profile::load(&p).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The whole asset monitor (states, dependent signals, correlation groups) on hostile
    /// values of every signal: every score and statistic stays finite.
    #[test]
    fn the_asset_monitor_stays_finite_on_extremes(
        seq in proptest::collection::vec((0usize..16, hostile()), 0..300),
    ) {
        use millwright_core::{Reading, SensorId, Unit};
        let p = pump();
        let mut m = millwright_detect::AssetMonitor::new("P-1", &p).unwrap();
        let names: Vec<String> = p.signals.iter().map(|s| s.name.clone()).collect();
        let mut ev = Vec::new();
        let mut t = T0;
        // Learn on plausible values first, then the hostile sequence.
        for k in 0..400 {
            for (i, n) in names.iter().enumerate() {
                let v = 10.0 + i as f64 + normal(k) * 0.01;
                m.observe(&Reading::new(SensorId::new("P-1", n.as_str()), t, v, Unit::none()), &mut ev);
            }
            t += SEC;
        }
        for (i, v) in seq {
            let n = &names[i % names.len()];
            m.observe(&Reading::new(SensorId::new("P-1", n.as_str()), t, v, Unit::none()), &mut ev);
            t += SEC / 4;
            m.tick(t, &mut ev);
        }
        m.flush(&mut ev);
        prop_assert!(m.score().is_finite());
        for s in m.signals() {
            prop_assert!(s.is_sane(), "{}: {:?}", s.sensor(), s.sub_scores());
        }
        for g in m.groups() {
            prop_assert!(g.score().is_finite(), "group {}", g.name());
        }
        for a in &ev {
            prop_assert!(a.score.is_finite(), "{a:?}");
        }
    }
}
