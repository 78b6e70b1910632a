//! Unit tests of incidents: hand-made anomaly events (as the detectors raise them) of the
//! real profiles in `pipelines/`, fed into the machine; explanations by the template at once.

use super::*;
use crate::tests::{reports, Mem};
use millwright_core::anomaly::{AnomalyKind, Evidence, Phase, RelatedSignal, Resolution};
use millwright_core::{Direction, SensorId, Severity, Unit};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

fn pump() -> Profile {
    Profile::from_toml_str(
        include_str!("../../../pipelines/centrifugal-pump.toml"),
        "pump",
    )
    .unwrap()
}

fn motor() -> Profile {
    Profile::from_toml_str(
        include_str!("../../../pipelines/electric-motor.toml"),
        "motor",
    )
    .unwrap()
}

fn machine() -> Analytics {
    Analytics::new(
        Options::new("s"),
        vec![("P-101".into(), pump()), ("M-201".into(), motor())],
    )
}

/// One event of a detector: `signal` on `asset` opened at `since_s`, this phase at `ts_s`.
#[allow(clippy::too_many_arguments)]
fn ev(
    asset: &str,
    signal: &str,
    kinds: &[AnomalyKind],
    phase: Phase,
    since_s: i64,
    ts_s: i64,
    z: f64,
    peak: f64,
) -> Anomaly {
    Anomaly {
        id: format!("{asset}/{signal}@{}", T0 + since_s * S),
        sensor: SensorId::new(asset, signal),
        unit: Unit::new(""),
        kind: *kinds.last().unwrap(),
        kinds: kinds.to_vec(),
        phase,
        since_ns: T0 + since_s * S,
        ts_ns: T0 + ts_s * S,
        score: if phase == Phase::Closed { 0.1 } else { peak },
        peak_score: peak,
        evidence: Evidence {
            value: 10.0 + z,
            baseline: 10.0,
            spread: 1.0,
            z: if phase == Phase::Closed { 0.0 } else { z },
            learned: true,
            ..Default::default()
        },
        related: Vec::new(),
        profile: "p".into(),
        resolution: (phase == Phase::Closed).then_some(Resolution::Normal),
    }
}

fn closed(mut e: Anomaly, ts_s: i64) -> Anomaly {
    e.phase = Phase::Closed;
    e.ts_ns = T0 + ts_s * S;
    e.score = 0.1;
    e.resolution = Some(Resolution::Normal);
    e
}

/// Feeds `(t_s, events)` steps in time order, explains at once with the template, then lets
/// time run to `until_s`; returns every output.
fn run(a: &mut Analytics, steps: Vec<(i64, Vec<Anomaly>)>, until_s: i64) -> Vec<Output> {
    let h = Mem::default();
    let mut all = Vec::new();
    let mut out = Vec::new();
    let mut steps = steps;
    steps.sort_by_key(|(t, _)| *t);
    for (t, evs) in steps {
        a.inject(&evs, T0 + t * S, &h, &mut out);
        settle(a, &mut out, &mut all);
    }
    let last = all
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.ts_ns),
            _ => None,
        })
        .max()
        .unwrap_or(T0);
    let mut t = last;
    while t <= T0 + until_s * S {
        a.on_tick(t, &h, &mut out);
        settle(a, &mut out, &mut all);
        t += 5 * S;
    }
    all
}

fn settle(a: &mut Analytics, out: &mut Vec<Output>, all: &mut Vec<Output>) {
    while !out.is_empty() {
        for o in std::mem::take(out) {
            if let Output::Explain(req) = &o {
                let card = req.explain(a.explainer(), None);
                a.on_explained(card, out);
            }
            all.push(o);
        }
    }
}

fn incidents(out: &[Output], phase: Phase) -> Vec<&Incident> {
    out.iter()
        .filter_map(|o| match o {
            Output::Incident(i) if i.phase == phase => Some(i),
            _ => None,
        })
        .collect()
}

fn alerts(out: &[Output]) -> Vec<&ExplanationCard> {
    out.iter()
        .filter_map(|o| match o {
            Output::Alert(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// The bearing-wear events of P-101 opening in `order` (0 vibration drift, 1 the correlated
/// group, 2 bearing temperature drift), 30 s apart; the vibration event becomes a level shift,
/// the bearing temperature worsens; all close in the same order.
fn bearing_wear(order: [usize; 3]) -> Vec<(i64, Vec<Anomaly>)> {
    use AnomalyKind::*;
    let mut steps = Vec::new();
    let opens = [100, 130, 160];
    let mut open_at = [0; 3];
    for (slot, &which) in order.iter().enumerate() {
        open_at[which] = opens[slot];
    }
    let vib = ev(
        "P-101",
        "vibration_rms_mm_s",
        &[Drift],
        Phase::Opened,
        open_at[0],
        open_at[0],
        4.0,
        0.6,
    );
    let mut corr = ev(
        "P-101",
        "vibration_rms_mm_s",
        &[Correlated],
        Phase::Opened,
        open_at[1],
        open_at[1],
        4.0,
        0.7,
    );
    corr.id = format!("P-101/bearing_distress@{}", corr.since_ns);
    corr.related = vec![RelatedSignal {
        signal: "bearing_temp_c".into(),
        z: 3.5,
        rate_per_min: 0.2,
        direction: Direction::Up,
    }];
    let bt = ev(
        "P-101",
        "bearing_temp_c",
        &[Drift],
        Phase::Opened,
        open_at[2],
        open_at[2],
        3.0,
        0.6,
    );
    for e in [&vib, &corr, &bt] {
        steps.push(((e.ts_ns - T0) / S, vec![e.clone()]));
    }
    let mut vib_ls = ev(
        "P-101",
        "vibration_rms_mm_s",
        &[Drift, LevelShift],
        Phase::Updated,
        open_at[0],
        200,
        6.0,
        0.8,
    );
    vib_ls.id = vib.id.clone();
    steps.push((200, vec![vib_ls.clone()]));
    // Same kind, higher score: no news of its own, but the severity rises to warning.
    let mut bt_worse = ev(
        "P-101",
        "bearing_temp_c",
        &[Drift],
        Phase::Updated,
        open_at[2],
        300,
        6.0,
        0.95,
    );
    bt_worse.id = bt.id.clone();
    bt_worse.kind = Drift;
    steps.push((300, vec![bt_worse.clone()]));
    let lasts = [vib_ls, corr, bt_worse];
    for (slot, &which) in order.iter().enumerate() {
        let t = 600 + 10 * slot as i64;
        steps.push((t, vec![closed(lasts[which].clone(), t)]));
    }
    steps
}

const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

#[test]
fn a_bearing_wear_sequence_in_any_order_is_one_incident_diagnosed_bearing_wear() {
    let wear_actions: Vec<String> = pump()
        .failure_modes
        .iter()
        .find(|m| m.id == "bearing_wear")
        .unwrap()
        .actions
        .iter()
        .map(|a| a.text.clone())
        .collect();
    for order in ORDERS {
        let mut a = machine();
        let out = run(&mut a, bearing_wear(order), 900);
        let opened = incidents(&out, Phase::Opened);
        assert_eq!(opened.len(), 1, "{order:?}: one incident: {opened:?}");
        let id = opened[0].id.clone();
        let first_alerts: Vec<_> = alerts(&out)
            .into_iter()
            .filter(|c| c.phase == Phase::Opened)
            .collect();
        assert_eq!(first_alerts.len(), 1, "{order:?}: one alert");
        assert!(alerts(&out).iter().all(|c| c.id == id), "{order:?}");
        // Updates only when a symptom is added or the severity rises.
        let told: Vec<&Incident> = out
            .iter()
            .filter_map(|o| match o {
                Output::Incident(i) if i.phase != Phase::Closed => Some(i),
                _ => None,
            })
            .collect();
        assert!(told.len() >= 2, "{order:?}: at least one update: {told:?}");
        for w in told.windows(2) {
            let sig = |i: &Incident| {
                let mut v: Vec<(String, AnomalyKind)> = i
                    .symptoms
                    .iter()
                    .map(|s| (s.signal.clone(), s.kind))
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            let (before, after) = (sig(w[0]), sig(w[1]));
            assert!(
                after.len() > before.len() || after != before || w[1].severity > w[0].severity,
                "{order:?}: an update without news: {:?} -> {:?}",
                w[0],
                w[1]
            );
        }
        let updates = incidents(&out, Phase::Updated);
        assert!(updates.len() <= 4, "{order:?}: {} updates", updates.len());
        let closes = incidents(&out, Phase::Closed);
        assert_eq!(closes.len(), 1, "{order:?}: closed once");
        let c = closes[0];
        assert_eq!(c.id, id);
        assert_eq!(c.severity, Severity::Warning, "{order:?}");
        assert_eq!(c.symptoms.len(), 3, "{order:?}: {:?}", c.symptoms);
        assert_eq!(c.events_merged, 2);
        assert_eq!(c.resolution, Some(Resolution::Normal));
        assert!(
            c.closed_ns.unwrap() >= T0 + 620 * S,
            "closed after the last symptom"
        );
        assert_eq!(
            c.top().unwrap().id,
            "bearing_wear",
            "{order:?}: {:?}",
            c.diagnosis
        );
        // The latest card names bearing wear and its first action is bearing wear's.
        let card = alerts(&out).last().copied().unwrap();
        assert_eq!(card.failure_modes[0], "bearing_wear", "{order:?}");
        assert!(
            wear_actions.contains(&card.actions[0].text),
            "{order:?}: {:?}",
            card.actions
        );
        assert!(card.confidence > 0.0 && card.confidence <= 1.0);
        // One report, one incident in it, its first action from bearing wear.
        let r = reports(&out);
        assert_eq!(r.len(), 1, "{order:?}: one report");
        assert_eq!(r[0].incidents.len(), 1);
        assert_eq!(r[0].incidents[0].diagnosis, "Rolling-element bearing wear");
        assert!(
            wear_actions.contains(&r[0].actions[0].action.text),
            "{:?}",
            r[0].actions
        );
        assert_eq!(Counters::get(&a.counters().incidents), 1);
        assert_eq!(Counters::get(&a.counters().incidents_closed), 1);
        assert_eq!(Counters::get(&a.counters().anomalies), 3);
    }
}

#[test]
fn two_faults_on_two_assets_are_two_incidents_that_never_mix() {
    use AnomalyKind::*;
    let mut a = machine();
    let mut steps = bearing_wear([0, 1, 2]);
    let wind = ev(
        "M-201",
        "winding_temp_c",
        &[Drift],
        Phase::Opened,
        110,
        110,
        5.0,
        0.9,
    );
    let bear = ev(
        "M-201",
        "bearing_temp_c",
        &[LevelShift],
        Phase::Opened,
        140,
        140,
        4.0,
        0.9,
    );
    steps.push((110, vec![wind.clone()]));
    steps.push((140, vec![bear.clone()]));
    steps.push((640, vec![closed(wind, 640), closed(bear, 640)]));
    let out = run(&mut a, steps, 900);
    let opened = incidents(&out, Phase::Opened);
    assert_eq!(opened.len(), 2, "{opened:?}");
    let closes = incidents(&out, Phase::Closed);
    assert_eq!(closes.len(), 2);
    for c in closes {
        assert!(
            c.symptoms
                .iter()
                .all(|s| s.event_id.starts_with(&format!("{}/", c.asset))),
            "{c:?}"
        );
        let want = if c.asset == "M-201" {
            "overheating"
        } else {
            "bearing_wear"
        };
        assert_eq!(c.top().unwrap().id, want, "{c:?}");
    }
    assert_eq!(reports(&out).len(), 2, "one report per incident");
}

#[test]
fn an_alert_flood_is_one_incident_with_the_suppressed_count() {
    use AnomalyKind::*;
    let mut a = machine();
    let signals = [
        "vibration_rms_mm_s",
        "bearing_temp_c",
        "motor_current_a",
        "flow_m3_h",
    ];
    let kinds = [Spike, LevelShift, Drift, RateOfChange];
    let mut steps = Vec::new();
    // 80 events in 20 s: every signal opens, closes and reopens with changing kinds.
    for i in 0..80i64 {
        let t = 100 + i / 4;
        let s = signals[(i % 4) as usize];
        let k = kinds[((i / 4) % 4) as usize];
        let since = 100 + i;
        let e = ev("P-101", s, &[k], Phase::Opened, since, t, 5.0, 0.9);
        steps.push((t, vec![e.clone(), closed(e, t)]));
    }
    let out = run(&mut a, steps, 400);
    assert_eq!(incidents(&out, Phase::Opened).len(), 1);
    let updates = incidents(&out, Phase::Updated);
    assert!(
        updates.len() <= 1,
        "rate-limited: {} updates",
        updates.len()
    );
    assert_eq!(
        alerts(&out)
            .iter()
            .filter(|c| c.phase == Phase::Opened)
            .count(),
        1
    );
    let c = incidents(&out, Phase::Closed);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].events_merged, 79);
    assert!(c[0].events_suppressed >= 70, "{}", c[0].events_suppressed);
    assert_eq!(
        Counters::get(&a.counters().events_suppressed),
        c[0].events_suppressed
    );
    assert_eq!(reports(&out).len(), 1);
}

#[test]
fn a_flapping_symptom_does_not_close_and_reopen_and_a_new_normal_is_reported() {
    use AnomalyKind::*;
    let mut a = machine();
    let e1 = ev(
        "P-101",
        "discharge_pressure_bar",
        &[LevelShift],
        Phase::Opened,
        100,
        100,
        -6.0,
        0.9,
    );
    let e2 = ev(
        "P-101",
        "discharge_pressure_bar",
        &[LevelShift],
        Phase::Opened,
        150,
        150,
        -6.0,
        0.9,
    );
    let mut c2 = closed(e2.clone(), 400);
    c2.resolution = Some(Resolution::NewNormal);
    let steps = vec![
        (100, vec![e1.clone()]),
        (120, vec![closed(e1, 120)]),
        (150, vec![e2]),
        (400, vec![c2]),
    ];
    let out = run(&mut a, steps, 700);
    assert_eq!(incidents(&out, Phase::Opened).len(), 1);
    assert_eq!(
        incidents(&out, Phase::Updated).len(),
        0,
        "a repeat is no news"
    );
    let c = incidents(&out, Phase::Closed);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].events_suppressed, 1);
    assert_eq!(c[0].resolution, Some(Resolution::NewNormal));
    assert_eq!(c[0].closed_ns, Some(T0 + 400 * S));
}

#[test]
fn a_stuck_sensor_during_a_process_fault_is_its_own_incident() {
    use AnomalyKind::*;
    let mut a = machine();
    let wear = ev(
        "P-101",
        "vibration_rms_mm_s",
        &[Drift],
        Phase::Opened,
        100,
        100,
        5.0,
        0.9,
    );
    let mut stuck = ev(
        "P-101",
        "bearing_temp_c",
        &[Flatline],
        Phase::Opened,
        120,
        120,
        0.0,
        0.9,
    );
    stuck.evidence.flat_s = 600.0;
    let out = run(&mut a, vec![(100, vec![wear]), (120, vec![stuck])], 200);
    let opened = incidents(&out, Phase::Opened);
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert_eq!(opened[1].top().unwrap().id, "sensor_fault");
}

#[test]
fn a_symptom_of_the_same_mode_soon_after_the_close_reopens_the_incident() {
    use AnomalyKind::*;
    let mut a = machine();
    // Overheating: the bearing temperature rises, settles (the incident closes), rises again
    // 20 min later: the same fault, one incident told again as an update. A symptom of no
    // symptom of that mode (suction pressure falling) and one after the re-join window
    // are new incidents.
    let hot = |since: i64| {
        ev(
            "P-101",
            "bearing_temp_c",
            &[LevelShift],
            Phase::Opened,
            since,
            since,
            6.0,
            0.9,
        )
    };
    let e1 = hot(100);
    let e2 = hot(1500);
    let e3 = hot(1500 + 3700 + 200);
    let other = ev(
        "P-101",
        "suction_pressure_bar",
        &[LevelShift],
        Phase::Opened,
        1700,
        1700,
        -6.0,
        0.9,
    );
    // Empty steps are clock ticks (the hold-off runs out).
    let steps = vec![
        (100, vec![e1.clone()]),
        (300, vec![closed(e1, 300)]),
        (400, vec![]),
        (1500, vec![e2.clone()]),
        (1550, vec![closed(e2, 1550)]),
        (1650, vec![]),
        (1700, vec![other.clone()]),
        (1750, vec![closed(other, 1750)]),
        (1850, vec![]),
        (1500 + 3700 + 200, vec![e3]),
    ];
    let out = run(&mut a, steps, 1500 + 3700 + 400);
    let opened: Vec<i64> = incidents(&out, Phase::Opened)
        .iter()
        .map(|i| (i.opened_ns - T0) / S)
        .collect();
    assert_eq!(opened, vec![100, 1700, 5400], "{opened:?}");
    let first = "P-101#".to_string() + &(T0 + 100 * S).to_string();
    assert!(
        incidents(&out, Phase::Updated)
            .iter()
            .any(|i| i.id == first && i.symptoms.len() == 2 && i.closed_ns.is_none()),
        "the first incident re-opened with the second event"
    );
    assert_eq!(
        incidents(&out, Phase::Closed)
            .iter()
            .filter(|i| i.id == first)
            .count(),
        2,
        "closed, re-opened, closed again"
    );
    let alerts_opened = alerts(&out)
        .iter()
        .filter(|c| c.phase == Phase::Opened)
        .count();
    assert_eq!(alerts_opened, 3);
}
