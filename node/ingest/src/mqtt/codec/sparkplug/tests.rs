//! Unit tests of the Sparkplug B codec: births, aliases, datatypes, sequence gaps, rebirth
//! requests, deaths, bad input per reason, and arbitrary bytes (property tests).

use super::proto::{PropertySet, PropertyValue, PropertyValueValue};
use super::*;
use crate::mqtt::codec::{DecodeDefaults, PayloadFormat};

fn dec() -> Decoder {
    Decoder::new(
        PayloadFormat::SparkplugB,
        DecodeDefaults {
            max_payload_bytes: 1 << 20,
            ..Default::default()
        },
    )
}

fn tm(topic: &str) -> TopicMatch<'_> {
    TopicMatch {
        topic,
        asset: None,
        signal: None,
    }
}

fn metric(name: Option<&str>, alias: Option<u64>, datatype: u32, v: Option<MetricValue>) -> Metric {
    Metric {
        name: name.map(Into::into),
        alias,
        datatype: Some(datatype),
        value: v,
        ..Default::default()
    }
}

fn with_unit(mut m: Metric, unit: &str) -> Metric {
    m.properties = Some(PropertySet {
        keys: vec!["engUnit".into()],
        values: vec![PropertyValue {
            r#type: Some(12),
            is_null: None,
            value: Some(PropertyValueValue::StringValue(unit.into())),
        }],
    });
    m
}

fn payload(seq: Option<u64>, ts: u64, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(ts),
        metrics,
        seq,
        ..Default::default()
    }
    .encode_to_vec()
}

fn run(d: &mut Decoder, topic: &str, p: &[u8]) -> Result<Vec<Reading>, PayloadError> {
    let mut out = vec![];
    d.decode(tm(topic), p, 5_000_000_000, &mut out).map(|_| out)
}

fn nbirth(seq: u64, bd: u64) -> Vec<u8> {
    payload(
        Some(seq),
        1_000,
        vec![
            metric(
                Some("bdSeq"),
                None,
                dt::INT64,
                Some(MetricValue::LongValue(bd)),
            ),
            metric(
                Some("Node Control/Rebirth"),
                Some(0),
                dt::BOOLEAN,
                Some(MetricValue::BooleanValue(false)),
            ),
            with_unit(
                metric(
                    Some("Supply"),
                    Some(1),
                    dt::FLOAT,
                    Some(MetricValue::FloatValue(24.5)),
                ),
                "V",
            ),
        ],
    )
}

fn dbirth(seq: u64) -> Vec<u8> {
    payload(
        Some(seq),
        2_000,
        vec![
            with_unit(
                metric(
                    Some("Temp"),
                    Some(10),
                    dt::DOUBLE,
                    Some(MetricValue::DoubleValue(61.25)),
                ),
                "°C",
            ),
            metric(
                Some("Small"),
                Some(11),
                dt::INT8,
                Some(MetricValue::IntValue(0xFE)),
            ),
            metric(
                Some("Neg16"),
                Some(12),
                dt::INT16,
                Some(MetricValue::IntValue(0xFFFF_8000)),
            ),
            metric(
                Some("Neg32"),
                Some(13),
                dt::INT32,
                Some(MetricValue::IntValue(u32::MAX)),
            ),
            metric(
                Some("Big"),
                Some(14),
                dt::INT64,
                Some(MetricValue::LongValue((-5i64) as u64)),
            ),
            metric(
                Some("U16"),
                Some(15),
                dt::UINT16,
                Some(MetricValue::IntValue(65_535)),
            ),
            metric(
                Some("U64"),
                Some(16),
                dt::UINT64,
                Some(MetricValue::LongValue(1 << 40)),
            ),
            metric(
                Some("Run"),
                Some(17),
                dt::BOOLEAN,
                Some(MetricValue::BooleanValue(true)),
            ),
            metric(
                Some("Name"),
                Some(18),
                12,
                Some(MetricValue::StringValue("x".into())),
            ),
            metric(
                Some("Tbl"),
                Some(19),
                16,
                Some(MetricValue::DatasetValue(vec![8, 1])),
            ),
            metric(
                Some("Tpl"),
                Some(20),
                19,
                Some(MetricValue::TemplateValue(vec![])),
            ),
            Metric {
                is_null: Some(true),
                ..metric(Some("Spare"), Some(21), dt::DOUBLE, None)
            },
            metric(
                Some("Pump/Bearing/Temp"),
                Some(22),
                dt::FLOAT,
                Some(MetricValue::FloatValue(40.0)),
            ),
        ],
    )
}

fn find<'a>(out: &'a [Reading], asset: &str, signal: &str) -> &'a Reading {
    out.iter()
        .find(|r| &*r.sensor.asset == asset && &*r.sensor.signal == signal)
        .unwrap_or_else(|| panic!("no {asset}/{signal} in {out:?}"))
}

#[test]
fn births_give_values_units_datatypes_and_online() {
    let mut d = dec();
    let out = run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 3)).unwrap();
    // device_online + Supply; bdSeq and Node Control are protocol.
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(find(&out, "E1", DEVICE_ONLINE_SIGNAL).value, 1.0);
    let s = find(&out, "E1", "Supply");
    assert_eq!(
        (s.value, s.unit.symbol(), s.ts_ns),
        (24.5, "V", 1_000_000_000)
    );

    let out = run(&mut d, "spBv1.0/G/DBIRTH/E1/P1", &dbirth(1)).unwrap();
    assert_eq!(find(&out, "P1", DEVICE_ONLINE_SIGNAL).value, 1.0);
    let t = find(&out, "P1", "Temp");
    assert_eq!(
        (t.value, t.unit.symbol(), t.ts_ns),
        (61.25, "°C", 2_000_000_000)
    );
    assert_eq!(find(&out, "P1", "Small").value, -2.0);
    assert_eq!(find(&out, "P1", "Neg16").value, -32768.0);
    assert_eq!(find(&out, "P1", "Neg32").value, -1.0);
    assert_eq!(find(&out, "P1", "Big").value, -5.0);
    assert_eq!(find(&out, "P1", "U16").value, 65535.0);
    assert_eq!(find(&out, "P1", "U64").value, (1u64 << 40) as f64);
    assert_eq!(find(&out, "P1", "Run").value, 1.0);
    assert_eq!(find(&out, "P1", "Pump/Bearing/Temp").value, 40.0);
    assert_eq!(out.len(), 10, "{out:?}");
    let t = d.take_tally();
    assert_eq!(
        t.skipped(SkipReason::Unsupported),
        3,
        "string, dataset, template"
    );
    assert_eq!(t.skipped(SkipReason::Null), 1);
    assert_eq!(t.sequence_gaps, 0);
    assert!(d.take_outgoing().is_empty());
}

#[test]
fn data_by_alias_resolves_through_the_birth_with_metric_timestamps() {
    let mut d = dec();
    run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 0)).unwrap();
    run(&mut d, "spBv1.0/G/DBIRTH/E1/P1", &dbirth(1)).unwrap();
    let mut m = metric(
        None,
        Some(10),
        dt::DOUBLE,
        Some(MetricValue::DoubleValue(62.5)),
    );
    m.timestamp = Some(3_000);
    m.datatype = None;
    let p = payload(
        Some(2),
        2_500,
        vec![
            m,
            metric(None, Some(12), dt::INT16, Some(MetricValue::IntValue(7))),
            metric(
                Some("Run"),
                None,
                dt::BOOLEAN,
                Some(MetricValue::BooleanValue(false)),
            ),
        ],
    );
    let out = run(&mut d, "spBv1.0/G/DDATA/E1/P1", &p).unwrap();
    assert_eq!(out.len(), 3);
    let t = find(&out, "P1", "Temp");
    assert_eq!(
        (t.value, t.unit.symbol(), t.ts_ns),
        (62.5, "°C", 3_000_000_000)
    );
    assert_eq!(find(&out, "P1", "Neg16").ts_ns, 2_500_000_000);
    assert_eq!(find(&out, "P1", "Run").value, 0.0);
    // Node data.
    let p = payload(
        Some(3),
        2_600,
        vec![metric(
            None,
            Some(1),
            dt::FLOAT,
            Some(MetricValue::FloatValue(23.0)),
        )],
    );
    let out = run(&mut d, "spBv1.0/G/NDATA/E1", &p).unwrap();
    assert_eq!(find(&out, "E1", "Supply").value, 23.0);
    assert_eq!(d.take_tally().sequence_gaps, 0);
}

#[test]
fn a_gap_is_counted_and_answered_with_one_rebirth_request() {
    let mut d = dec();
    run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 0)).unwrap();
    run(&mut d, "spBv1.0/G/DBIRTH/E1/P1", &dbirth(1)).unwrap();
    let _ = d.take_tally();
    let data = |seq| {
        payload(
            Some(seq),
            9,
            vec![metric(
                None,
                Some(10),
                dt::DOUBLE,
                Some(MetricValue::DoubleValue(1.0)),
            )],
        )
    };
    run(&mut d, "spBv1.0/G/DDATA/E1/P1", &data(2)).unwrap();
    assert!(d.take_outgoing().is_empty());
    // 3 is lost: 4 is a gap; its data still counts.
    assert_eq!(
        run(&mut d, "spBv1.0/G/DDATA/E1/P1", &data(4))
            .unwrap()
            .len(),
        1
    );
    // 5 follows 4: no second gap. 9 is another gap, but within the rate limit.
    run(&mut d, "spBv1.0/G/DDATA/E1/P1", &data(5)).unwrap();
    run(&mut d, "spBv1.0/G/DDATA/E1/P1", &data(9)).unwrap();
    let t = d.take_tally();
    assert_eq!((t.sequence_gaps, t.rebirth_requests), (2, 1));
    let o = d.take_outgoing();
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].topic, "spBv1.0/G/NCMD/E1");
    let cmd = Payload::decode(o[0].payload.as_slice()).unwrap();
    assert_eq!(cmd.metrics[0].name.as_deref(), Some(REBIRTH_METRIC));
    assert_eq!(cmd.metrics[0].value, Some(MetricValue::BooleanValue(true)));
    assert_eq!(cmd.metrics[0].datatype, Some(dt::BOOLEAN));
    // Wrap-around 255 -> 0 is no gap.
    let mut d = dec();
    run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(254, 0)).unwrap();
    run(&mut d, "spBv1.0/G/NDATA/E1", &payload(Some(255), 9, vec![])).unwrap();
    run(&mut d, "spBv1.0/G/NDATA/E1", &payload(Some(0), 9, vec![])).unwrap();
    assert_eq!(d.take_tally().sequence_gaps, 0);
}

#[test]
fn data_before_birth_is_rejected_and_asks_for_rebirth() {
    let mut d = dec();
    let e = run(&mut d, "spBv1.0/G/NDATA/E9", &payload(Some(5), 9, vec![])).unwrap_err();
    assert_eq!(e.reason, RejectReason::NoBirth);
    assert!(e.to_string().contains("E9"), "{e}");
    assert_eq!(d.take_outgoing()[0].topic, "spBv1.0/G/NCMD/E9");
    // A device without DBIRTH on a born node.
    run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 0)).unwrap();
    let e = run(
        &mut d,
        "spBv1.0/G/DDATA/E1/P7",
        &payload(Some(1), 9, vec![]),
    )
    .unwrap_err();
    assert_eq!(e.reason, RejectReason::NoBirth);
    assert_eq!(d.take_outgoing().len(), 1);
}

#[test]
fn deaths_mark_node_and_devices_offline_and_stale_deaths_are_ignored() {
    let mut d = dec();
    run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 7)).unwrap();
    run(&mut d, "spBv1.0/G/DBIRTH/E1/P1", &dbirth(1)).unwrap();
    run(&mut d, "spBv1.0/G/DBIRTH/E1/P2", &dbirth(2)).unwrap();
    let out = run(
        &mut d,
        "spBv1.0/G/DDEATH/E1/P2",
        &payload(Some(3), 4_000, vec![]),
    )
    .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (&*out[0].sensor.asset, out[0].value, out[0].ts_ns),
        ("P2", 0.0, 4_000_000_000)
    );
    // An NDEATH of an older session (bdSeq 6) changes nothing.
    let death = |bd: u64| {
        Payload {
            metrics: vec![metric(
                Some("bdSeq"),
                None,
                dt::INT64,
                Some(MetricValue::LongValue(bd)),
            )],
            ..Default::default()
        }
        .encode_to_vec()
    };
    assert!(run(&mut d, "spBv1.0/G/NDEATH/E1", &death(6))
        .unwrap()
        .is_empty());
    assert_eq!(d.take_tally().stale_deaths, 1);
    let out = run(&mut d, "spBv1.0/G/NDEATH/E1", &death(7)).unwrap();
    let offline: Vec<_> = out
        .iter()
        .map(|r| (&*r.sensor.asset, r.value, r.ts_ns))
        .collect();
    assert_eq!(
        offline,
        vec![("E1", 0.0, 5_000_000_000), ("P1", 0.0, 5_000_000_000)]
    );
    // After the death, data is before a birth again.
    let e = run(&mut d, "spBv1.0/G/NDATA/E1", &payload(Some(4), 9, vec![])).unwrap_err();
    assert_eq!(e.reason, RejectReason::NoBirth);
}

#[test]
fn bad_input_is_counted_per_reason() {
    let mut d = dec();
    let good = nbirth(0, 0);
    let e = run(&mut d, "spBv1.0/G/NBIRTH/E1", &good[..good.len() - 3]).unwrap_err();
    assert_eq!(e.reason, RejectReason::Syntax, "truncated: {e}");
    for t in [
        "spBv1.0/G/NBIRTH",
        "spBv1.0/G/NOPE/E1",
        "other/G/NBIRTH/E1",
        "spBv1.0/G/DDATA/E1",
        "spBv1.0/G/NDATA/E1/D",
    ] {
        let e = run(&mut d, t, &good).unwrap_err();
        assert_eq!(e.reason, RejectReason::Schema, "{t}: {e}");
    }
    // Commands and host state carry no readings and are no error.
    assert!(run(&mut d, "spBv1.0/G/NCMD/E1", &good).unwrap().is_empty());
    assert!(run(&mut d, "spBv1.0/STATE/host", b"ONLINE")
        .unwrap()
        .is_empty());
    run(&mut d, "spBv1.0/G/NBIRTH/E1", &good).unwrap();
    run(&mut d, "spBv1.0/G/DBIRTH/E1/P1", &dbirth(1)).unwrap();
    let _ = d.take_tally();
    let p = payload(
        Some(2),
        9,
        vec![
            metric(
                None,
                Some(999),
                dt::DOUBLE,
                Some(MetricValue::DoubleValue(1.0)),
            ),
            metric(
                None,
                Some(10),
                dt::DOUBLE,
                Some(MetricValue::StringValue("hot".into())),
            ),
            metric(
                None,
                Some(10),
                dt::DOUBLE,
                Some(MetricValue::DoubleValue(f64::NAN)),
            ),
            metric(None, Some(10), dt::DOUBLE, None),
            metric(
                None,
                Some(10),
                12,
                Some(MetricValue::StringValue("hot".into())),
            ),
            metric(
                None,
                Some(10),
                dt::DOUBLE,
                Some(MetricValue::DoubleValue(2.0)),
            ),
        ],
    );
    let out = run(&mut d, "spBv1.0/G/DDATA/E1/P1", &p).unwrap();
    assert_eq!(out.len(), 1, "the good metric still arrives");
    assert_eq!(out[0].value, 2.0);
    let t = d.take_tally();
    assert_eq!(t.skipped(SkipReason::UnknownAlias), 1);
    assert_eq!(t.skipped(SkipReason::WrongType), 3);
    assert_eq!(t.skipped(SkipReason::NonFinite), 1);
}

#[test]
fn metric_folder_and_edge_node_device_assets() {
    let mut d = Decoder::new(
        PayloadFormat::SparkplugB,
        DecodeDefaults {
            max_payload_bytes: 1 << 20,
            sparkplug: SparkplugOptions {
                asset: AssetFrom::MetricFolder,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 0)).unwrap();
    let out = run(&mut d, "spBv1.0/G/DBIRTH/E1/P1", &dbirth(1)).unwrap();
    assert_eq!(find(&out, "Pump", "Bearing/Temp").value, 40.0);
    assert_eq!(
        find(&out, "P1", "Temp").value,
        61.25,
        "short names keep the device"
    );
    let mut d = Decoder::new(
        PayloadFormat::SparkplugB,
        DecodeDefaults {
            max_payload_bytes: 1 << 20,
            sparkplug: SparkplugOptions {
                asset: AssetFrom::EdgeNodeDevice,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 0)).unwrap();
    let out = run(&mut d, "spBv1.0/G/DBIRTH/E1/P1", &dbirth(1)).unwrap();
    assert_eq!(find(&out, "E1/P1", "Temp").value, 61.25);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let mut d = dec();
        for t in ["spBv1.0/G/NBIRTH/E1", "spBv1.0/G/DBIRTH/E1/D", "spBv1.0/G/DDATA/E1/D", "spBv1.0/G/NDATA/E1", "spBv1.0/G/NDEATH/E1"] {
            let _ = run(&mut d, t, &bytes);
        }
    }

    #[test]
    fn mutated_valid_payloads_never_panic(flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..16), cut in 0usize..4096) {
        let mut d = dec();
        let _ = run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 0));
        let mut b = dbirth(1);
        for (i, x) in flips {
            let n = b.len();
            b[i % n] ^= x;
        }
        b.truncate(cut.max(1));
        let _ = run(&mut d, "spBv1.0/G/DBIRTH/E1/P1", &b);
        let _ = run(&mut d, "spBv1.0/G/DDATA/E1/P1", &b);
    }

    #[test]
    fn doubles_round_trip(v in proptest::num::f64::NORMAL, ts in 0u64..4_000_000_000_000) {
        let mut d = dec();
        run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 0)).unwrap();
        // Alias 1 was born Float; a DATA metric may leave out its datatype.
        let mut m = metric(None, Some(1), dt::DOUBLE, Some(MetricValue::DoubleValue(v)));
        m.datatype = None;
        m.timestamp = Some(ts);
        let out = run(&mut d, "spBv1.0/G/NDATA/E1", &payload(Some(1), 0, vec![m])).unwrap();
        proptest::prop_assert_eq!(out[0].value, v);
        proptest::prop_assert_eq!(out[0].ts_ns, ts as i64 * 1_000_000);
    }
}

#[test]
fn bad_metric_names_and_times_are_skipped_and_counted_the_rest_kept() {
    let mut d = Decoder::new(
        PayloadFormat::SparkplugB,
        DecodeDefaults {
            max_payload_bytes: 1 << 20,
            time_window: millwright_core::TimeWindow::from_secs(300, 0),
            ..Default::default()
        },
    );
    run(&mut d, "spBv1.0/G/NBIRTH/E1", &nbirth(0, 3)).unwrap();
    d.take_tally();
    let mut late = metric(
        Some("Late"),
        None,
        dt::DOUBLE,
        Some(MetricValue::DoubleValue(1.0)),
    );
    late.timestamp = Some(4_000_000_000_000);
    let p = payload(
        Some(1),
        1_500,
        vec![
            metric(
                Some("Good"),
                None,
                dt::DOUBLE,
                Some(MetricValue::DoubleValue(2.0)),
            ),
            metric(
                Some("Bad\nName"),
                None,
                dt::DOUBLE,
                Some(MetricValue::DoubleValue(3.0)),
            ),
            metric(
                Some("#hash"),
                None,
                dt::DOUBLE,
                Some(MetricValue::DoubleValue(3.0)),
            ),
            late,
        ],
    );
    let out = run(&mut d, "spBv1.0/G/DBIRTH/E1/P1", &p).unwrap();
    assert!(out.iter().any(|r| &*r.sensor.signal == "Good"), "{out:?}");
    assert!(out.iter().all(|r| !r.sensor.signal.contains('\n')
        && !r.sensor.signal.starts_with('#')
        && &*r.sensor.signal != "Late"));
    let t = d.take_tally();
    assert_eq!(t.skipped(SkipReason::BadName), 2);
    assert_eq!(t.skipped(SkipReason::BadTime), 1);
}
