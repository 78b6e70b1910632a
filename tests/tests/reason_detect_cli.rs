//! End-to-end tests of `millwright detect` (back-testing): the real binary reads CSV on stdin
//! and writes exactly one `timestamp,anomaly_score,flag` row per input row; a row it cannot
//! score keeps the previous score, is flagged and reported with its line number (or stops the
//! run with --strict); small backward time steps are scored as clock corrections.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn detect(args: &[&str], input: &str) -> (i32, String, String) {
    detect_bytes(args, input.as_bytes())
}

fn detect_bytes(args: &[&str], input: &[u8]) -> (i32, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new(millwright_e2e::millwright_bin())
        .arg("detect")
        .args(args)
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Deterministic noise in [-0.5, 0.5).
fn noise(i: u64) -> f64 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    (x as f64 / (1u64 << 53) as f64) - 0.5
}

#[test]
fn one_signal_step_is_scored_row_by_row_and_bad_rows_are_flagged() {
    let mut csv = String::from("timestamp,value\n");
    for i in 0..1200u64 {
        let v = 60.0 + noise(i) + if i >= 1000 { 6.0 } else { 0.0 };
        // Alternate timestamp forms: epoch seconds and RFC 3339.
        if i % 2 == 0 {
            csv.push_str(&format!("{},{v:.2}\n", 1_714_564_800 + i));
        } else {
            let s = i % 60;
            let m = (i / 60) % 60;
            csv.push_str(&format!("2024-05-01T12:{m:02}:{s:02}Z,{v:.2}\n"));
        }
    }
    csv.push_str("2024-05-01T13:00:00Z,not-a-number\n");
    let (code, out, err) = detect(
        &[
            "--profile",
            "centrifugal-pump",
            "--signal",
            "bearing_temp_c",
        ],
        &csv,
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows[0], "timestamp,anomaly_score,flag");
    assert_eq!(rows.len(), 1 + 1201, "one row per input row");
    assert!(rows[1201].ends_with(",bad_value"), "{}", rows[1201]);
    let score = |r: &str| r.split(',').nth(1).unwrap().parse::<f64>().unwrap();
    assert!(
        rows[1..1000].iter().all(|r| score(r) < 0.5),
        "no alarm before the step"
    );
    assert!(
        rows[1001..1006].iter().any(|r| score(r) >= 0.5),
        "step flagged within 5 rows: {:?}",
        &rows[1000..1006]
    );
    assert!(
        rows[1].starts_with("1714564800,"),
        "timestamps echoed: {}",
        rows[1]
    );
    assert!(
        err.contains("line 1202:") && err.contains("not-a-number"),
        "{err}"
    );
    assert!(err.contains("1 flagged and not scored"), "{err}");
    assert!(err.contains("bad_value 1"), "{err}");

    let (code, _, err) = detect(
        &[
            "--profile",
            "centrifugal-pump",
            "--signal",
            "bearing_temp_c",
            "--strict",
        ],
        &csv,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 1202"), "{err}");
}

#[test]
fn multi_column_input_uses_the_header_names_and_the_correlation_groups() {
    let mut csv = String::from("time,vibration_rms_mm_s,bearing_temp_c\n");
    for i in 0..1500u64 {
        // Both rise by about 4σ from row 1000.
        let up = if i >= 1000 { 1.0 } else { 0.0 };
        let vib = 1.3 + 0.05 * noise(i) + up * 0.12;
        let tmp = 45.0 + 0.6 * noise(i + 7_777) + up * 0.7;
        csv.push_str(&format!(
            "{},{vib:.3},{tmp:.2}\n",
            (1_714_564_800 + i) * 1000
        ));
    }
    let (code, out, err) = detect(&["--profile", "centrifugal-pump"], &csv);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 1501);
    assert_eq!(rows[0], "time,anomaly_score,flag");
    let score = |r: &str| r.split(',').nth(1).unwrap().parse::<f64>().unwrap();
    assert!(rows[1..1000].iter().all(|r| score(r) < 0.5));
    assert!(
        rows[1000..1100].iter().any(|r| score(r) >= 0.5),
        "joint rise flagged"
    );

    let (code, _, err) = detect(&["--profile", "centrifugal-pump"], "1,2,3\n");
    assert_eq!(code, 1);
    assert!(err.contains("--signal"), "{err}");
}

#[test]
fn backward_timestamps_and_garbage_rows_give_exactly_one_row_each() {
    let mut csv: Vec<u8> = b"timestamp,bearing_temp_c\n".to_vec();
    let mut flags = Vec::new();
    for i in 0..1500i64 {
        let v = 55.0 + 0.3 * noise(i as u64);
        let t = 1_714_564_800 + i;
        let (line, flag): (Vec<u8>, &str) = match i {
            // A clock correction of 20 s (scored) and a jump back of two hours (flagged).
            600 => (
                format!("{},{v:.2}\n", t - 20).into_bytes(),
                "clock_correction",
            ),
            700 => (
                format!("{},{v:.2}\n", t - 7200).into_bytes(),
                "time_backwards",
            ),
            800 => (b"\xde\xad\xbe\xef,\xff\n".to_vec(), "bad_timestamp"),
            801 => (format!("{t},12,13\n").into_bytes(), "bad_columns"),
            802 => (format!("{t},inf\n").into_bytes(), "bad_value"),
            _ => (format!("{t},{v:.2}\n").into_bytes(), ""),
        };
        csv.extend_from_slice(&line);
        flags.push(flag);
    }
    let (code, out, err) = detect_bytes(&["--profile", "centrifugal-pump"], &csv);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 1 + 1500, "exactly one row per input row");
    for (i, (r, f)) in rows[1..].iter().zip(&flags).enumerate() {
        assert_eq!(r.split(',').nth(2), Some(*f), "row {i}: {r}");
    }
    assert!(
        rows[1..]
            .iter()
            .all(|r| r.split(',').nth(1).unwrap().parse::<f64>().unwrap() < 0.5),
        "normal data with bad rows raised an alarm"
    );
    assert!(err.contains("1 clock corrections scored"), "{err}");
    assert!(err.contains("time_backwards 1"), "{err}");
    assert!(err.contains("line 802:"), "{err}");
}
