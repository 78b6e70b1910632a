//! Fuzz target: the back-test CSV reader (`millwright detect`) on arbitrary bytes, with the
//! centrifugal-pump profile; and the timestamp parser on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use millwright_detect::backtest::{parse_timestamp, run, BacktestOptions};
use std::sync::OnceLock;

static PROFILE: OnceLock<Option<millwright_profile::Profile>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_timestamp(s);
    }
    let profile = PROFILE.get_or_init(|| {
        millwright_profile::Profile::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../pipelines/centrifugal-pump.toml"
        )))
        .ok()
    });
    let Some(p) = profile else { return };
    let opts = BacktestOptions {
        asset: "X".into(),
        signals: vec!["bearing_temp_c".into()],
        ..BacktestOptions::default()
    };
    let mut input = b"timestamp,bearing_temp_c\n".to_vec();
    input.extend_from_slice(data);
    let _ = run(p, &opts, &input[..], std::io::sink(), std::io::sink(), None);
});
