//! The `[ask]` section of the node's config: whether operator questions are served, their
//! limits (length, per-operator rate, open questions, answer timeout) and the access list
//! (`[[ask.acl]]`: which operators may ask about which assets, as globs), with its pure
//! validation and the ACL's resolution to the assets an operator may see.
//!
//! No I/O here; the service (`service.rs`) applies what this section says.

use millwright_core::ask::MAX_QUESTION_CHARS;
use millwright_core::ValidationError;
use serde::{Deserialize, Serialize};

/// `[ask]`: operator questions over MQTT.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AskSection {
    /// Serve questions on `<topic_root>/<site>/ask` (default: yes when `[mqtt]` is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Longest question, in characters (1–500).
    #[serde(default = "default_max_question_chars")]
    pub max_question_chars: usize,
    /// Questions per minute one operator may ask (the bucket refills at this rate; 1–6000).
    #[serde(default = "default_rate_per_min")]
    pub rate_per_min: u32,
    /// Questions one operator may ask at once before the rate applies (1–1000).
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Questions open at once (received, not yet answered); more are answered `busy` (1–1000).
    #[serde(default = "default_max_open")]
    pub max_open: usize,
    /// Longest wait for the model, in seconds (1–300); past it the template answers.
    #[serde(default = "default_answer_timeout_s")]
    pub answer_timeout_s: u64,
    /// Shift starts in local time (`"HH:MM"`), for "this shift" / "last shift".
    #[serde(default = "default_shift_starts")]
    pub shift_starts: Vec<String>,
    /// Local time's offset from UTC in minutes (−840…840): "today", "since 06:00" and
    /// shifts are local.
    #[serde(default)]
    pub utc_offset_min: i32,
    /// Who may ask about what (`[[ask.acl]]`); omitted: every operator may ask about every
    /// asset. Given: an operator sees the assets of every rule whose `operator` glob matches
    /// them, and no others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<AclRule>>,
}

/// One access rule (`[[ask.acl]]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// Operator name glob (`*` any run of characters, `?` one character), e.g. `shift-*`.
    pub operator: String,
    /// Asset tag globs, e.g. `["P-*", "M-201"]`.
    pub assets: Vec<String>,
}

fn default_shift_starts() -> Vec<String> {
    ["06:00", "14:00", "22:00"].map(String::from).to_vec()
}
fn default_max_question_chars() -> usize {
    MAX_QUESTION_CHARS
}
fn default_rate_per_min() -> u32 {
    20
}
fn default_burst() -> u32 {
    5
}
fn default_max_open() -> usize {
    32
}
fn default_answer_timeout_s() -> u64 {
    20
}

impl Default for AskSection {
    fn default() -> Self {
        Self {
            enabled: None,
            max_question_chars: default_max_question_chars(),
            rate_per_min: default_rate_per_min(),
            burst: default_burst(),
            max_open: default_max_open(),
            answer_timeout_s: default_answer_timeout_s(),
            shift_starts: default_shift_starts(),
            utc_offset_min: 0,
            acl: None,
        }
    }
}

/// `"HH:MM"` → minutes after midnight.
fn clock_minutes(t: &str) -> Option<u32> {
    let (h, m) = t.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && t.len() == 5).then_some(h * 60 + m)
}

impl AskSection {
    /// Whether questions are served, given whether the node has an `[mqtt]` section.
    pub fn is_enabled(&self, has_mqtt: bool) -> bool {
        self.enabled.unwrap_or(has_mqtt) && has_mqtt
    }

    /// The answering settings of this section (shifts, local time) for the analytics.
    pub fn ask_options(&self) -> millwright_analytics::AskOptions {
        millwright_analytics::AskOptions {
            shift_starts_min: self
                .shift_starts
                .iter()
                .filter_map(|t| clock_minutes(t))
                .collect(),
            utc_offset_min: self.utc_offset_min,
            ..Default::default()
        }
    }

    /// Every problem of the section; `assets` are the `[[assets]]` tags, `has_mqtt` whether
    /// `[mqtt]` is configured.
    pub fn validate(&self, assets: &[String], has_mqtt: bool) -> Vec<ValidationError> {
        let mut e = Vec::new();
        if self.enabled == Some(true) && !has_mqtt {
            e.push(ValidationError::new(
                "ask.enabled",
                "questions arrive over MQTT: add an [mqtt] section or set enabled = false",
            ));
        }
        if !(1..=MAX_QUESTION_CHARS).contains(&self.max_question_chars) {
            e.push(ValidationError::new(
                "ask.max_question_chars",
                format!("must be 1–{MAX_QUESTION_CHARS}"),
            ));
        }
        if !(1..=6000).contains(&self.rate_per_min) {
            e.push(ValidationError::new(
                "ask.rate_per_min",
                "must be 1–6000 (questions per minute and operator)",
            ));
        }
        if !(1..=1000).contains(&self.burst) {
            e.push(ValidationError::new("ask.burst", "must be 1–1000"));
        }
        if !(1..=1000).contains(&self.max_open) {
            e.push(ValidationError::new("ask.max_open", "must be 1–1000"));
        }
        if !(1..=300).contains(&self.answer_timeout_s) {
            e.push(ValidationError::new(
                "ask.answer_timeout_s",
                "must be 1–300 (seconds)",
            ));
        }
        if self.shift_starts.is_empty() {
            e.push(ValidationError::new(
                "ask.shift_starts",
                "is empty: list the shift starts, e.g. [\"06:00\", \"14:00\", \"22:00\"]",
            ));
        }
        for t in &self.shift_starts {
            if clock_minutes(t).is_none() {
                e.push(ValidationError::new(
                    "ask.shift_starts",
                    format!("`{t}` is not a time of day as HH:MM"),
                ));
            }
        }
        if !(-840..=840).contains(&self.utc_offset_min) {
            e.push(ValidationError::new(
                "ask.utc_offset_min",
                "must be −840…840 (minutes from UTC)",
            ));
        }
        for (i, r) in self.acl.iter().flatten().enumerate() {
            if r.operator.trim().is_empty() {
                e.push(ValidationError::new(
                    format!("ask.acl[{i}].operator"),
                    "is empty (use \"*\" for every operator)",
                ));
            }
            if r.assets.is_empty() {
                e.push(ValidationError::new(
                    format!("ask.acl[{i}].assets"),
                    "is empty: list asset tags or globs, e.g. [\"P-*\"]",
                ));
            }
            for g in &r.assets {
                if g.trim().is_empty() {
                    e.push(ValidationError::new(
                        format!("ask.acl[{i}].assets"),
                        "holds an empty pattern",
                    ));
                } else if !g.contains(['*', '?']) && !assets.iter().any(|a| a == g) {
                    e.push(ValidationError::new(
                        format!("ask.acl[{i}].assets"),
                        format!("`{g}` is not an asset of [[assets]] (a typo?)"),
                    ));
                }
            }
        }
        e
    }

    /// The assets `operator` may ask about, in the order of `assets`.
    pub fn visible_assets(&self, operator: &str, assets: &[String]) -> Vec<String> {
        let Some(acl) = &self.acl else {
            return assets.to_vec();
        };
        let rules: Vec<&AclRule> = acl
            .iter()
            .filter(|r| glob_match(&r.operator, operator))
            .collect();
        assets
            .iter()
            .filter(|a| {
                rules
                    .iter()
                    .any(|r| r.assets.iter().any(|g| glob_match(g, a)))
            })
            .cloned()
            .collect()
    }
}

/// Shell-style glob match: `*` matches any run of characters (also none), `?` exactly one;
/// everything else literally (case-sensitive).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        for (p, t) in [
            ("*", ""),
            ("*", "anyone"),
            ("P-*", "P-101"),
            ("P-1?1", "P-101"),
            ("*-101", "P-101"),
            ("a*b*c", "aXbYbZc"),
            ("shift-*", "shift-a"),
            ("M-201", "M-201"),
        ] {
            assert!(glob_match(p, t), "{p} ~ {t}");
        }
        for (p, t) in [
            ("P-*", "M-201"),
            ("P-1?1", "P-1001"),
            ("M-201", "M-2011"),
            ("a*b*c", "aXbYbZ"),
            ("?", ""),
            ("p-*", "P-101"),
        ] {
            assert!(!glob_match(p, t), "{p} !~ {t}");
        }
    }

    fn assets() -> Vec<String> {
        ["P-101", "P-102", "M-201", "C-301"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn acl_resolves_to_the_union_of_matching_rules_and_none_without_a_rule() {
        let mut s = AskSection::default();
        assert_eq!(s.visible_assets("anyone", &assets()), assets());
        s.acl = Some(vec![
            AclRule {
                operator: "pump-*".into(),
                assets: vec!["P-*".into()],
            },
            AclRule {
                operator: "pump-lead".into(),
                assets: vec!["M-201".into()],
            },
        ]);
        assert_eq!(s.visible_assets("pump-ann", &assets()), ["P-101", "P-102"]);
        assert_eq!(
            s.visible_assets("pump-lead", &assets()),
            ["P-101", "P-102", "M-201"]
        );
        assert!(s.visible_assets("anonymous", &assets()).is_empty());
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let s = AskSection {
            enabled: Some(true),
            max_question_chars: 0,
            rate_per_min: 0,
            burst: 0,
            max_open: 0,
            answer_timeout_s: 0,
            shift_starts: vec!["6:00".into()],
            utc_offset_min: 900,
            acl: Some(vec![AclRule {
                operator: " ".into(),
                assets: vec!["P-999".into(), "P-*".into()],
            }]),
        };
        let paths: Vec<String> = s
            .validate(&assets(), false)
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            [
                "ask.enabled",
                "ask.max_question_chars",
                "ask.rate_per_min",
                "ask.burst",
                "ask.max_open",
                "ask.answer_timeout_s",
                "ask.shift_starts",
                "ask.utc_offset_min",
                "ask.acl[0].operator",
                "ask.acl[0].assets",
            ]
        );
        assert!(AskSection::default().validate(&assets(), true).is_empty());
        assert_eq!(
            AskSection::default().ask_options().shift_starts_min,
            [360, 840, 1320]
        );
        assert!(AskSection::default().is_enabled(true));
        assert!(!AskSection::default().is_enabled(false));
    }
}

#[cfg(test)]
mod file_tests {
    use crate::config::Config;

    #[test]
    fn ask_problems_in_a_file_have_paths_and_lines() {
        let text = r#"
[site]
name = "s"
[mqtt]
host = "127.0.0.1"
[[mqtt.subscriptions]]
topic = "plant/{asset}/{signal}"
[[assets]]
name = "P-101"
profile = "p.toml"
[ask]
max_open = 0
[[ask.acl]]
operator = "ops-*"
assets = ["P-*"]
[[ask.acl]]
operator = "lead"
assets = ["P-910"]
"#;
        let probs = Config::parse(text).unwrap_err();
        let got: Vec<(&str, Option<usize>)> =
            probs.iter().map(|p| (p.path.as_str(), p.line)).collect();
        assert_eq!(
            got,
            [("ask.max_open", Some(12)), ("ask.acl[1].assets", Some(18))],
            "{probs:?}"
        );
        let ok =
            Config::parse(&text.replace("max_open = 0", "").replace("P-910", "P-101")).unwrap();
        assert_eq!(ok.ask.acl.as_ref().map(Vec::len), Some(2));
        assert!(ok.ask.is_enabled(ok.mqtt.is_some()));
    }
}
