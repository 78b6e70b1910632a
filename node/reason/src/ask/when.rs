//! Time ranges of questions: "now", "last 15 minutes", "last hour", "last 2 hours", "since
//! 06:00", "today", "this shift", "last shift", "yesterday", relative to when the question
//! arrived, in local time (the configured UTC offset and shift starts), and how a range is
//! written in answers. Pure functions.

use super::words::{unit_seconds, NUMBER_WORDS};
use super::AskOptions;
use crate::text::civil_from_days;

const S: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * S;

/// A time range, `from_ns <= t < to_ns`, with how it is said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// Start (ns since the epoch).
    pub from_ns: i64,
    /// End (ns since the epoch).
    pub to_ns: i64,
    /// In words as answers say it, e.g. `in the last hour`, `today`, `since 06:00`, `now`.
    pub label: String,
    /// Whether the question said it (otherwise the default of its kind).
    pub stated: bool,
}

impl TimeRange {
    /// The last `secs` seconds before `now_ns`.
    pub fn last(now_ns: i64, secs: i64, stated: bool) -> Self {
        let label = match secs {
            3600 => "in the last hour".to_string(),
            60 => "in the last minute".to_string(),
            86_400 => "in the last day".to_string(),
            s if s % 86_400 == 0 => format!("in the last {} days", s / 86_400),
            s if s % 3600 == 0 => format!("in the last {} hours", s / 3600),
            s if s % 60 == 0 => format!("in the last {} minutes", s / 60),
            s => format!("in the last {s} seconds"),
        };
        Self {
            from_ns: now_ns.saturating_sub(secs.saturating_mul(S)),
            to_ns: now_ns,
            label,
            stated,
        }
    }

    /// "now": the latest value (the range is the last 15 minutes, for "no data" answers).
    pub fn now(now_ns: i64, stated: bool) -> Self {
        Self {
            from_ns: now_ns.saturating_sub(15 * 60 * S),
            to_ns: now_ns,
            label: "now".into(),
            stated,
        }
    }

    /// Whether this is "now" (a latest value).
    pub fn is_now(&self) -> bool {
        self.label == "now"
    }
}

/// Local midnight (as UTC ns) of the day holding `ts_ns`.
fn local_midnight(ts_ns: i64, offset_ns: i64) -> i64 {
    (ts_ns + offset_ns).div_euclid(DAY) * DAY - offset_ns
}

/// `HH:MM` of `ts_ns` in local time.
pub fn hhmm(ts_ns: i64, opts: &AskOptions) -> String {
    let local = ts_ns.saturating_add(offset_ns(opts));
    let sod = local.rem_euclid(DAY) / S;
    format!("{:02}:{:02}", sod / 3600, (sod / 60) % 60)
}

/// `YYYY-MM-DD` of `ts_ns` in local time.
fn date(ts_ns: i64, opts: &AskOptions) -> String {
    let local = ts_ns.saturating_add(offset_ns(opts));
    let (y, m, d) = civil_from_days(local.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

fn offset_ns(opts: &AskOptions) -> i64 {
    i64::from(opts.utc_offset_min) * 60 * S
}

/// The zone as written after times: `UTC`, `UTC+02:00`.
pub fn zone(opts: &AskOptions) -> String {
    let m = opts.utc_offset_min;
    if m == 0 {
        "UTC".into()
    } else {
        let sign = if m < 0 { '-' } else { '+' };
        format!("UTC{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)
    }
}

/// A moment as answers write it: `06:12 UTC` (with the date when not on the day of `now_ns`).
pub fn moment(ts_ns: i64, now_ns: i64, opts: &AskOptions) -> String {
    if date(ts_ns, opts) == date(now_ns, opts) {
        format!("{} {}", hhmm(ts_ns, opts), zone(opts))
    } else {
        format!("{} {} {}", date(ts_ns, opts), hhmm(ts_ns, opts), zone(opts))
    }
}

/// The range's span as answers write it: `05:12 to 06:12 UTC`, with dates when it does not
/// lie within one day.
pub fn span(r: &TimeRange, opts: &AskOptions) -> String {
    let (a, b) = (r.from_ns, r.to_ns);
    if date(a, opts) == date(b, opts) {
        format!("{} to {} {}", hhmm(a, opts), hhmm(b, opts), zone(opts))
    } else {
        format!(
            "{} {} to {} {} {}",
            date(a, opts),
            hhmm(a, opts),
            date(b, opts),
            hhmm(b, opts),
            zone(opts)
        )
    }
}

/// The range with its span: `in the last hour (05:12 to 06:12 UTC)`.
pub fn phrase(r: &TimeRange, opts: &AskOptions) -> String {
    if r.is_now() {
        return "now".into();
    }
    format!("{} ({})", r.label, span(r, opts))
}

/// The current shift's start (UTC ns) at `now_ns`, and the previous one's.
fn shift_starts(now_ns: i64, opts: &AskOptions) -> (i64, i64) {
    let off = offset_ns(opts);
    let midnight = local_midnight(now_ns, off);
    let mut starts: Vec<i64> = Vec::new();
    let mut mins: Vec<u32> = opts.shift_starts_min.iter().map(|m| m % 1440).collect();
    if mins.is_empty() {
        mins.push(0);
    }
    mins.sort_unstable();
    mins.dedup();
    for day in [-1i64, 0] {
        for m in &mins {
            starts.push(midnight + day * DAY + i64::from(*m) * 60 * S);
        }
    }
    let cur_i = starts.iter().rposition(|s| *s <= now_ns).unwrap_or(0);
    let cur = starts.get(cur_i).copied().unwrap_or(midnight);
    let prev = cur_i
        .checked_sub(1)
        .and_then(|i| starts.get(i).copied())
        .unwrap_or(cur - DAY / mins.len().max(1) as i64);
    (cur, prev)
}

fn number(w: &str) -> Option<i64> {
    w.parse::<i64>()
        .ok()
        .or_else(|| NUMBER_WORDS.iter().find(|(n, _)| *n == w).map(|(_, v)| *v))
}

/// `HH:MM`, `H`, `Ham`/`Hpm` (split as `H`, `am`) → minutes after midnight.
fn clock_minutes(w: &str, next: Option<&str>) -> Option<i64> {
    let (h, m) = match w.split_once(':') {
        Some((h, m)) => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?),
        None => (w.parse::<i64>().ok()?, 0),
    };
    let h = match next {
        Some("pm") if h < 12 => h + 12,
        Some("am") if h == 12 => 0,
        _ => h,
    };
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
}

/// The range a question states, if any (`toks`: lower-case words, digits split from units).
pub fn parse_range(toks: &[String], now_ns: i64, opts: &AskOptions) -> Option<TimeRange> {
    let off = offset_ns(opts);
    let t = |i: usize| toks.get(i).map(String::as_str);
    for (i, w) in toks.iter().enumerate() {
        let w = w.as_str();
        match w {
            "last" | "past" | "previous" | "recent" | "within" => {
                // "last shift"
                if matches!(t(i + 1), Some("shift")) {
                    let (cur, prev) = shift_starts(now_ns, opts);
                    return Some(TimeRange {
                        from_ns: prev,
                        to_ns: cur,
                        label: "in the last shift".into(),
                        stated: true,
                    });
                }
                // "last [N] unit", "last the 2 hours"
                let mut j = i + 1;
                if matches!(t(j), Some("the")) {
                    j += 1;
                }
                let (n, uj) = match t(j).and_then(number) {
                    Some(n) => (n, j + 1),
                    None => (1, j),
                };
                if let Some(u) = t(uj).and_then(unit_seconds) {
                    let secs = n.clamp(1, 10_000).saturating_mul(u);
                    return Some(TimeRange::last(now_ns, secs, true));
                }
            }
            "since" | "from" | "after" => {
                if let Some(m) = t(i + 1).and_then(|x| clock_minutes(x, t(i + 2))) {
                    let mut from = local_midnight(now_ns, off) + m * 60 * S;
                    if from > now_ns {
                        from -= DAY;
                    }
                    return Some(TimeRange {
                        from_ns: from,
                        to_ns: now_ns,
                        label: format!("since {}", hhmm(from, opts)),
                        stated: true,
                    });
                }
                if matches!(t(i + 1), Some("midnight")) {
                    return Some(today(now_ns, opts));
                }
            }
            "today" | "tonight" => return Some(today(now_ns, opts)),
            "yesterday" => {
                let m = local_midnight(now_ns, off);
                return Some(TimeRange {
                    from_ns: m - DAY,
                    to_ns: m,
                    label: "yesterday".into(),
                    stated: true,
                });
            }
            "shift" => {
                let (cur, _) = shift_starts(now_ns, opts);
                return Some(TimeRange {
                    from_ns: cur,
                    to_ns: now_ns,
                    label: "in this shift".into(),
                    stated: true,
                });
            }
            "now" | "currently" | "moment" => return Some(TimeRange::now(now_ns, true)),
            _ => {}
        }
        // "in the 15 minutes", "over 2 hours", "24h"
        if let (Some(n), Some(u)) = (
            number(w).filter(|_| w.bytes().all(|b| b.is_ascii_digit())),
            t(i + 1).and_then(unit_seconds),
        ) {
            if !matches!(t(i + 1), Some("m")) || i > 0 {
                return Some(TimeRange::last(now_ns, n.clamp(1, 10_000) * u, true));
            }
        }
    }
    None
}

fn today(now_ns: i64, opts: &AskOptions) -> TimeRange {
    TimeRange {
        from_ns: local_midnight(now_ns, offset_ns(opts)),
        to_ns: now_ns,
        label: "today".into(),
        stated: true,
    }
}

/// The current shift so far (the default range of attention questions).
pub fn this_shift(now_ns: i64, opts: &AskOptions) -> TimeRange {
    let (cur, _) = shift_starts(now_ns, opts);
    TimeRange {
        from_ns: cur,
        to_ns: now_ns,
        label: "in this shift".into(),
        stated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        super::super::understand::tokens(s)
    }

    // 2026-12-01T08:30:00Z
    const NOW: i64 = 1_796_113_800 * S;

    #[test]
    fn ranges_relative_to_the_question() {
        let o = AskOptions::default();
        let r = parse_range(&toks("max in the last 15 minutes"), NOW, &o).unwrap();
        assert_eq!((r.to_ns - r.from_ns) / S, 900);
        assert_eq!(
            phrase(&r, &o),
            "in the last 15 minutes (08:15 to 08:30 UTC)"
        );
        let r = parse_range(&toks("since 06:00"), NOW, &o).unwrap();
        assert_eq!(span(&r, &o), "06:00 to 08:30 UTC");
        let r = parse_range(&toks("since 9pm"), NOW, &o).unwrap();
        assert_eq!(span(&r, &o), "2026-11-30 21:00 to 2026-12-01 08:30 UTC");
        let r = parse_range(&toks("this shift"), NOW, &o).unwrap();
        assert_eq!(span(&r, &o), "06:00 to 08:30 UTC");
        let r = parse_range(&toks("during the last shift"), NOW, &o).unwrap();
        assert_eq!(span(&r, &o), "2026-11-30 22:00 to 2026-12-01 06:00 UTC");
        let r = parse_range(&toks("yesterday"), NOW, &o).unwrap();
        assert_eq!((r.to_ns - r.from_ns), DAY);
        let r = parse_range(&toks("over the past 2h"), NOW, &o).unwrap();
        assert_eq!(r.label, "in the last 2 hours");
        let local = AskOptions {
            utc_offset_min: 120,
            ..AskOptions::default()
        };
        let r = parse_range(&toks("today"), NOW, &local).unwrap();
        assert_eq!(span(&r, &local), "00:00 to 10:30 UTC+02:00");
        assert!(parse_range(&toks("how is the pump"), NOW, &o).is_none());
    }
}
