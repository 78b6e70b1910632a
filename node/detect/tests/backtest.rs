//! The back-test (`millwright detect`) lines up with its input: exactly one output row per
//! input data row, whatever the row holds — backward timestamps (small ones scored as clock
//! corrections, large ones flagged), bad numbers, wrong column counts, non-UTF-8 garbage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::rng::SplitMix64;
use millwright_detect::backtest::{run, BacktestOptions};
use millwright_profile::Profile;
use std::path::Path;

fn profile(name: &str) -> Profile {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../pipelines")
        .join(format!("{name}.toml"));
    Profile::load(&p).unwrap()
}

fn opts(signals: &[&str]) -> BacktestOptions {
    BacktestOptions {
        asset: "X".into(),
        signals: signals.iter().map(|s| s.to_string()).collect(),
        ..BacktestOptions::default()
    }
}

#[test]
fn every_input_row_gives_one_output_row_with_its_flag() {
    let p = profile("centrifugal-pump");
    let mut rng = SplitMix64::new(1);
    let mut input: Vec<u8> = b"timestamp,bearing_temp_c\n".to_vec();
    // (expected flag, whether the row is scored)
    let mut want: Vec<&str> = Vec::new();
    let t0 = 1_714_564_800i64;
    for i in 0..2000i64 {
        let v = 50.0 + 0.2 * rng.normal();
        let (line, flag): (Vec<u8>, &str) = match i {
            500 => (
                format!("{},{v:.2}\n", t0 + i - 30).into_bytes(),
                "clock_correction",
            ),
            700 => (
                format!("{},{v:.2}\n", t0 + i - 7200).into_bytes(),
                "time_backwards",
            ),
            900 => (format!("{},abc\n", t0 + i).into_bytes(), "bad_value"),
            901 => (format!("{},NaN\n", t0 + i).into_bytes(), "bad_value"),
            1000 => (b"\xff\xfe\x00garbage,\xc3\x28\n".to_vec(), "bad_timestamp"),
            1001 => ("zeit,über\n".as_bytes().to_vec(), "bad_timestamp"),
            1100 => (format!("{},1,2\n", t0 + i).into_bytes(), "bad_columns"),
            1200 => (format!("{}\n", t0 + i).into_bytes(), "bad_columns"),
            1300 => (b"9999999999999999999999999,1\n".to_vec(), "bad_timestamp"),
            _ => (format!("{},{v:.2}\n", t0 + i).into_bytes(), ""),
        };
        input.extend_from_slice(&line);
        want.push(flag);
    }
    // Comments and empty lines are not data rows.
    input.extend_from_slice(b"# a comment\n\n");
    let mut out = Vec::new();
    let mut err = Vec::new();
    let sum = run(&p, &opts(&[]), &input[..], &mut out, &mut err, None).unwrap();
    let out = String::from_utf8(out).unwrap();
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows[0], "timestamp,anomaly_score,flag");
    assert_eq!(rows.len(), 1 + want.len(), "one output row per input row");
    for (i, (row, flag)) in rows[1..].iter().zip(&want).enumerate() {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(cols.len(), 3, "row {i}: {row}");
        assert_eq!(cols[2], *flag, "row {i}: {row}");
        let score: f64 = cols[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&score), "row {i}: {row}");
    }
    // An unscored row carries the previous row's score.
    for i in [700usize, 900, 901, 1000, 1001, 1100, 1200, 1300] {
        let score = |r: &str| r.split(',').nth(1).unwrap().to_string();
        assert_eq!(score(rows[i + 1]), score(rows[i]), "row {i}");
    }
    assert_eq!(sum.rows, 2000);
    assert_eq!(sum.scored, 2000 - 8);
    assert_eq!(sum.bad_rows, 8);
    assert_eq!(
        (
            sum.bad_value,
            sum.bad_timestamp,
            sum.bad_columns,
            sum.time_backwards,
            sum.clock_corrections
        ),
        (2, 3, 2, 1, 1)
    );
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("line 702:") && err.contains("time_backwards"),
        "{err}"
    );
    assert!(
        err.contains("line 902:") && err.contains("bad_value"),
        "{err}"
    );
    // Normal data around the bad rows stays quiet.
    assert!(rows[1..].iter().filter(|r| r.contains(",1.0000,")).count() == 0);
}

#[test]
fn random_bytes_never_break_the_back_test() {
    let p = profile("electric-motor");
    let mut rng = SplitMix64::new(7);
    for round in 0..50 {
        let mut input: Vec<u8> = b"t,winding_temp_c,motor_current_a\n".to_vec();
        let mut data_rows = 0;
        for i in 0..200u64 {
            if rng.next_f64() < 0.3 {
                let n = (rng.next_u64() % 40) as usize;
                let mut junk: Vec<u8> = (0..n).map(|_| (rng.next_u64() % 256) as u8).collect();
                junk.retain(|b| *b != b'\n' && *b != b'\r');
                let first_non_space = junk.iter().position(|b| !b.is_ascii_whitespace());
                let is_data = match first_non_space {
                    None => false,
                    Some(k) => junk[k] != b'#',
                };
                if is_data {
                    data_rows += 1;
                }
                input.extend_from_slice(&junk);
            } else {
                let back = if rng.next_f64() < 0.05 { 5000 } else { 0 };
                input.extend_from_slice(
                    format!(
                        "{},{:.2},{:.2}",
                        1_714_564_800 + i as i64 - back,
                        80.0 + rng.normal(),
                        110.0 + rng.normal()
                    )
                    .as_bytes(),
                );
                data_rows += 1;
            }
            input.push(b'\n');
        }
        let mut out = Vec::new();
        let sum = run(&p, &opts(&[]), &input[..], &mut out, std::io::sink(), None)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let rows = String::from_utf8(out).unwrap().lines().count();
        assert_eq!(rows, 1 + data_rows, "round {round}");
        assert_eq!(sum.rows as usize, data_rows, "round {round}");
    }
}
