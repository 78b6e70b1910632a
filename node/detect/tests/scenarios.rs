//! Scenario tests on simulated machines with the real asset profiles of `pipelines/`: each
//! injected fault is detected on the right asset and signal within a stated time of onset,
//! and a fault-free simulated day gives at most one false alarm per asset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{Anomaly, AnomalyKind, Phase, Quality};
use millwright_detect::synth::{FaultKind, Machine};
use millwright_detect::AssetMonitor;
use millwright_profile::Profile;
use std::path::Path;

const T0: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z
const ONSET_S: f64 = 3600.0;

fn profile(name: &str) -> Profile {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../pipelines")
        .join(format!("{name}.toml"));
    Profile::load(&p).unwrap()
}

/// Runs the machine through the monitor at 1 Hz with a dropout tick every second.
fn simulate(p: &Profile, m: &mut Machine, seconds: f64) -> Vec<Anomaly> {
    let mut mon = AssetMonitor::new(&m.asset, p).unwrap();
    let mon = std::cell::RefCell::new(&mut mon);
    let events = std::cell::RefCell::new(Vec::new());
    m.run(
        T0,
        seconds,
        1.0,
        |i, ts, v| {
            mon.borrow_mut()
                .observe_at(i, ts, v, Quality::Good, &mut events.borrow_mut())
        },
        |ts| {
            mon.borrow_mut()
                .tick(ts + 500_000_000, &mut events.borrow_mut())
        },
    );
    events.into_inner()
}

fn opened(ev: &[Anomaly]) -> Vec<&Anomaly> {
    ev.iter().filter(|a| a.phase == Phase::Opened).collect()
}

fn after_onset_s(a: &Anomaly) -> f64 {
    (a.since_ns - T0) as f64 / 1e9 - ONSET_S
}

/// Asserts no alarm before the onset and returns the first alarm after it.
fn first_alarm<'a>(ev: &'a [Anomaly], what: &str) -> &'a Anomaly {
    let o = opened(ev);
    let early: Vec<_> = o.iter().filter(|a| after_onset_s(a) < 0.0).collect();
    assert!(
        early.is_empty(),
        "{what}: alarms before the fault: {early:#?}"
    );
    o.first()
        .copied()
        .unwrap_or_else(|| panic!("{what}: fault not detected"))
}

fn describe(ev: &[Anomaly]) -> Vec<String> {
    opened(ev)
        .iter()
        .map(|a| format!("{} {:?} +{:.0}s", a.sensor.signal, a.kind, after_onset_s(a)))
        .collect()
}

#[test]
fn pump_bearing_wear_is_detected_on_vibration_or_bearing_temperature_within_30_min() {
    let p = profile("centrifugal-pump");
    let mut m = Machine::for_profile("P-101", &p, 1);
    // Vibration +1.2 mm/s and bearing temperature +8 °C over two hours.
    m.inject(
        "vibration_rms_mm_s",
        ONSET_S,
        FaultKind::Ramp {
            total: 1.2,
            over_s: 7200.0,
        },
    );
    m.inject(
        "bearing_temp_c",
        ONSET_S,
        FaultKind::Ramp {
            total: 8.0,
            over_s: 7200.0,
        },
    );
    let ev = simulate(&p, &mut m, ONSET_S + 7200.0);
    let a = first_alarm(&ev, "bearing wear");
    assert!(
        ["vibration_rms_mm_s", "bearing_temp_c"].contains(&&*a.sensor.signal),
        "{:?}",
        describe(&ev)
    );
    assert_eq!(&*a.sensor.asset, "P-101");
    assert!(after_onset_s(a) <= 1800.0, "{:?}", describe(&ev));
    assert!(
        matches!(a.kind, AnomalyKind::Drift | AnomalyKind::Correlated),
        "{:?}",
        describe(&ev)
    );
    // One fault: at most one alert per signal and group.
    let o = opened(&ev);
    let mut keys: Vec<String> = o
        .iter()
        .map(|a| a.id.split('@').next().unwrap().to_string())
        .collect();
    keys.dedup();
    assert_eq!(keys.len(), o.len(), "alert storm: {:?}", describe(&ev));
}

#[test]
fn pump_cavitation_is_detected_on_suction_pressure_within_5_min() {
    let p = profile("centrifugal-pump");
    let mut m = Machine::for_profile("P-101", &p, 2);
    m.inject(
        "suction_pressure_bar",
        ONSET_S,
        FaultKind::Ramp {
            total: -0.5,
            over_s: 180.0,
        },
    );
    m.inject(
        "vibration_rms_mm_s",
        ONSET_S,
        FaultKind::Ramp {
            total: 0.6,
            over_s: 180.0,
        },
    );
    m.inject("vibration_rms_mm_s", ONSET_S, FaultKind::Noise { sd: 0.15 });
    m.inject(
        "flow_m3_h",
        ONSET_S,
        FaultKind::Ramp {
            total: -8.0,
            over_s: 180.0,
        },
    );
    let ev = simulate(&p, &mut m, ONSET_S + 1200.0);
    let a = first_alarm(&ev, "cavitation");
    assert!(
        ["suction_pressure_bar", "vibration_rms_mm_s", "flow_m3_h"].contains(&&*a.sensor.signal),
        "{:?}",
        describe(&ev)
    );
    assert!(after_onset_s(a) <= 300.0, "{:?}", describe(&ev));
    assert!(
        opened(&ev)
            .iter()
            .any(|a| &*a.sensor.signal == "suction_pressure_bar" && after_onset_s(a) <= 300.0),
        "suction pressure itself flagged: {:?}",
        describe(&ev)
    );
}

#[test]
fn motor_overheating_is_detected_on_winding_temperature_within_10_min() {
    let p = profile("electric-motor");
    let mut m = Machine::for_profile("M-201", &p, 3);
    m.inject(
        "winding_temp_c",
        ONSET_S,
        FaultKind::Ramp {
            total: 80.0,
            over_s: 2400.0,
        },
    );
    m.inject(
        "motor_current_a",
        ONSET_S,
        FaultKind::Ramp {
            total: 6.0,
            over_s: 2400.0,
        },
    );
    let ev = simulate(&p, &mut m, ONSET_S + 2400.0);
    let a = first_alarm(&ev, "overheating");
    assert!(
        ["winding_temp_c", "motor_current_a"].contains(&&*a.sensor.signal),
        "{:?}",
        describe(&ev)
    );
    assert!(after_onset_s(a) <= 600.0, "{:?}", describe(&ev));
    // Once past the alarm limit the winding event says so.
    assert!(
        ev.iter().any(|a| &*a.sensor.signal == "winding_temp_c" && a.kinds.contains(&AnomalyKind::Limit)),
        "{:?}",
        describe(&ev)
    );
}

#[test]
fn stuck_bearing_temperature_is_a_flatline_within_11_min() {
    let p = profile("centrifugal-pump");
    let mut m = Machine::for_profile("P-101", &p, 4);
    m.inject("bearing_temp_c", ONSET_S, FaultKind::Freeze);
    let ev = simulate(&p, &mut m, ONSET_S + 1200.0);
    let a = first_alarm(&ev, "stuck sensor");
    assert_eq!(
        (&*a.sensor.signal, a.kind),
        ("bearing_temp_c", AnomalyKind::Flatline),
        "{:?}",
        describe(&ev)
    );
    assert!(after_onset_s(a) <= 660.0, "{:?}", describe(&ev));
    assert_eq!(opened(&ev).len(), 1, "{:?}", describe(&ev));
}

#[test]
fn flow_dropout_is_detected_within_20_s() {
    let p = profile("centrifugal-pump");
    let mut m = Machine::for_profile("P-101", &p, 5);
    m.inject("flow_m3_h", ONSET_S, FaultKind::Gap { len_s: 120.0 });
    let ev = simulate(&p, &mut m, ONSET_S + 900.0);
    let a = first_alarm(&ev, "dropout");
    assert_eq!(
        (&*a.sensor.signal, a.kind),
        ("flow_m3_h", AnomalyKind::Dropout),
        "{:?}",
        describe(&ev)
    );
    assert!(after_onset_s(a) <= 20.0, "{:?}", describe(&ev));
    assert_eq!(
        opened(&ev).len(),
        1,
        "one dropout, one alert: {:?}",
        describe(&ev)
    );
    assert!(
        ev.iter().any(|a| a.phase == Phase::Closed),
        "the dropout event closes after data returns"
    );
}

#[test]
fn pump_discharge_leak_is_detected_within_5_min() {
    let p = profile("centrifugal-pump");
    let mut m = Machine::for_profile("P-101", &p, 6);
    m.inject(
        "discharge_pressure_bar",
        ONSET_S,
        FaultKind::Ramp {
            total: -0.8,
            over_s: 120.0,
        },
    );
    m.inject(
        "flow_m3_h",
        ONSET_S,
        FaultKind::Ramp {
            total: 6.0,
            over_s: 120.0,
        },
    );
    let ev = simulate(&p, &mut m, ONSET_S + 900.0);
    let a = first_alarm(&ev, "leak");
    assert!(
        ["discharge_pressure_bar", "flow_m3_h"].contains(&&*a.sensor.signal),
        "{:?}",
        describe(&ev)
    );
    assert!(after_onset_s(a) <= 300.0, "{:?}", describe(&ev));
}

#[test]
fn compressor_air_leak_is_detected_within_10_min() {
    let p = profile("air-compressor");
    let mut m = Machine::for_profile("C-301", &p, 7);
    m.inject(
        "discharge_pressure_bar",
        ONSET_S,
        FaultKind::Ramp {
            total: -0.15,
            over_s: 600.0,
        },
    );
    m.inject(
        "motor_current_a",
        ONSET_S,
        FaultKind::Ramp {
            total: 3.0,
            over_s: 600.0,
        },
    );
    let ev = simulate(&p, &mut m, ONSET_S + 1800.0);
    let a = first_alarm(&ev, "air leak");
    assert!(
        ["discharge_pressure_bar", "motor_current_a"].contains(&&*a.sensor.signal),
        "{:?}",
        describe(&ev)
    );
    assert!(after_onset_s(a) <= 600.0, "{:?}", describe(&ev));
}

#[test]
fn a_fault_free_day_gives_at_most_one_false_alarm_per_asset() {
    for (name, asset, seed) in [
        ("centrifugal-pump", "P-101", 11),
        ("electric-motor", "M-201", 12),
        ("air-compressor", "C-301", 13),
    ] {
        let p = profile(name);
        let mut m = Machine::for_profile(asset, &p, seed);
        let ev = simulate(&p, &mut m, 86_400.0);
        let o = opened(&ev);
        assert!(
            o.len() <= 1,
            "{name}: {} false alarms: {:?}",
            o.len(),
            describe(&ev)
        );
    }
}
