//! Fact selection for maintenance reports: which signals of an asset, their statistics over the
//! period, units, profile ranges and the data-quality summary, read through
//! [`millwright_core::History`] into a plain [`ReportInput`].
//!
//! Only reading and selecting live here; the report itself is built by [`crate::report`].
//! No clock, no store type, no I/O: the caller passes the history and the period.

use millwright_core::history::DEVICE_ONLINE_SIGNAL;
use millwright_core::{
    Anomaly, DataQuality, ExplanationCard, History, Incident, MaintenanceReport, ReportInput,
    SignalPeriodStats,
};
use millwright_profile::Profile;

/// Selects the facts of the report of `asset` over `[range.0, range.1)` (the whole history
/// with `(i64::MIN, i64::MAX)`): every signal's statistics with its unit and profile ranges,
/// the data quality (bad readings, longest gap, offline devices), the given anomaly events and
/// their incidents and the cards.
pub fn select_input(
    history: &dyn History,
    site: &str,
    asset: &str,
    profile: Option<&Profile>,
    range: (i64, i64),
    (anomalies, incidents): (&[Anomaly], &[Incident]),
    cards: &[ExplanationCard],
) -> ReportInput {
    let mut signals = Vec::new();
    let mut quality = DataQuality::default();
    let (mut from, mut to) = (i64::MAX, i64::MIN);
    for id in history.signals_of(asset) {
        if &*id.signal == DEVICE_ONLINE_SIGNAL {
            if history.last(&id).is_some_and(|s| s.value < 0.5) {
                quality.devices_offline.push(asset.to_string());
            }
            continue;
        }
        let Some(st) = history.stats(&id, range.0, range.1) else {
            continue;
        };
        let h = history.health(&id).unwrap_or_default();
        quality.readings += st.count as u64 + st.not_good as u64;
        quality.bad_readings += st.not_good as u64;
        quality.longest_gap_s = quality.longest_gap_s.max(h.largest_gap_ns as f64 / 1e9);
        from = from.min(st.first_ts_ns);
        to = to.max(st.last_ts_ns);
        let spec = profile.and_then(|p| p.signal(&id.signal));
        signals.push(SignalPeriodStats {
            signal: id.signal.to_string(),
            unit: history.unit(&id).map(|u| u.to_string()).unwrap_or_default(),
            count: st.count as u64,
            last: Some(st.last),
            last_ts_ns: Some(st.last_ts_ns),
            min: Some(st.min),
            max: Some(st.max),
            mean: Some(st.mean),
            normal: spec.and_then(|s| s.normal),
            limits: spec.map(|s| s.limits).unwrap_or_default(),
        });
    }
    ReportInput {
        site: site.into(),
        asset: asset.into(),
        profile: profile.map(|p| p.name.clone()).unwrap_or_default(),
        from_ns: from.min(to),
        to_ns: to.max(from.min(to)),
        signals,
        anomalies: anomalies.to_vec(),
        cards: cards.to_vec(),
        incidents: incidents.to_vec(),
        quality,
    }
}

/// The report of `asset` from history: [`select_input`] then [`crate::build_report`].
pub fn asset_report(
    history: &dyn History,
    site: &str,
    asset: &str,
    profile: Option<&Profile>,
    range: (i64, i64),
    events: (&[Anomaly], &[Incident]),
    cards: &[ExplanationCard],
) -> MaintenanceReport {
    let input = select_input(history, site, asset, profile, range, events, cards);
    crate::build_report(&input, profile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_core::history::{Sample, SensorHealth, Stats};
    use millwright_core::{Quality, SensorId, Unit};

    /// A history of hand-made answers: one asset `A` with a temperature and a device status.
    struct Fixed {
        online: f64,
    }

    impl History for Fixed {
        fn signals_of(&self, asset: &str) -> Vec<SensorId> {
            if asset == "A" {
                vec![
                    SensorId::new("A", "bearing_temp_c"),
                    SensorId::new("A", DEVICE_ONLINE_SIGNAL),
                ]
            } else {
                Vec::new()
            }
        }
        fn unit(&self, _: &SensorId) -> Option<Unit> {
            Some(Unit::new("°C"))
        }
        fn last(&self, _: &SensorId) -> Option<Sample> {
            Some(Sample {
                ts_ns: 9,
                value: self.online,
                quality: Quality::Good,
            })
        }
        fn stats(&self, id: &SensorId, from: i64, _: i64) -> Option<Stats> {
            (&*id.signal == "bearing_temp_c" && from <= 1).then_some(Stats {
                count: 8,
                not_good: 2,
                min: 60.0,
                max: 75.0,
                mean: 64.0,
                std: 1.0,
                last: 75.0,
                last_ts_ns: 9,
                first_ts_ns: 1,
                first: 60.0,
            })
        }
        fn health(&self, _: &SensorId) -> Option<SensorHealth> {
            Some(SensorHealth {
                largest_gap_ns: 3_000_000_000,
                ..Default::default()
            })
        }
    }

    #[test]
    fn selects_signals_units_period_and_data_quality() {
        let h = Fixed { online: 0.0 };
        let i = select_input(&h, "s", "A", None, (i64::MIN, i64::MAX), (&[], &[]), &[]);
        assert_eq!((i.site.as_str(), i.asset.as_str()), ("s", "A"));
        assert_eq!(
            i.signals.len(),
            1,
            "device status is not a signal of the report"
        );
        let s = &i.signals[0];
        assert_eq!(
            (s.signal.as_str(), s.unit.as_str()),
            ("bearing_temp_c", "°C")
        );
        assert_eq!((s.count, s.last, s.max), (8, Some(75.0), Some(75.0)));
        assert_eq!((i.from_ns, i.to_ns), (1, 9));
        assert_eq!((i.quality.readings, i.quality.bad_readings), (10, 2));
        assert!((i.quality.longest_gap_s - 3.0).abs() < 1e-9);
        assert_eq!(i.quality.devices_offline, vec!["A".to_string()]);
        let online = select_input(
            &Fixed { online: 1.0 },
            "s",
            "A",
            None,
            (0, 5),
            (&[], &[]),
            &[],
        );
        assert!(online.quality.devices_offline.is_empty());
    }

    #[test]
    fn an_unknown_asset_or_empty_period_selects_nothing() {
        let h = Fixed { online: 1.0 };
        let i = select_input(&h, "s", "B", None, (i64::MIN, i64::MAX), (&[], &[]), &[]);
        assert!(i.signals.is_empty());
        assert_eq!((i.from_ns, i.to_ns), (i64::MIN, i64::MIN));
        let later = select_input(&h, "s", "A", None, (5, 10), (&[], &[]), &[]);
        assert!(later.signals.is_empty());
        let r = asset_report(&h, "s", "A", None, (i64::MIN, i64::MAX), (&[], &[]), &[]);
        assert_eq!(r.asset, "A");
    }
}
