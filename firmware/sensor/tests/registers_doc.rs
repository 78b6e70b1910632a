//! Keeps `firmware/sensor/REGISTERS.md` equal to the document generated from the code's
//! register constants. Set `MILLWRIGHT_WRITE_REGISTERS_MD=1` to rewrite the file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

#[test]
fn registers_md_matches_code() {
    let mut doc = String::new();
    millwright_sensor::registers::write_markdown(&mut doc).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("REGISTERS.md");
    if std::env::var_os("MILLWRIGHT_WRITE_REGISTERS_MD").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if on_disk != doc {
        let line = on_disk
            .lines()
            .zip(doc.lines())
            .position(|(a, b)| a != b)
            .map_or(on_disk.lines().count().min(doc.lines().count()) + 1, |i| {
                i + 1
            });
        panic!(
            "{} differs from registers::write_markdown at line {line}; regenerate with \
             MILLWRIGHT_WRITE_REGISTERS_MD=1 cargo test -p millwright-sensor --test registers_doc",
            path.display()
        );
    }
    // The document must name every register with its address.
    for d in millwright_sensor::registers::all_defs() {
        assert!(
            doc.contains(&format!("| {} | `{}` |", d.address, d.name)),
            "{}",
            d.name
        );
    }
}
