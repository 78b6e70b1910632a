//! The grounding check: every number (with its unit), signal name and asset tag in generated
//! text must match the facts, within the rounding the facts were written with.
//!
//! A number n written with d decimals matches a fact f written with e decimals when
//! |n − f| < ½·10⁻ᵈ + ½·10⁻ᵉ (signs are ignored: "fell 2.1 bar" states a rate of −2.1). A unit
//! after a number must be the fact's unit (a rate's `/min` may be said in words). Numbers that
//! occur in the profile texts given to the model (e.g. `ISO 10816`) are allowed verbatim.
//! Pure functions, no I/O.

use crate::facts::Facts;
use std::collections::HashSet;

/// Result of a grounding check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grounding {
    /// Every problem found (empty: the text is grounded).
    pub problems: Vec<String>,
}

impl Grounding {
    /// True when nothing contradicts the facts.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What else the text may mention besides the facts.
#[derive(Clone, Debug, Default)]
pub struct GroundingContext {
    /// Every asset tag of the site (mentioning another asset is a problem).
    pub known_assets: Vec<String>,
    /// Every signal name of the profile (mentioning one not in the facts is a problem).
    pub known_signals: Vec<String>,
    /// Numbers allowed verbatim (found in profile texts shown to the model).
    pub verbatim_numbers: HashSet<String>,
}

impl GroundingContext {
    /// Adds the numbers found in `text` to the verbatim set.
    pub fn allow_numbers_in(&mut self, text: &str) {
        for (n, _, _) in numbers_in(text) {
            self.verbatim_numbers.insert(n);
        }
    }
}

/// Normalises a unit word to its symbol; None when it is not a unit. A rate's `/min`,
/// `/minute`, `/h` or `/hour` after a unit is dropped (`mm/s/h` → `mm/s`); `m³/h` stays a unit.
pub fn unit_of(word: &str) -> Option<&'static str> {
    let w = word.trim_matches(|c: char| c == '.' || c == ',' || c == ';' || c == ')' || c == '(');
    let lower = w.to_lowercase();
    symbol(&lower).or_else(|| {
        RATE_SUFFIXES
            .iter()
            .find_map(|s| lower.strip_suffix(s).and_then(symbol))
    })
}

/// What a rate's unit may end with.
const RATE_SUFFIXES: [&str; 4] = ["/min", "/minute", "/h", "/hour"];

fn symbol(base: &str) -> Option<&'static str> {
    Some(match base {
        "°c" | "c" | "degc" | "°" | "deg" | "degrees" | "celsius" | "ºc" => "°C",
        "mm/s" => "mm/s",
        "bar" | "bars" | "barg" => "bar",
        "m³/h" | "m3/h" => "m³/h",
        "a" | "amp" | "amps" | "ampere" | "amperes" => "A",
        "rpm" => "rpm",
        "%" | "percent" => "%",
        "σ" | "sigma" | "sd" | "std" => "σ",
        "min" | "mins" | "minute" | "minutes" => "min",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        "v" | "volt" | "volts" => "V",
        "kw" => "kW",
        "hz" => "Hz",
        "m/s²" | "m/s2" => "m/s²",
        _ => return None,
    })
}

/// A fact's unit without its rate suffix (`°C/min` → `°C`, `mm/s/h` → `mm/s`; `m³/h` stays).
fn base_unit(u: &str) -> &str {
    u.strip_suffix("/min")
        .or_else(|| {
            u.strip_suffix("/h")
                .filter(|b| symbol(&b.to_lowercase()).is_some())
        })
        .unwrap_or(u)
}

/// Numbers in `text` as (literal without sign, value, unit suffix directly after it).
pub(crate) fn numbers_in(text: &str) -> Vec<(String, f64, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            // Part of an identifier (x2, P-101 handled before) is not a number.
            let prev = if i > 0 { chars[i - 1] } else { ' ' };
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.' && i + 1 < chars.len() && chars[i + 1].is_ascii_digit()))
            {
                i += 1;
            }
            if prev.is_alphabetic() || prev == '_' {
                continue;
            }
            let lit: String = chars[start..i].iter().collect();
            let mut j = i;
            let mut unit = String::new();
            while j < chars.len()
                && !chars[j].is_whitespace()
                && !matches!(chars[j], ',' | ';' | ')' | '(' | '±' | '–' | '~')
            {
                unit.push(chars[j]);
                j += 1;
            }
            let unit = unit.trim_end_matches(['.', ':', '!', '?']).to_string();
            let v: f64 = lit.parse().unwrap_or(f64::NAN);
            out.push((lit, v, unit));
        } else {
            i += 1;
        }
    }
    out
}

fn is_asset_tag(w: &str) -> bool {
    let Some((a, b)) = w.split_once('-') else {
        return false;
    };
    let b = b.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    (1..=5).contains(&a.len())
        && a.chars().all(|c| c.is_ascii_uppercase())
        && (1..=5).contains(&b.len())
        && b.chars().all(|c| c.is_ascii_digit())
}

/// Checks `text` against the facts; lists every problem.
pub fn check(text: &str, facts: &Facts, ctx: &GroundingContext) -> Grounding {
    let mut problems = Vec::new();
    // List markers at line starts are not numbers.
    let cleaned: String = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let t = t.trim_start_matches(['-', '*', '•']).trim_start();
            match t.split_once(['.', ')']) {
                Some((n, rest))
                    if !n.is_empty()
                        && n.len() <= 2
                        && n.chars().all(|c| c.is_ascii_digit())
                        && rest.starts_with(' ') =>
                {
                    rest.to_string()
                }
                _ => t.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    // Words: asset tags and identifiers.
    let mut masked = cleaned.clone();
    for raw in cleaned.split(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '"' | '\'' | ':' | '!' | '?')
    }) {
        let w = raw.trim_end_matches('.');
        if w.is_empty() {
            continue;
        }
        if is_asset_tag(w) || ctx.known_assets.iter().any(|a| a == w) {
            if w != facts.asset {
                problems.push(format!(
                    "names asset {w}, the facts are about {}",
                    facts.asset
                ));
            }
            masked = masked.replace(w, " ");
            continue;
        }
        let ident = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
        let is_ident = ident.contains('_') && ident.chars().any(|c| c.is_ascii_alphabetic());
        let known_other = ctx.known_signals.iter().any(|s| s == ident)
            && !facts.signals.iter().any(|s| s == ident);
        if (is_ident && !facts.signals.iter().any(|s| s == ident)) || known_other {
            problems.push(format!("names signal {ident}, which is not in the facts"));
        }
        if is_ident {
            masked = masked.replace(ident, " ");
        }
    }
    // Numbers and their units.
    let words: Vec<&str> = masked.split_whitespace().collect();
    let mut word_pos = 0usize;
    for (lit, v, suffix) in numbers_in(&masked) {
        if ctx.verbatim_numbers.contains(&lit) {
            continue;
        }
        // The unit: directly attached, else the next word.
        let mut unit = unit_of(&suffix).map(str::to_string);
        if unit.is_none() && suffix.is_empty() {
            while word_pos < words.len() && !words[word_pos].contains(lit.as_str()) {
                word_pos += 1;
            }
            if let Some(next) = words.get(word_pos + 1) {
                unit = unit_of(next).map(str::to_string);
            }
            word_pos += 1;
        }
        let d = lit.split_once('.').map_or(0, |(_, f)| f.len());
        let tol_n = 0.5 * 10f64.powi(-(d as i32));
        let numeric: Vec<_> = facts
            .numbers
            .iter()
            .filter(|f| {
                (v - f.value.abs()).abs() < tol_n + 0.5 * 10f64.powi(-(f.decimals as i32)) - 1e-12
            })
            .collect();
        if numeric.is_empty() {
            problems.push(format!("number {lit} is not in the facts"));
            continue;
        }
        if let Some(u) = unit {
            if !numeric
                .iter()
                .any(|f| base_unit(&f.unit) == base_unit(&u) || (f.unit.is_empty() && u.is_empty()))
            {
                let stated: Vec<&str> = numeric.iter().map(|f| f.unit.as_str()).collect();
                problems.push(format!(
                    "{lit} {u}: the facts give {lit} in {}",
                    stated.join(" or ")
                ));
            }
        }
    }
    Grounding { problems }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::facts::FactNumber;

    #[test]
    fn rates_per_minute_and_per_hour_keep_their_base_unit_and_flow_stays_a_unit() {
        assert_eq!(unit_of("mm/s/h"), Some("mm/s"));
        assert_eq!(unit_of("°C/min"), Some("°C"));
        assert_eq!(unit_of("m³/h"), Some("m³/h"));
        assert_eq!(unit_of("m3/h/h"), Some("m³/h"));
        assert_eq!(unit_of("/h"), None);
        assert_eq!(base_unit("mm/s/h"), "mm/s");
        assert_eq!(base_unit("°C/min"), "°C");
        assert_eq!(base_unit("m³/h"), "m³/h");
        assert_eq!(base_unit("m³/h/h"), "m³/h");
    }

    #[test]
    fn a_rate_per_hour_is_checked_like_one_per_minute() {
        let mut facts = crate::facts::encode(
            &crate::vocab::tests::anomaly("P-101", "vibration_rms", "mm/s", &[]),
            None,
        );
        facts.numbers = vec![FactNumber {
            value: 0.47,
            decimals: 2,
            unit: "mm/s/h".into(),
        }];
        let ctx = GroundingContext::default();
        assert!(check("vibration is rising 0.47/h", &facts, &ctx).ok());
        assert!(check("rising 0.47 mm/s/h", &facts, &ctx).ok());
        assert!(!check("rising 0.47 bar/h", &facts, &ctx).ok());
        assert!(!check("rising 0.83/h", &facts, &ctx).ok());
    }
}
