//! Number, time and name formatting shared by the encoder, the templates and the reports.
//!
//! Every number the node writes for people or the model goes through here, so the grounding
//! check knows exactly how each was rounded. Pure functions, no I/O.

/// Decimals for a value of this magnitude: ≥100 → 0, ≥10 → 1, otherwise 2.
pub fn decimals_for(v: f64) -> usize {
    let a = v.abs();
    if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else {
        2
    }
}

/// Formats with the magnitude rule of [`decimals_for`].
pub fn num(v: f64) -> String {
    fixed(v, decimals_for(v))
}

/// Formats with `d` decimals, never `-0`.
pub fn fixed(v: f64, d: usize) -> String {
    let s = format!("{v:.d$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Formats a spread with the baseline's decimals, adding decimals (up to 3) until it is
/// not zero.
pub fn spread(v: f64, baseline_decimals: usize) -> String {
    let mut d = baseline_decimals;
    while d < 3 && (v * 10f64.powi(d as i32)).round() == 0.0 {
        d += 1;
    }
    fixed(v, d)
}

/// Two significant digits (rates), e.g. `0.93`, `12`, `0.0041`.
pub fn sig2(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() {
        return "0".into();
    }
    let d = (1 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = fixed(v, d);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// z in σ: integer from 2 up, else one decimal; always signed.
pub fn sigma(z: f64) -> String {
    let s = if z.abs() >= 2.0 {
        fixed(z, 0)
    } else {
        fixed(z, 1)
    };
    if z >= 0.0 {
        format!("+{s}")
    } else {
        s
    }
}

/// A duration for people: `45 s`, `14 min`, `3.5 h`, `2.1 d`.
pub fn duration(s: f64) -> String {
    let s = s.max(0.0);
    if s < 90.0 {
        format!("{} s", s.round())
    } else if s < 120.0 * 60.0 {
        format!("{} min", (s / 60.0).round())
    } else if s < 48.0 * 3600.0 {
        format!("{} h", fixed(s / 3600.0, 1))
    } else {
        format!("{} d", fixed(s / 86400.0, 1))
    }
}

/// RFC 3339 UTC with seconds, e.g. `2026-11-24T06:30:00Z`.
pub fn rfc3339(ts_ns: i64) -> String {
    millwright_core::time::format_rfc3339(ts_ns)
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    millwright_core::time::civil_from_days(z)
}

/// Unit suffixes stripped from signal names for display (longest first).
const UNIT_SUFFIXES: [&str; 12] = [
    "_mm_s", "_m3_h", "_rpm", "_bar", "_pct", "_kw", "_hz", "_c", "_a", "_v", "_s", "_ms",
];

/// The signal name without its unit suffix, e.g. `bearing_temp_c` → `bearing_temp`.
pub fn display_signal(name: &str) -> &str {
    for suf in UNIT_SUFFIXES {
        if let Some(base) = name.strip_suffix(suf) {
            if !base.is_empty() {
                return base;
            }
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_by_magnitude() {
        assert_eq!(num(78.44), "78.4");
        assert_eq!(num(2.346), "2.35");
        assert_eq!(num(1480.4), "1480");
        assert_eq!(num(-0.001), "0.00");
        assert_eq!(spread(0.04, 1), "0.04");
        assert_eq!(spread(1.46, 1), "1.5");
        assert_eq!(sig2(0.934), "0.93");
        assert_eq!(sig2(12.4), "12");
        assert_eq!(sig2(0.0104), "0.01");
        assert_eq!(sig2(0.5), "0.5");
        assert_eq!(sigma(11.3), "+11");
        assert_eq!(sigma(-3.26), "-3");
        assert_eq!(sigma(1.26), "+1.3");
        assert_eq!(duration(840.0), "14 min");
        assert_eq!(duration(30.0), "30 s");
        assert_eq!(duration(3.0 * 3600.0), "3.0 h");
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(1_714_564_800_000_000_000), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-1_000_000_000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn display_names_drop_unit_suffixes() {
        assert_eq!(display_signal("bearing_temp_c"), "bearing_temp");
        assert_eq!(display_signal("vibration_rms_mm_s"), "vibration_rms");
        assert_eq!(display_signal("flow_m3_h"), "flow");
        assert_eq!(display_signal("speed_rpm"), "speed");
        assert_eq!(display_signal("pressure"), "pressure");
    }
}
