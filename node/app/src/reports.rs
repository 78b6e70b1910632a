//! Maintenance reports of an asset, built from the local store, the period's anomaly events and
//! their explanation cards (shared by the running node and the demo).

use millwright_core::anomaly::{
    Anomaly, DataQuality, ExplanationCard, MaintenanceReport, ReportInput, SignalPeriodStats,
};
use millwright_profile::Profile;
use millwright_store::Store;

/// Builds the report of `asset` over `[from_ns, to_ns)` (whole history with `i64::MIN..MAX`).
pub fn asset_report(
    store: &Store,
    site: &str,
    asset: &str,
    profile: Option<&Profile>,
    range: (i64, i64),
    anomalies: &[Anomaly],
    cards: &[ExplanationCard],
) -> MaintenanceReport {
    let mut signals = Vec::new();
    let mut quality = DataQuality::default();
    let (mut from, mut to) = (i64::MAX, i64::MIN);
    for id in store.signals_of(asset) {
        if &*id.signal == millwright_core::schema::DEVICE_ONLINE_SIGNAL {
            if store.last(&id).is_some_and(|s| s.value < 0.5) {
                quality.devices_offline.push(asset.to_string());
            }
            continue;
        }
        let Some(st) = store.stats(&id, range.0, range.1) else {
            continue;
        };
        let h = store.health(&id).unwrap_or_default();
        quality.readings += st.count as u64 + st.not_good as u64;
        quality.bad_readings += st.not_good as u64;
        quality.longest_gap_s = quality.longest_gap_s.max(h.largest_gap_ns as f64 / 1e9);
        from = from.min(st.first_ts_ns);
        to = to.max(st.last_ts_ns);
        let spec = profile.and_then(|p| p.signal(&id.signal));
        signals.push(SignalPeriodStats {
            signal: id.signal.to_string(),
            unit: store.unit(&id).map(|u| u.to_string()).unwrap_or_default(),
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
    let input = ReportInput {
        site: site.into(),
        asset: asset.into(),
        profile: profile.map(|p| p.name.clone()).unwrap_or_default(),
        from_ns: from.min(to),
        to_ns: to.max(from.min(to)),
        signals,
        anomalies: anomalies.to_vec(),
        cards: cards.to_vec(),
        quality,
    };
    millwright_reason::build_report(&input, profile)
}
