//! Reading a profile: TOML text or a file in, a validated [`Profile`] or a [`ProfileError`] out.
//! The only I/O of the crate is [`Profile::load`] reading one file; the checks themselves live
//! in `validate`.

use crate::Profile;
use millwright_core::ValidationError;
use std::path::Path;

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("profile {path}: cannot read: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown / missing / mistyped keys.
    #[error("profile {origin}: {message}")]
    Syntax {
        /// File name or other origin.
        origin: String,
        /// The parser's message (with line and key).
        message: String,
    },
    /// The TOML parsed but its content is inconsistent; every problem is listed.
    #[error("profile {origin}: {} problem(s):\n{}", errors.len(), list(errors))]
    Invalid {
        /// File name or other origin.
        origin: String,
        /// Every problem with its path.
        errors: Vec<ValidationError>,
    },
}

fn list(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Profile {
    /// Parses and validates a profile from TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let errors = p.validate();
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(ProfileError::Invalid {
                origin: origin.to_string(),
                errors,
            })
        }
    }

    /// Reads, parses and validates a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LevelSpec;
    use millwright_core::AnomalyKind;

    const GOOD: &str = r#"
name = "t"
[[signals]]
name = "temp_c"
unit = "°C"
normal = [20.0, 60.0]
limits = { max = 90.0 }
detect.level = {}
detect.gap = { after_s = 10 }
[[signals]]
name = "vib_mm_s"
unit = "mm/s"
[[correlations]]
name = "g"
signals = ["temp_c", "vib_mm_s"]
directions = ["up", "up"]
[[failure_modes]]
id = "hot"
title = "Overheating"
symptoms = [{ signal = "temp_c", direction = "up", kinds = ["drift"] }]
causes = ["fan"]
actions = [{ text = "check fan", urgency = "high" }]
"#;

    #[test]
    fn good_profile_parses() {
        let p = Profile::from_toml_str(GOOD, "t.toml").unwrap();
        assert_eq!(p.signals.len(), 2);
        assert_eq!(p.signals[0].detect.level, Some(LevelSpec::default()));
        assert_eq!(
            p.failure_modes[0].symptoms[0].kinds,
            vec![AnomalyKind::Drift]
        );
    }

    #[test]
    fn unknown_key_is_a_syntax_error_naming_the_key() {
        let bad = GOOD.replace("unit = \"°C\"", "unit = \"°C\"\ncolour = 3");
        let err = Profile::from_toml_str(&bad, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour") && err.contains("t.toml"), "{err}");
    }

    #[test]
    fn every_semantic_error_is_reported_with_its_path() {
        let bad = GOOD
            .replace("normal = [20.0, 60.0]", "normal = [60.0, 20.0]")
            .replace("after_s = 10", "after_s = -1")
            .replace(
                "signals = [\"temp_c\", \"vib_mm_s\"]",
                "signals = [\"temp_c\", \"nope\"]",
            )
            .replace(
                "signal = \"temp_c\", direction",
                "signal = \"ghost\", direction",
            );
        let Err(ProfileError::Invalid { errors, .. }) = Profile::from_toml_str(&bad, "t.toml")
        else {
            panic!("expected invalid");
        };
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"signals[0](temp_c).normal"), "{paths:?}");
        assert!(
            paths.contains(&"signals[0](temp_c).detect.gap.after_s"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"correlations[0](g).signals[1]"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"failure_modes[0](hot).symptoms[0].signal"),
            "{paths:?}"
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn states_and_dependencies_are_checked() {
        let good = GOOD.replace(
            "[[signals]]\nname = \"vib_mm_s\"\nunit = \"mm/s\"",
            "[[signals]]\nname = \"vib_mm_s\"\nunit = \"mm/s\"\ndepends_on = [\"temp_c\"]\ndepends_lag_s = 60",
        ) + "[states]\nsignal = \"temp_c\"\nrunning_above = 5.0\n";
        let p = Profile::from_toml_str(&good, "t.toml").unwrap();
        assert_eq!(p.signals[1].depends_on, vec!["temp_c".to_string()]);
        assert_eq!(p.states.as_ref().map(|s| s.settle_s), Some(120.0));
        let bad = good
            .replace(
                "depends_on = [\"temp_c\"]",
                "depends_on = [\"vib_mm_s\", \"ghost\"]",
            )
            .replace(
                "signal = \"temp_c\"\nrunning_above",
                "signal = \"nope\"\nrunning_above",
            )
            .replace("depends_lag_s = 60", "depends_lag_s = -1");
        let Err(ProfileError::Invalid { errors, .. }) = Profile::from_toml_str(&bad, "t.toml")
        else {
            panic!("expected invalid");
        };
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(
            paths.contains(&"signals[1](vib_mm_s).depends_on[0]"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"signals[1](vib_mm_s).depends_on[1]"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"signals[1](vib_mm_s).depends_lag_s"),
            "{paths:?}"
        );
        assert!(paths.contains(&"states.signal"), "{paths:?}");
        // A driver needs a normal range to be scaled.
        let no_range = good
            .replace(
                "[[signals]]\nname = \"temp_c\"",
                "[[signals]]\nname = \"aux\"\nunit = \"u\"\n[[signals]]\nname = \"temp_c\"",
            )
            .replace("depends_on = [\"temp_c\"]", "depends_on = [\"aux\"]");
        let err = Profile::from_toml_str(&no_range, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a normal range"), "{err}");
    }
}
