//! Validation: config problems with the place they were found ([`ValidationError`]), and the
//! checks every name and time from outside the node passes ([`check_name`], [`TimeWindow`]).

use std::fmt;

/// One problem in a config or profile file, with its path (e.g. `mqtt.subscriptions[2].topic`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// Dotted path of the offending key.
    pub path: String,
    /// What is wrong, in words an engineer understands.
    pub message: String,
}

impl ValidationError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Longest asset or signal name accepted by default, in bytes (`max_name_bytes` in the config).
pub const DEFAULT_MAX_NAME_BYTES: usize = 128;

/// What is wrong with an asset or signal name that arrived from outside (a topic level, a
/// payload key). Such a name becomes an InfluxDB measurement or tag and an MQTT topic level, so
/// a name that line protocol or MQTT cannot carry is refused where it enters the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty (e.g. the topic `plant//temp` or `"signal": ""`).
    Empty,
    /// The name is longer than the configured maximum.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The maximum (`max_name_bytes`).
        max: usize,
    },
    /// A control character (newline, tab, NUL, DEL, C1) at this byte offset.
    Control {
        /// Byte offset of the character.
        at: usize,
    },
    /// The name starts with `#` (a line-protocol comment when it is the measurement).
    LeadingHash,
    /// An asset name containing an MQTT wildcard (`+` or `#`): alerts go to `alerts/<asset>`.
    Wildcard {
        /// Byte offset of the wildcard.
        at: usize,
    },
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("is empty"),
            NameProblem::TooLong { len, max } => {
                write!(
                    f,
                    "is {len} bytes long, the limit is max_name_bytes = {max}"
                )
            }
            NameProblem::Control { at } => write!(f, "has a control character at byte {at}"),
            NameProblem::LeadingHash => f.write_str("starts with `#`"),
            NameProblem::Wildcard { at } => {
                write!(f, "has an MQTT wildcard (`+` or `#`) at byte {at}")
            }
        }
    }
}

/// Which part of a sensor's identity a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// The asset (an InfluxDB tag value and an MQTT topic level of the node's alerts).
    Asset,
    /// The signal (the InfluxDB measurement).
    Signal,
}

/// Checks an asset or signal name from outside the node: not empty, at most `max_bytes` long,
/// no control character, not starting with `#`; an asset has no `+` or `#` at all.
pub fn check_name(s: &str, kind: NameKind, max_bytes: usize) -> Result<(), NameProblem> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(NameProblem::Empty);
    }
    if b.len() > max_bytes {
        return Err(NameProblem::TooLong {
            len: b.len(),
            max: max_bytes,
        });
    }
    if b[0] == b'#' {
        return Err(NameProblem::LeadingHash);
    }
    let asset = kind == NameKind::Asset;
    let mut ascii = true;
    for (i, &c) in b.iter().enumerate() {
        if c < 0x20 || c == 0x7f {
            return Err(NameProblem::Control { at: i });
        }
        if asset && (c == b'+' || c == b'#') {
            return Err(NameProblem::Wildcard { at: i });
        }
        ascii &= c < 0x80;
    }
    if !ascii {
        if let Some((at, _)) = s.char_indices().find(|(_, c)| c.is_control()) {
            return Err(NameProblem::Control { at });
        }
    }
    Ok(())
}

/// Why a reading's time is refused: too far ahead of or behind the node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeProblem {
    /// More than the allowed skew in the future.
    Future {
        /// How far ahead of the node's clock, in seconds.
        ahead_s: i64,
        /// The allowed skew in seconds.
        max_s: i64,
    },
    /// Older than the allowed age.
    Past {
        /// How far behind the node's clock, in seconds.
        behind_s: i64,
        /// The allowed age in seconds.
        max_s: i64,
    },
}

impl fmt::Display for TimeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeProblem::Future { ahead_s, max_s } => write!(
                f,
                "dated {ahead_s} s in the future, more than max_future_skew_s = {max_s}"
            ),
            TimeProblem::Past { behind_s, max_s } => write!(
                f,
                "dated {behind_s} s in the past, more than max_past_age_s = {max_s}"
            ),
        }
    }
}

/// How far from the node's clock a reading may be dated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    /// Largest allowed lead over the node's clock, ns (`i64::MAX`: no limit).
    pub max_future_ns: i64,
    /// Largest allowed age, ns (`i64::MAX`: no limit).
    pub max_past_ns: i64,
}

impl TimeWindow {
    /// A window from seconds; 0 means no limit on that side.
    pub fn from_secs(max_future_s: u64, max_past_s: u64) -> Self {
        let ns = |s: u64| {
            if s == 0 {
                i64::MAX
            } else {
                i64::try_from(s)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1_000_000_000)
            }
        };
        Self {
            max_future_ns: ns(max_future_s),
            max_past_ns: ns(max_past_s),
        }
    }

    /// No limit on either side.
    pub fn unlimited() -> Self {
        Self {
            max_future_ns: i64::MAX,
            max_past_ns: i64::MAX,
        }
    }

    /// Checks `ts_ns` against the node's clock `now_ns`.
    pub fn check(&self, ts_ns: i64, now_ns: i64) -> Result<(), TimeProblem> {
        let d = i128::from(ts_ns) - i128::from(now_ns);
        let s = |v: i128| i64::try_from(v / 1_000_000_000).unwrap_or(i64::MAX);
        if self.max_future_ns != i64::MAX && d > i128::from(self.max_future_ns) {
            Err(TimeProblem::Future {
                ahead_s: s(d),
                max_s: self.max_future_ns / 1_000_000_000,
            })
        } else if self.max_past_ns != i64::MAX && -d > i128::from(self.max_past_ns) {
            Err(TimeProblem::Past {
                behind_s: s(-d),
                max_s: self.max_past_ns / 1_000_000_000,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused_with_the_reason() {
        let k = NameKind::Signal;
        assert_eq!(check_name("", k, 8), Err(NameProblem::Empty));
        assert_eq!(
            check_name("abcdefghi", k, 8),
            Err(NameProblem::TooLong { len: 9, max: 8 })
        );
        assert_eq!(
            check_name("a\nb", k, 8),
            Err(NameProblem::Control { at: 1 })
        );
        assert_eq!(
            check_name("a\tb", k, 8),
            Err(NameProblem::Control { at: 1 })
        );
        assert_eq!(
            check_name("a\u{7f}", k, 8),
            Err(NameProblem::Control { at: 1 })
        );
        assert_eq!(
            check_name("é\u{85}", k, 8),
            Err(NameProblem::Control { at: 2 })
        );
        assert_eq!(check_name("#temp", k, 8), Err(NameProblem::LeadingHash));
        assert_eq!(check_name("a#b+", k, 8), Ok(()));
        assert_eq!(
            check_name("a#b", NameKind::Asset, 8),
            Err(NameProblem::Wildcard { at: 1 })
        );
        assert_eq!(check_name("P-101/m 1,°C", NameKind::Asset, 32), Ok(()));
        assert!(NameProblem::TooLong { len: 9, max: 8 }
            .to_string()
            .contains("max_name_bytes = 8"));
    }

    #[test]
    fn time_window_refuses_far_future_and_far_past() {
        let w = TimeWindow::from_secs(300, 3600);
        let now = 1_700_000_000_000_000_000;
        assert!(w.check(now, now).is_ok());
        assert!(w.check(now + 299_000_000_000, now).is_ok());
        assert_eq!(
            w.check(now + 301_000_000_000, now),
            Err(TimeProblem::Future {
                ahead_s: 301,
                max_s: 300
            })
        );
        assert!(matches!(
            w.check(now - 3_601_000_000_000, now),
            Err(TimeProblem::Past { behind_s: 3601, .. })
        ));
        assert!(w.check(i64::MAX, now).is_err() && w.check(i64::MIN, now).is_err());
        assert!(TimeWindow::unlimited().check(i64::MIN, i64::MAX).is_ok());
        assert!(TimeWindow::from_secs(0, 0)
            .check(i64::MAX, i64::MIN)
            .is_ok());
    }
}
