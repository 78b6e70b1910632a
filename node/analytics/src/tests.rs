//! Unit tests of the machine with hand-made readings and an in-memory history: no MQTT, no
//! store, no model.

use super::*;
use millwright_core::anomaly::{AnomalyKind, Phase};
use millwright_core::history::{Sample, SensorHealth, Stats};
use millwright_core::{SensorId, Unit};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

const PROFILE: &str = r#"
name = "test-machine"
[defaults]
learn_n = 30
close_after_s = 5
[[signals]]
name = "temp_c"
unit = "°C"
normal = [20.0, 80.0]
limits = { max = 90.0 }
noise_floor = 0.1
detect.level = { shift_z = 5.0, spike_z = 9.0 }
detect.gap = { after_s = 15 }
"#;

fn profile() -> Profile {
    Profile::from_toml_str(PROFILE, "test").unwrap()
}

/// Every reading fed, answered as history.
#[derive(Default)]
pub(crate) struct Mem(pub(crate) Vec<Reading>);

impl Mem {
    fn of<'a>(&'a self, s: &'a SensorId) -> impl Iterator<Item = &'a Reading> + 'a {
        self.0.iter().filter(move |r| r.sensor == *s)
    }
}

impl History for Mem {
    fn signals_of(&self, asset: &str) -> Vec<SensorId> {
        let mut v: Vec<SensorId> = self
            .0
            .iter()
            .filter(|r| &*r.sensor.asset == asset)
            .map(|r| r.sensor.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
    fn unit(&self, s: &SensorId) -> Option<Unit> {
        self.of(s).last().map(|r| r.unit.clone())
    }
    fn last(&self, s: &SensorId) -> Option<Sample> {
        self.of(s).last().map(|r| Sample {
            ts_ns: r.ts_ns,
            value: r.value,
            quality: r.quality,
        })
    }
    fn stats(&self, s: &SensorId, from: i64, to: i64) -> Option<Stats> {
        let v: Vec<&Reading> = self
            .of(s)
            .filter(|r| r.ts_ns >= from && r.ts_ns < to)
            .collect();
        let (first, last) = (v.first()?, v.last()?);
        let n = v.len() as f64;
        Some(Stats {
            count: v.len(),
            not_good: 0,
            min: v.iter().map(|r| r.value).fold(f64::MAX, f64::min),
            max: v.iter().map(|r| r.value).fold(f64::MIN, f64::max),
            mean: v.iter().map(|r| r.value).sum::<f64>() / n,
            std: 0.0,
            last: last.value,
            last_ts_ns: last.ts_ns,
            first_ts_ns: first.ts_ns,
            first: first.value,
        })
    }
    fn health(&self, s: &SensorId) -> Option<SensorHealth> {
        let n = self.of(s).count() as u64;
        (n > 0).then(|| SensorHealth {
            total: n,
            ..Default::default()
        })
    }
}

fn reading(asset: &str, t_s: i64, v: f64) -> Reading {
    Reading::new(
        SensorId::new(asset, "temp_c"),
        T0 + t_s * S,
        v,
        Unit::new("°C"),
    )
}

/// A machine over assets A and B, both of the test profile.
fn machine(opts: Options) -> Analytics {
    Analytics::new(opts, vec![("A".into(), profile()), ("B".into(), profile())])
}

/// Feeds `asset` one reading a second over `[from_s, to_s)` with value `f(t)`; returns the
/// outputs.
fn feed(
    a: &mut Analytics,
    h: &mut Mem,
    asset: &str,
    from_s: i64,
    to_s: i64,
    f: impl Fn(i64) -> f64,
) -> Vec<Output> {
    let mut out = Vec::new();
    for t in from_s..to_s {
        let batch = [reading(asset, t, f(t))];
        h.0.extend(batch.iter().cloned());
        a.on_batch(&batch, h, &mut out);
    }
    out
}

fn normal(t: i64) -> f64 {
    50.0 + 0.3 * ((t as f64) * 1.7).sin()
}

fn explains(out: &[Output]) -> Vec<&ExplainRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Explain(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// The reports among the outputs (shared with the incident tests).
pub(super) fn reports(out: &[Output]) -> Vec<&MaintenanceReport> {
    out.iter()
        .filter_map(|o| match o {
            Output::Report { report, .. } => Some(report),
            _ => None,
        })
        .collect()
}

fn site_reports(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::SiteReport { .. }))
        .count()
}

#[test]
fn an_anomaly_opens_is_explained_alerted_and_reported_when_it_closes() {
    let (mut a, mut h) = (machine(Options::new("s")), Mem::default());
    let out = feed(&mut a, &mut h, "A", 0, 60, normal);
    assert!(explains(&out).is_empty(), "nothing abnormal while learning");
    let out = feed(&mut a, &mut h, "A", 60, 70, |_| 95.0);
    let req = explains(&out);
    assert_eq!(req.len(), 1, "one event opens: {out:?}");
    assert_eq!(&*req[0].event.sensor.asset, "A");
    assert_eq!(req[0].event.phase, Phase::Opened);
    assert_eq!(Counters::get(&a.counters().anomalies), 1);
    assert!(
        reports(&out).is_empty(),
        "no report while the event is open"
    );
    // The card comes back later (here: the template); it is the alert.
    let card = req[0].explain(a.explainer(), None);
    let mut out2 = Vec::new();
    a.on_explained(card.clone(), &mut out2);
    assert!(matches!(&out2[..], [Output::Alert(c)] if c.id == card.id));
    assert_eq!(Counters::get(&a.counters().explanations_fallback), 1);
    assert_eq!(a.cards().len(), 1);
    // Back to normal: the event closes; the incident closes after its hold-off (60 s) and
    // the asset's report follows (one report per incident, not per event).
    let out = feed(&mut a, &mut h, "A", 70, 120, normal);
    let closed = out
        .iter()
        .any(|o| matches!(o, Output::Event(e) if e.phase == Phase::Closed));
    assert!(closed, "{out:?}");
    assert!(reports(&out).is_empty(), "the incident is in its hold-off");
    let out = feed(&mut a, &mut h, "A", 120, 200, normal);
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Incident(i) if i.phase == Phase::Closed && i.asset == "A")
        ),
        "{out:?}"
    );
    let r = reports(&out);
    assert_eq!(r.len(), 1, "{out:?}");
    assert_eq!(r[0].asset, "A");
    assert!(!r[0].anomalies.is_empty(), "the report covers the event");
    assert_eq!(r[0].incidents.len(), 1, "and lists its incident");
    assert_eq!(site_reports(&out), 0, "one asset of two: no site report");
    let md = out.iter().find_map(|o| match o {
        Output::Report { markdown, .. } => Some(markdown),
        _ => None,
    });
    assert!(md.is_some_and(|m| m.contains("Maintenance report: A")));
    assert_eq!(Counters::get(&a.counters().reports), 1);
}

#[test]
fn requests_report_known_assets_and_skip_unknown_ones() {
    let (mut a, mut h) = (machine(Options::new("s")), Mem::default());
    feed(&mut a, &mut h, "A", 0, 10, normal);
    feed(&mut a, &mut h, "T-9", 0, 10, normal);
    let mut out = Vec::new();
    a.on_report_request("nope", &h, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(Counters::get(&a.counters().unknown_assets), 1);
    a.on_report_request("A", &h, &mut out);
    assert_eq!(reports(&out).len(), 1);
    assert_eq!(reports(&out)[0].signals.len(), 1);
    assert_eq!(site_reports(&out), 0);
    // An asset without a profile but with history is reported too.
    out.clear();
    a.on_report_request("T-9", &h, &mut out);
    assert_eq!(reports(&out).len(), 1);
    assert_eq!(reports(&out)[0].asset, "T-9");
}

#[test]
fn a_site_request_reports_every_asset_then_the_site() {
    let (mut a, mut h) = (machine(Options::new("plant")), Mem::default());
    feed(&mut a, &mut h, "A", 0, 10, normal);
    let mut out = Vec::new();
    a.on_report_request(SITE_REQUEST, &h, &mut out);
    let assets: Vec<&str> = reports(&out).iter().map(|r| r.asset.as_str()).collect();
    assert_eq!(assets, ["A", "B"]);
    assert!(
        matches!(out.last(), Some(Output::SiteReport { markdown }) if markdown.contains("plant"))
    );
    assert_eq!(Counters::get(&a.counters().site_reports), 1);
}

#[test]
fn scheduled_reports_cover_every_asset_and_the_site() {
    let mut opts = Options::new("s");
    opts.report_interval_s = 10;
    let (mut a, h) = (machine(opts), Mem::default());
    let mut out = Vec::new();
    for t in [0, 5, 9] {
        a.on_tick(T0 + t * S, &h, &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
    a.on_tick(T0 + 10 * S, &h, &mut out);
    assert_eq!(reports(&out).len(), 2);
    assert_eq!(site_reports(&out), 1);
    out.clear();
    a.on_tick(T0 + 15 * S, &h, &mut out);
    assert!(out.is_empty(), "the next report is due 10 s later");
    a.on_tick(T0 + 20 * S, &h, &mut out);
    assert_eq!(reports(&out).len(), 2);
}

#[test]
fn no_readings_open_a_dropout_on_tick() {
    let (mut a, mut h) = (machine(Options::new("s")), Mem::default());
    feed(&mut a, &mut h, "B", 0, 40, normal);
    let mut out = Vec::new();
    a.on_tick(T0 + 45 * S, &h, &mut out);
    assert!(explains(&out).is_empty(), "a 6 s gap is no dropout");
    a.on_tick(T0 + 70 * S, &h, &mut out);
    let req = explains(&out);
    assert_eq!(req.len(), 1, "{out:?}");
    assert_eq!(req[0].event.kind, AnomalyKind::Dropout);
    assert_eq!(&*req[0].event.sensor.asset, "B");
}

#[test]
fn events_and_cards_are_bounded_and_each_event_kept_once() {
    let mut opts = Options::new("s");
    opts.max_cards = 2;
    let (mut a, mut h) = (machine(opts), Mem::default());
    feed(&mut a, &mut h, "A", 0, 60, normal);
    let out = feed(&mut a, &mut h, "A", 60, 70, |_| 95.0);
    let req = explains(&out)[0].clone();
    assert_eq!(a.events().len(), 1);
    feed(&mut a, &mut h, "A", 70, 120, normal);
    assert_eq!(
        a.events().len(),
        1,
        "the closed phase replaces the opened one"
    );
    assert_eq!(a.events()[0].phase, Phase::Closed);
    let mut out = Vec::new();
    for _ in 0..3 {
        a.on_explained(req.explain(a.explainer(), None), &mut out);
    }
    assert_eq!(a.cards().len(), 2);
    assert_eq!(out.len(), 3, "every card is an alert");
}

#[test]
fn readings_of_other_assets_are_ignored() {
    let (mut a, mut h) = (machine(Options::new("s")), Mem::default());
    feed(&mut a, &mut h, "X", 0, 60, normal);
    let out = feed(&mut a, &mut h, "X", 60, 70, |_| 95.0);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(a.assets().collect::<Vec<_>>(), ["A", "B"]);
}
