//! `millwright detect` on hostile CSV: arbitrary bytes, non-ASCII and garbage timestamps,
//! absurd numbers. Never a panic; every data row gives one output row; a bad row is counted
//! and named with its line number on the error stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_detect::backtest::{parse_timestamp, run, BacktestOptions};
use millwright_profile::Profile;
use proptest::prelude::*;
use std::path::Path;

fn profile() -> Profile {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/centrifugal-pump.toml");
    Profile::load(&p).unwrap()
}

fn opts() -> BacktestOptions {
    BacktestOptions {
        asset: "X".into(),
        signals: vec!["bearing_temp_c".into()],
        ..BacktestOptions::default()
    }
}

fn timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        (1_600_000_000i64..1_900_000_000).prop_map(|t| t.to_string()),
        Just("2024-05-01T12:00:00Z".to_string()),
        Just("2024-05-01T12:00:00.250+02:00".to_string()),
        Just("2024-13-45T99:99:99Z".to_string()),
        Just("２０２４-05-01T12:00:00Z".to_string()),
        Just("2024-05-01T12:00:00+ü".to_string()),
        Just("-".to_string()),
        Just("1e999".to_string()),
        Just("-9e18".to_string()),
        Just("\u{feff}1714564800".to_string()),
        "\\PC{0,24}",
        "[0-9TZ:.+-]{0,30}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1e3..1e3f64).prop_map(|v| format!("{v}")),
        Just("1.7976931348623157e308".to_string()),
        Just("-1.7976931348623157e308".to_string()),
        Just("5e-324".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just(String::new()),
        "\\PC{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_timestamp_text_parses_or_errors(s in "\\PC{0,40}") {
        let _ = parse_timestamp(&s);
    }

    #[test]
    fn garbage_rows_are_counted_with_their_line_never_a_panic(
        rows in proptest::collection::vec((timestamp(), value()), 1..60),
    ) {
        let mut input = b"timestamp,bearing_temp_c\n".to_vec();
        let mut data_rows = 0;
        for (t, v) in &rows {
            let line = format!("{t},{v}");
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            input.extend_from_slice(line.as_bytes());
            input.push(b'\n');
            data_rows += 1;
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let sum = run(&profile(), &opts(), &input[..], &mut out, &mut err, None).unwrap();
        let out = String::from_utf8(out).unwrap();
        let err = String::from_utf8_lossy(&err);
        prop_assert_eq!(out.lines().count(), 1 + sum.rows as usize);
        prop_assert!(sum.rows as usize <= data_rows);
        prop_assert_eq!(sum.bad_rows, sum.bad_columns + sum.bad_timestamp + sum.bad_value + sum.time_backwards);
        if sum.bad_timestamp > 0 {
            prop_assert!(err.contains("line "), "{}", err);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut input = b"timestamp,bearing_temp_c\n".to_vec();
        input.extend(bytes);
        let _ = run(&profile(), &opts(), &input[..], &mut Vec::new(), &mut Vec::new(), None);
    }
}

#[test]
fn a_non_ascii_timestamp_is_a_bad_row_named_by_its_line() {
    let input = "timestamp,bearing_temp_c\n1714564800,50\n２０２４-05-01,50\n1714564802,50\n";
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let sum = run(
        &profile(),
        &opts(),
        input.as_bytes(),
        &mut out,
        &mut err,
        None,
    )
    .unwrap();
    assert_eq!((sum.rows, sum.bad_timestamp), (3, 1));
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("line 3"), "{err}");
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 4);
}
