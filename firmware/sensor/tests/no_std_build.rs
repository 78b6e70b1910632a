//! Proves the crate builds without `std`: (1) its normal dependency tree is exactly
//! millwright-sensor → millwright-drivers → embedded-hal; (2) a `#![no_std]` static library
//! with its own `#[panic_handler]` (firmware/sensor/nostd-check) links against it — that link
//! fails with "duplicate lang item" if any crate in the graph pulls in `std`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn cargo() -> Command {
    Command::new(env!("CARGO"))
}

#[test]
fn normal_dependency_tree_is_no_std_only() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = cargo()
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["-p", "millwright-sensor"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = ["embedded-hal", "millwright-drivers", "millwright-sensor"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, want, "unexpected normal dependencies");
}

#[test]
fn links_into_a_no_std_library_with_own_panic_handler() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("nostd-check");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("nostd-check");
    let out = cargo()
        .args(["build", "--offline", "--quiet"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "no_std build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
