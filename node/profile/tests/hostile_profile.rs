//! The profile parser (fuzz target `config`) as a bounded property test: arbitrary text and
//! mutated copies of a real profile parse or give an error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_profile::Profile;
use proptest::prelude::*;

const PUMP: &str = include_str!("../../../pipelines/centrifugal-pump.toml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = Profile::from_toml_str(&text, "prop");
    }

    #[test]
    fn mutated_profiles_never_panic(
        edits in proptest::collection::vec((0usize..1 << 16, prop_oneof![
            Just("-1e308"), Just("1e400"), Just("0"), Just("nan"), Just("\"\""), Just("["),
            Just("-"), Just("99999999999999999999"), Just("\"\\u0000\""),
        ]), 1..6),
    ) {
        let mut t = PUMP.to_string();
        for (at, s) in edits {
            // Replace the number or token at a char boundary near `at`.
            let mut i = at % t.len();
            while !t.is_char_boundary(i) {
                i -= 1;
            }
            let end = t[i..].find(['\n', ',', ']']).map_or(t.len(), |e| i + e);
            t.replace_range(i..end, s);
        }
        let _ = Profile::from_toml_str(&t, "prop");
    }
}
