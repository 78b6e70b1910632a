//! The simulated plant day against the trust criteria of issue 10, through the built binary's
//! `millwright bench plant` (the simulator and the analytics in process, on simulated time).
//!
//! Run it alone: `cargo test -p millwright --features bench --test plant_day -- --nocapture`.
//! Criteria (two seeds, one fault-free day of the three machines):
//! - every fault the simulator can inject on each machine gives exactly one incident, opened
//!   within [`DEADLINE_S`] of the onset, its first action from the diagnosed mode;
//! - it is diagnosed as the injected failure mode for at least 90 % of the (machine, fault)
//!   cases (the misses are named);
//! - the fault-free day has at most one incident per asset and none after a normal operating
//!   change (load or demand step, stop and restart, setpoint change).
//!
//! - `make demo`'s scenario (bearing wear on P-101, replayed in process as `millwright demo`
//!   runs it): one incident for the fault, diagnosed as bearing wear, its first action from
//!   that mode, and no incident on the other machines.
//!
//! Every failed criterion is listed in one message, with the measured figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::process::Command;

/// A fault must be detected within this many simulated seconds of its onset (the slowest
/// faults reach full severity after 1800 s).
const DEADLINE_S: u32 = 1800;
/// (machine, fault) cases: pump 7, motor 5, compressor 6.
const CASES: u64 = 18;

fn run_bench(extra: &[&str]) -> Value {
    let deadline = DEADLINE_S.to_string();
    let mut args = vec!["bench", "plant", "--deadline-s", &deadline, "--verbose"];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_millwright"))
        .args(&args)
        .output()
        .expect("running millwright bench plant");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bench plant failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    eprintln!("{stdout}");
    let line = stdout.lines().last().expect("one JSON line");
    serde_json::from_str(line).expect("the summary is JSON")
}

#[test]
fn simulated_plant_day_meets_the_trust_criteria() {
    let s = run_bench(&["--seeds", "1,2", "--days", "1"]);
    // The evaluation ran what it should.
    assert_eq!(s["fault_cases"].as_u64(), Some(CASES), "{s}");
    let faults = s["faults"].as_array().unwrap();
    assert_eq!(faults.len() as u64, CASES);
    let days = s["day"]["per_asset"].as_object().unwrap();
    assert_eq!(days.len(), 3, "a fault-free day of each machine: {s}");

    let mut failed: Vec<String> = Vec::new();
    for f in faults {
        let case = format!(
            "{}/{}",
            f["asset"].as_str().unwrap(),
            f["fault"].as_str().unwrap()
        );
        let seeds = f["seeds"].as_array().unwrap();
        assert_eq!(seeds.len(), 2, "{case}: one run per seed");
        for (k, seed) in seeds.iter().enumerate() {
            let n = f["incidents"][k].as_u64().unwrap();
            if n != 1 {
                let signals = &f["signals"][k];
                failed.push(format!(
                    "{case} seed {seed}: {n} incidents, not 1 {signals}"
                ));
            }
            match f["delay_s"][k].as_f64() {
                Some(d) if d <= f64::from(DEADLINE_S) => {}
                Some(d) => failed.push(format!(
                    "{case} seed {seed}: detected after {d} s (> {DEADLINE_S} s)"
                )),
                None => failed.push(format!("{case} seed {seed}: not detected")),
            }
            if n > 0 && f["first_action_in_mode"][k] != Value::Bool(true) {
                failed.push(format!(
                    "{case} seed {seed}: first action {} is not from the diagnosed mode {}",
                    f["first_action"][k], f["diagnosis"][k]
                ));
            }
        }
    }
    let share = s["diagnosed_right_share"].as_f64().unwrap();
    if share < 0.9 {
        failed.push(format!(
            "diagnosed as the injected mode in {} of {CASES} cases ({share}); misses: {}",
            s["diagnosed_right_cases"], s["misses"]
        ));
    }
    for (asset, d) in days {
        let per_day = d["per_day"].as_f64().unwrap();
        if per_day > 1.0 {
            failed.push(format!(
                "fault-free day: {asset} {per_day} incidents per day (> 1)"
            ));
        }
        let on_change = d["on_operating_change"].as_u64().unwrap();
        if on_change > 0 {
            failed.push(format!(
                "fault-free day: {asset} {on_change} incidents after a normal operating change"
            ));
        }
    }
    let before: Vec<String> = faults
        .iter()
        .map(|f| format!("{}/{} {}", f["asset"], f["fault"], f["before_onset"]))
        .collect();
    assert!(
        failed.is_empty(),
        "{} criteria failed:\n{}\nfault-free day, incidents by signal: {}\n\
         fault runs, incidents before the onset (not a criterion): {}",
        failed.len(),
        failed.join("\n"),
        s["day"]["by_signal"],
        before.join(", ")
    );
}

/// Today's measured figures as a floor, so a change that makes the analytics less trustworthy
/// fails — stricter than the criteria above where the analytics already do better. Measured on
/// 2026-12-01 (seeds 1 and 2): all 18 fault cases meet every criterion and are diagnosed right
/// (M-201 overheating was seen twice on seed 1 and diagnosed as lubrication on seed 2 until the
/// winding temperature's regression kept its shape over the day and a briefly stuck current
/// stopped blinding it); the slowest detection took 601 s; the fault-free day has no incident
/// at all (it had one: a false M-201 winding-temperature level shift at 16:31). Raise these as
/// the analytics improve; never lower them.
#[test]
fn simulated_plant_day_does_not_get_worse() {
    let s = run_bench(&["--seeds", "1,2", "--days", "1"]);
    assert_eq!(s["fault_cases"].as_u64(), Some(CASES), "{s}");
    let mut failed = Vec::new();
    let ok = s["fault_cases_ok"].as_u64().unwrap();
    if ok < CASES {
        failed.push(format!(
            "fault cases meeting every criterion: {ok} < {CASES}"
        ));
    }
    let right = s["diagnosed_right_cases"].as_u64().unwrap();
    if right < CASES {
        failed.push(format!(
            "cases diagnosed as the injected mode: {right} < {CASES}"
        ));
    }
    for f in s["faults"].as_array().unwrap() {
        for (k, d) in f["delay_s"].as_array().unwrap().iter().enumerate() {
            if !d.as_f64().is_some_and(|d| d <= f64::from(DEADLINE_S)) {
                failed.push(format!(
                    "{}/{} seed {}: not detected within {DEADLINE_S} s",
                    f["asset"], f["fault"], f["seeds"][k]
                ));
            }
        }
    }
    let mut total = 0;
    for (asset, d) in s["day"]["per_asset"].as_object().unwrap() {
        let n = d["incidents"].as_u64().unwrap();
        total += n;
        if n > 0 {
            failed.push(format!("fault-free day: {asset} {n} incidents (> 0)"));
        }
        let on_change = d["on_operating_change"].as_u64().unwrap();
        if on_change > 0 {
            failed.push(format!(
                "fault-free day: {asset} {on_change} incidents on an operating change"
            ));
        }
    }
    if total > 0 {
        failed.push(format!("fault-free day: {total} incidents in all (> 0)"));
    }
    assert!(failed.is_empty(), "{}\n{s}", failed.join("\n"));
}

#[test]
fn make_demo_scenario_gives_one_incident_diagnosed_right_and_none_elsewhere() {
    let s = run_bench(&["--days", "0", "--no-faults"]);
    let d = &s["demo"]["per_asset"];
    assert_eq!(d.as_object().map(|o| o.len()), Some(3), "{s}");
    let p = &d["P-101"];
    let mut failed = Vec::new();
    if p["incidents"] != 1 {
        failed.push(format!(
            "P-101: {} incidents, not 1 {}",
            p["incidents"], p["signals"]
        ));
    }
    if p["before_onset"] != 0 {
        failed.push(format!(
            "P-101: {} incidents before the onset",
            p["before_onset"]
        ));
    }
    if p["diagnosis"] != "bearing_wear" {
        failed.push(format!(
            "P-101: diagnosed {}, not bearing_wear",
            p["diagnosis"]
        ));
    }
    if p["first_action_in_mode"] != true {
        failed.push(format!(
            "P-101: first action {} not from {}",
            p["first_action"], p["diagnosis"]
        ));
    }
    match p["delay_s"].as_f64() {
        Some(x) if x <= f64::from(DEADLINE_S) => {}
        other => failed.push(format!("P-101: detected after {other:?} s")),
    }
    for asset in ["M-201", "C-301"] {
        if d[asset]["incidents"] != 0 {
            failed.push(format!(
                "{asset}: {} incidents without a fault {}",
                d[asset]["incidents"], d[asset]["signals"]
            ));
        }
    }
    assert_eq!(
        s["demo"]["ok"],
        failed.is_empty(),
        "the bench's verdict agrees: {s}"
    );
    assert!(
        failed.is_empty(),
        "make demo scenario:\n{}",
        failed.join("\n")
    );
}
