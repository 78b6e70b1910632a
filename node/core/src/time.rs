//! Time on the node: the wall clock as nanoseconds since the Unix epoch, RFC 3339 parsing to
//! nanoseconds and RFC 3339 formatting, and the calendar arithmetic behind them.
//!
//! Every crate that reads the clock or reads or writes a timestamp text goes through here, so
//! all of them accept and produce the same forms. Reading the clock ([`now_ns`]) is the only
//! contact with the outside world; everything else is pure. No time-zone database: offsets
//! are whatever the text says, output is always UTC.
//!
//! Accepted by [`parse_rfc3339_ns`] (RFC 3339 proper):
//! `YYYY-MM-DD(T|t| )hh:mm:ss[.fraction](Z|z|±hh:mm)`. The fraction may have any number of
//! digits (beyond nanoseconds they are truncated); seconds may be 60 (a leap second counts as
//! the next second's start). [`parse_rfc3339_lenient_ns`] additionally accepts a missing offset
//! (taken as UTC) and an offset without colon (`±hhmm`), as found in CSV exports.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds per second.
const NS_PER_S: i64 = 1_000_000_000;

/// Now as nanoseconds since the Unix epoch (0 if the clock is before 1970, `i64::MAX` after
/// the year 2262).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00.123Z`, `…+02:00`) to ns since the epoch.
/// The offset is required; `None` for anything else or a time outside the `i64` ns range.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    parse(s, Leniency::Strict)
}

/// Like [`parse_rfc3339_ns`], but also accepts no offset (the time is UTC, e.g.
/// `2024-05-01 12:00:00`) and an offset without colon (`2024-05-01T07:00:00-0500`).
pub fn parse_rfc3339_lenient_ns(s: &str) -> Option<i64> {
    parse(s, Leniency::Lenient)
}

/// RFC 3339 UTC with whole seconds, e.g. `2026-11-24T06:30:00Z` (the fraction is dropped,
/// rounding towards the past).
pub fn format_rfc3339(ts_ns: i64) -> String {
    let secs = ts_ns.div_euclid(NS_PER_S);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian; the inverse of
/// [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Which offset forms [`parse`] accepts besides `Z` and `±hh:mm`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leniency {
    /// RFC 3339: the offset is required and has its colon.
    Strict,
    /// Also no offset (UTC) and `±hhmm`.
    Lenient,
}

/// The unsigned decimal number in `s[range]`, all ASCII digits, at least one.
fn digits(s: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let t = s.get(range)?;
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn parse(s: &str, leniency: Leniency) -> Option<i64> {
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied();
    if at(4) != Some(b'-')
        || at(7) != Some(b'-')
        || !matches!(at(10), Some(b'T' | b't' | b' '))
        || at(13) != Some(b':')
        || at(16) != Some(b':')
    {
        return None;
    }
    let (y, mo, d) = (digits(s, 0..4)?, digits(s, 5..7)?, digits(s, 8..10)?);
    let (h, mi, se) = (digits(s, 11..13)?, digits(s, 14..16)?, digits(s, 17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns: i64 = 0;
    if at(i) == Some(b'.') {
        i += 1;
        let start = i;
        while at(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Up to nine digits count; further digits are below a nanosecond and dropped.
        let used = (i - start).min(9);
        let mut f = digits(s, start..start + used)?;
        for _ in used..9 {
            f *= 10;
        }
        frac_ns = f;
    }
    let offset_s = offset_seconds(s.get(i..)?, leniency)?;
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    secs.checked_mul(NS_PER_S)?.checked_add(frac_ns)
}

/// The UTC offset of the text after the seconds (and fraction), in seconds east of UTC.
fn offset_seconds(rest: &str, leniency: Leniency) -> Option<i64> {
    let lenient = leniency == Leniency::Lenient;
    let sign = match rest.as_bytes().first() {
        Some(b'Z' | b'z') if rest.len() == 1 => return Some(0),
        None if lenient => return Some(0),
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return None,
    };
    let (oh, om) = match rest.len() {
        6 if rest.as_bytes().get(3) == Some(&b':') => (digits(rest, 1..3)?, digits(rest, 4..6)?),
        5 if lenient => (digits(rest, 1..3)?, digits(rest, 3..5)?),
        _ => return None,
    };
    Some(sign * (oh * 3600 + om * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: i64 = 1_714_564_800_000_000_000; // 2024-05-01T12:00:00Z

    #[test]
    fn strict_accepts_rfc3339() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2024-02-29T14:00:00.5+02:00"),
            Some(1_709_208_000_500_000_000)
        );
        for s in [
            "2024-05-01T12:00:00Z",
            "2024-05-01t12:00:00z",
            "2024-05-01 12:00:00Z",
            "2024-05-01T14:00:00+02:00",
            "2024-05-01T07:00:00-05:00",
            "2024-05-01T12:00:00.000000000Z",
            "2024-05-01T12:00:00.0000000009Z",
        ] {
            assert_eq!(parse_rfc3339_ns(s), Some(NOON), "{s}");
        }
        assert_eq!(
            parse_rfc3339_ns("2024-05-01T12:00:00.123456789Z"),
            Some(NOON + 123_456_789)
        );
        assert_eq!(
            parse_rfc3339_ns("1969-12-31T23:59:59.5Z"),
            Some(-500_000_000)
        );
    }

    #[test]
    fn strict_rejects_what_is_not_rfc3339() {
        for s in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-32T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:61Z",
            "2024-01-01 00:00:00",
            "2024-05-01T07:00:00-0500",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00ZZ",
            "2024-05-01T12:00:00+02",
            "2024-05-01T12:00:00+02:0x",
            "2024-05-01T12:00:00 Z",
            "2024/05/01T12:00:00Z",
            "+024-05-01T12:00:00Z",
            "2024-05-01T12:00:1é",
            "2024-05-01T12:00:00Zé",
            "9999-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339_ns(s), None, "{s:?}");
        }
    }

    #[test]
    fn lenient_also_accepts_no_offset_and_offset_without_colon() {
        for s in [
            "2024-05-01T12:00:00Z",
            "2024-05-01 12:00:00",
            "2024-05-01T12:00:00",
            "2024-05-01T14:00:00+02:00",
            "2024-05-01T07:00:00-0500",
            "2024-05-01T14:00:00+0200",
        ] {
            assert_eq!(parse_rfc3339_lenient_ns(s), Some(NOON), "{s}");
        }
        assert_eq!(
            parse_rfc3339_lenient_ns("2024-05-01T12:00:00.25"),
            Some(NOON + 250_000_000)
        );
        for s in [
            "2024-05-01T12:00:00+2:00",
            "2024-05-01T12:00:00+020",
            "2024-05-01T12:00:00.",
            "2024-05-01T12:00",
            "2024-13-01T00:00:00",
        ] {
            assert_eq!(parse_rfc3339_lenient_ns(s), None, "{s:?}");
        }
    }

    #[test]
    fn formats_utc() {
        assert_eq!(format_rfc3339(NOON), "2024-05-01T12:00:00Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(-1_000_000_000), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(NOON + 999_999_999), "2024-05-01T12:00:00Z");
    }

    #[test]
    fn civil_days_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_ns() > NOON);
    }

    /// The two parsers this module replaced, verbatim in behaviour: ingest's JSON `time`
    /// parser and the backtest's CSV parser (ASCII input only: it sliced at byte offsets).
    mod before {
        use super::days_from_civil;

        pub fn ingest(s: &str) -> Option<i64> {
            let b = s.as_bytes();
            if b.len() < 20 {
                return None;
            }
            let num = |r: std::ops::Range<usize>| -> Option<i64> {
                let t = s.get(r)?;
                if !t.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                t.parse().ok()
            };
            let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
            if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
                return None;
            }
            let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
            if b[13] != b':'
                || b[16] != b':'
                || !(1..=12).contains(&mo)
                || !(1..=31).contains(&d)
                || h > 23
                || mi > 59
                || se > 60
            {
                return None;
            }
            let mut i = 19;
            let mut frac_ns: i64 = 0;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let st = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let digits = s.get(st..i)?;
                if digits.is_empty() {
                    return None;
                }
                let mut padded: String = digits.chars().take(9).collect();
                while padded.len() < 9 {
                    padded.push('0');
                }
                frac_ns = padded.parse().ok()?;
            }
            let offset_s: i64 = match b.get(i) {
                Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
                Some(c @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                    let oh = num(i + 1..i + 3)?;
                    let om = num(i + 4..i + 6)?;
                    let o = oh * 3600 + om * 60;
                    if *c == b'+' {
                        o
                    } else {
                        -o
                    }
                }
                _ => return None,
            };
            let days = days_from_civil(y, mo, d);
            let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
            secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
        }

        fn num(s: &str) -> Option<i64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }

        pub fn backtest(s: &str) -> Option<i64> {
            let b = s.as_bytes();
            if b.len() < 19
                || b[4] != b'-'
                || b[7] != b'-'
                || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
                || b[13] != b':'
                || b[16] != b':'
            {
                return None;
            }
            let y = num(&s[0..4])?;
            let mo = num(&s[5..7])?;
            let d = num(&s[8..10])?;
            let h = num(&s[11..13])?;
            let mi = num(&s[14..16])?;
            let se = num(&s[17..19])?;
            if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
                return None;
            }
            let mut rest = &s[19..];
            let mut frac_ns = 0i64;
            if let Some(r) = rest.strip_prefix('.') {
                let digits = r.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return None;
                }
                let mut f = 0i64;
                for (i, c) in r[..digits].bytes().enumerate() {
                    if i < 9 {
                        f = f * 10 + i64::from(c - b'0');
                    }
                }
                for _ in digits..9 {
                    f *= 10;
                }
                frac_ns = f;
                rest = &r[digits..];
            }
            let offset_s = match rest {
                "" | "Z" | "z" => 0,
                _ => {
                    let sign = match rest.as_bytes()[0] {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    let o = rest[1..].replace(':', "");
                    if o.len() != 4 {
                        return None;
                    }
                    let oh = num(&o[0..2])?;
                    let om = num(&o[2..4])?;
                    sign * (oh * 3600 + om * 60)
                }
            };
            let days = days_from_civil(y, mo, d);
            let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
            secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
        }
    }

    /// Timestamp-like ASCII text: digits and separators in the right places most of the time,
    /// any fraction, and offsets in every form either old parser took or refused (except the
    /// backtest's accidental ones with misplaced colons, such as `+0:200`).
    fn timestamp_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let year = prop_oneof![8 => "19[7-9][0-9]|20[0-9]{2}", 1 => "[0-9]{3}", 1 => "[0-9]{4}"];
        let date_sep = prop_oneof![9 => "-", 1 => "/"];
        let month = prop_oneof![8 => "0[1-9]|1[0-2]", 1 => "[0-9]{2}", 1 => "[0-9]"];
        let day = prop_oneof![8 => "0[1-9]|[12][0-9]|3[01]", 1 => "[0-9]{2}", 1 => "a1"];
        let t = prop_oneof![6 => "T", 1 => "t", 2 => " ", 1 => "_"];
        let hour = prop_oneof![8 => "[01][0-9]|2[0-3]", 2 => "[0-9]{2}"];
        let minute = prop_oneof![8 => "[0-5][0-9]", 2 => "[0-9]{2}"];
        let second = prop_oneof![8 => "[0-5][0-9]|60", 2 => "[0-9]{2}"];
        let time_sep = prop_oneof![9 => ":", 1 => "-"];
        let frac = prop_oneof![4 => "", 5 => "\\.[0-9]{1,12}", 1 => "\\."];
        let offset = prop_oneof![
            2 => "",
            3 => "Z|z",
            4 => "[+-]([01][0-9]|2[0-3]):[0-5][0-9]",
            3 => "[+-]([01][0-9]|2[0-3])[0-5][0-9]",
            1 => "ZZ|x|[+-][0-9]{2}|[+-][0-9]{3}|[+-][0-9]{2}:[0-9]|[+-][0-9]{2}:[0-9]{2}Z",
        ];
        (
            (year, date_sep.clone(), month, date_sep, day, t),
            (
                hour,
                time_sep.clone(),
                minute,
                time_sep,
                second,
                frac,
                offset,
            ),
        )
            .prop_map(|((y, s1, mo, s2, d, t), (h, c1, mi, c2, se, frac, off))| {
                format!("{y}{s1}{mo}{s2}{d}{t}{h}{c1}{mi}{c2}{se}{frac}{off}")
            })
    }

    #[test]
    fn timestamp_like_text_is_often_a_timestamp() {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut strict, mut lenient_only, mut neither) = (0, 0, 0);
        for _ in 0..2000 {
            let s = timestamp_like().new_tree(&mut runner).unwrap().current();
            match (parse_rfc3339_ns(&s), parse_rfc3339_lenient_ns(&s)) {
                (Some(_), _) => strict += 1,
                (None, Some(_)) => lenient_only += 1,
                (None, None) => neither += 1,
            }
        }
        // Every outcome is well represented, so the comparison with the old parsers below
        // covers accepted and refused text alike.
        assert!(
            strict > 100 && lenient_only > 100 && neither > 100,
            "{strict} {lenient_only} {neither}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4000))]
        #[test]
        fn strict_is_the_ingest_parser_lenient_the_union(s in timestamp_like()) {
            let (ingest, backtest) = (before::ingest(&s), before::backtest(&s));
            proptest::prop_assert_eq!(parse_rfc3339_ns(&s), ingest, "{}", s);
            proptest::prop_assert_eq!(parse_rfc3339_lenient_ns(&s), ingest.or(backtest), "{}", s);
            if let (Some(a), Some(b)) = (ingest, backtest) {
                proptest::prop_assert_eq!(a, b, "{}", s);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in -9_223_372_036i64..9_223_372_036) {
            // The whole range of i64 nanoseconds (1677-09-21 to 2262-04-11).
            let ns = secs * NS_PER_S;
            let text = format_rfc3339(ns);
            proptest::prop_assert_eq!(parse_rfc3339_ns(&text), Some(ns), "{}", text);
            proptest::prop_assert_eq!(parse_rfc3339_lenient_ns(&text), Some(ns));
        }

        #[test]
        fn offsets_and_fractions_agree(
            secs in 0i64..4_102_444_800,
            frac in 0i64..NS_PER_S,
            off_min in -(23 * 60 + 59)..=(23i64 * 60 + 59),
        ) {
            let utc = secs * NS_PER_S + frac;
            // The same instant written in local time at `off_min` east of UTC.
            let local = format_rfc3339((secs + off_min * 60) * NS_PER_S);
            let local = local.trim_end_matches('Z');
            let sign = if off_min < 0 { '-' } else { '+' };
            let (oh, om) = (off_min.abs() / 60, off_min.abs() % 60);
            let strict = format!("{local}.{frac:09}{sign}{oh:02}:{om:02}");
            let compact = format!("{local}.{frac:09}{sign}{oh:02}{om:02}");
            proptest::prop_assert_eq!(parse_rfc3339_ns(&strict), Some(utc));
            proptest::prop_assert_eq!(parse_rfc3339_lenient_ns(&strict), Some(utc));
            proptest::prop_assert_eq!(parse_rfc3339_ns(&compact), None);
            proptest::prop_assert_eq!(parse_rfc3339_lenient_ns(&compact), Some(utc));
        }

        #[test]
        fn strict_accepts_a_subset_of_lenient(s in "\\PC{0,40}") {
            if let Some(ns) = parse_rfc3339_ns(&s) {
                proptest::prop_assert_eq!(parse_rfc3339_lenient_ns(&s), Some(ns));
            }
        }

        #[test]
        fn never_panics(s in "[0-9T:.Zz+ -]{0,40}|\\PC{0,40}") {
            let _ = parse_rfc3339_ns(&s);
            let _ = parse_rfc3339_lenient_ns(&s);
        }
    }
}
