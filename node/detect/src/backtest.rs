//! Back-testing on historian exports: CSV `timestamp,value` (or `timestamp,col1,col2,…`) in,
//! `timestamp,anomaly_score,flag` out, exactly one output row per input data row, streaming;
//! each score uses only the rows before it and the row itself.
//!
//! Timestamps: RFC 3339 (`2024-05-01T12:00:00Z`, `…T12:00:00.250+02:00`, a space instead of `T`;
//! no offset means UTC) or epoch numbers: seconds (may be fractional), milliseconds from 1e11,
//! microseconds from 1e14, nanoseconds from 1e17.
//!
//! A row that cannot be scored (wrong column count, unparseable timestamp or value, time going
//! back by more than the clock tolerance) carries the previous row's score and names why in
//! the `flag` column (`bad_columns`, `bad_timestamp`, `bad_value`, `time_backwards`), with
//! `line N: …` on the error stream (the first [`MAX_MESSAGES`]); with `strict` the run stops at
//! the first such row instead. Time going back by up to the tolerance is a clock correction:
//! the row is scored in arrival order and flagged `clock_correction`, as the node does live.
//! Empty value cells mean "no reading" (the row is still scored). Empty lines and lines that
//! start with `#` are not data rows and give no output row. Input need not be UTF-8 (invalid
//! bytes make a bad row, never an error). The only I/O is on the given streams.

use crate::monitor::{AssetMonitor, DetectError};
use millwright_core::{Anomaly, Quality};
use millwright_profile::Profile;
use std::io::{BufRead, Write};

/// Why a back-test stopped.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// Reading input or writing output failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The columns do not match the profile or the arguments.
    #[error("{0}")]
    Setup(String),
    /// A bad row in strict mode.
    #[error("line {line}: {message}")]
    BadRow {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The monitor could not be built.
    #[error(transparent)]
    Detect(#[from] DetectError),
}

/// Options of a back-test run.
#[derive(Clone, Debug, Default)]
pub struct BacktestOptions {
    /// Asset tag used in events (default `asset`).
    pub asset: String,
    /// Signals of the value columns, in order; empty: take them from the header row.
    pub signals: Vec<String>,
    /// Stop at the first bad row instead of skipping it.
    pub strict: bool,
    /// Flush the output after every row (for `tail -f` pipelines).
    pub flush_each_row: bool,
    /// Backward time steps up to this many seconds are clock corrections (None: the
    /// profile's `defaults.clock_tolerance_s`).
    pub clock_tolerance_s: Option<f64>,
}

/// Bad-row messages written to the error stream before they are only counted.
pub const MAX_MESSAGES: u64 = 100;

/// Why a row was flagged (the `flag` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFlag {
    /// Wrong number of columns.
    BadColumns,
    /// Unparseable timestamp.
    BadTimestamp,
    /// A value that is not a finite number.
    BadValue,
    /// Time went back by more than the clock tolerance.
    TimeBackwards,
    /// Time went back within the tolerance: scored in arrival order.
    ClockCorrection,
}

impl RowFlag {
    /// The flag as written in the `flag` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RowFlag::BadColumns => "bad_columns",
            RowFlag::BadTimestamp => "bad_timestamp",
            RowFlag::BadValue => "bad_value",
            RowFlag::TimeBackwards => "time_backwards",
            RowFlag::ClockCorrection => "clock_correction",
        }
    }
}

/// What a back-test did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BacktestSummary {
    /// Data rows read (excluding header, comments and empty lines).
    pub rows: u64,
    /// Rows scored (including clock corrections).
    pub scored: u64,
    /// Rows not scored (flagged, carrying the previous score); the sum of the four below.
    pub bad_rows: u64,
    /// Rows with the wrong number of columns.
    pub bad_columns: u64,
    /// Rows with an unparseable timestamp.
    pub bad_timestamp: u64,
    /// Rows with a value that is not a finite number.
    pub bad_value: u64,
    /// Rows whose time went back by more than the tolerance.
    pub time_backwards: u64,
    /// Rows whose time went back within the tolerance (scored).
    pub clock_corrections: u64,
    /// Events opened.
    pub events_opened: u64,
    /// Events closed as the new normal (re-learned).
    pub new_normal: u64,
}

impl BacktestSummary {
    fn count(&mut self, f: RowFlag) {
        match f {
            RowFlag::BadColumns => self.bad_columns += 1,
            RowFlag::BadTimestamp => self.bad_timestamp += 1,
            RowFlag::BadValue => self.bad_value += 1,
            RowFlag::TimeBackwards => self.time_backwards += 1,
            RowFlag::ClockCorrection => {
                self.clock_corrections += 1;
                return;
            }
        }
        self.bad_rows += 1;
    }
}

/// Parses a timestamp (RFC 3339 or epoch s/ms/µs/ns) to ns since the epoch.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let s = s.trim().trim_matches('"');
    if s.is_empty() {
        return Err("empty timestamp".into());
    }
    if s.bytes().all(|b| {
        b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+' || b == b'e' || b == b'E'
    }) && !s[1..].contains('-')
    {
        let x: f64 = s
            .parse()
            .map_err(|_| format!("timestamp {s:?} is neither RFC 3339 nor an epoch number"))?;
        let a = x.abs();
        let ns = if a >= 1e17 {
            x
        } else if a >= 1e14 {
            x * 1e3
        } else if a >= 1e11 {
            x * 1e6
        } else {
            x * 1e9
        };
        if !ns.is_finite() || ns.abs() > 9.2e18 {
            return Err(format!("timestamp {s:?} is out of range"));
        }
        return Ok(ns.round() as i64);
    }
    parse_rfc3339(s)
        .ok_or_else(|| format!("timestamp {s:?} is neither RFC 3339 nor an epoch number"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    millwright_core::time::days_from_civil(y, m, d)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    millwright_core::time::parse_rfc3339_lenient_ns(s)
}

/// A parsed data row: time and one optional value per value column. `last_ts` is the latest
/// time seen so far.
type Row = (i64, Vec<Option<f64>>);

fn parse_row(
    fields: &[&str],
    n_cols: usize,
    last_ts: Option<i64>,
    tolerance_ns: i64,
) -> Result<(Row, Option<RowFlag>), (RowFlag, String)> {
    if fields.len() != n_cols + 1 {
        return Err((
            RowFlag::BadColumns,
            format!("expected {} columns, found {}", n_cols + 1, fields.len()),
        ));
    }
    let ts_field = fields.first().copied().unwrap_or_default();
    let ts = parse_timestamp(ts_field).map_err(|m| (RowFlag::BadTimestamp, m))?;
    let mut flag = None;
    if let Some(l) = last_ts.filter(|l| ts < *l) {
        if l.saturating_sub(ts) > tolerance_ns {
            return Err((
                RowFlag::TimeBackwards,
                format!(
                    "timestamp {} goes back {:.0} s (more than the clock tolerance)",
                    ts_field,
                    l.saturating_sub(ts) as f64 / 1e9
                ),
            ));
        }
        flag = Some(RowFlag::ClockCorrection);
    }
    let mut vals = Vec::with_capacity(n_cols);
    for (j, f) in fields.get(1..).unwrap_or_default().iter().enumerate() {
        if f.is_empty() {
            vals.push(None);
        } else {
            match f.parse::<f64>() {
                Ok(v) if v.is_finite() => vals.push(Some(v)),
                _ => {
                    return Err((
                        RowFlag::BadValue,
                        format!("value {:?} in column {} is not a finite number", f, j + 2),
                    ))
                }
            }
        }
    }
    Ok(((ts, vals), flag))
}

fn split(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| f.trim().trim_matches('"'))
        .collect()
}

/// The first field of a row as it may be echoed in the output: printable ASCII only, no
/// commas, at most 64 characters.
fn echo_field(f: &str) -> String {
    f.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() && c != ',' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Runs a back-test: reads CSV from `input`, writes `timestamp,anomaly_score,flag` rows to
/// `out` (one per data row), bad-row messages to `err`, and (if given) every event as a JSON
/// line to `events`.
pub fn run(
    profile: &Profile,
    opts: &BacktestOptions,
    input: impl BufRead,
    mut out: impl Write,
    mut err: impl Write,
    mut events: Option<&mut dyn Write>,
) -> Result<BacktestSummary, BacktestError> {
    let asset = if opts.asset.is_empty() {
        "asset"
    } else {
        opts.asset.as_str()
    };
    let mut monitor = AssetMonitor::new(asset, profile)?;
    let mut sum = BacktestSummary::default();
    let mut columns: Option<Vec<usize>> = None;
    let mut evbuf: Vec<Anomaly> = Vec::new();
    let mut last_ts: Option<i64> = None;
    let map = |names: &[String]| -> Result<Vec<usize>, BacktestError> {
        names
            .iter()
            .map(|n| {
                profile.signal_index(n).ok_or_else(|| {
                    BacktestError::Setup(format!(
                        "signal {n:?} is not in profile {} (signals: {})",
                        profile.name,
                        profile
                            .signals
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            })
            .collect()
    };
    let arg_cols = if opts.signals.is_empty() {
        None
    } else {
        Some(map(&opts.signals)?)
    };
    let tolerance_ns = (opts
        .clock_tolerance_s
        .unwrap_or(profile.defaults.clock_tolerance_s)
        .max(0.0)
        * 1e9) as i64;
    monitor.set_clock_tolerance_ns(tolerance_ns);
    let mut first = true;
    let mut score = 0.0f64;
    let mut input = input;
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let line = String::from_utf8_lossy(&buf);
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let fields = split(t);
        let ts_field = fields.first().copied().unwrap_or_default();
        if first {
            first = false;
            if parse_timestamp(ts_field).is_err() {
                // Header row.
                let names: Vec<String> = fields
                    .get(1..)
                    .unwrap_or_default()
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                columns = Some(match &arg_cols {
                    Some(c) if c.len() == names.len() => c.clone(),
                    Some(c) => {
                        return Err(BacktestError::Setup(format!(
                            "--signal names {} column(s) but the header has {} value column(s)",
                            c.len(),
                            names.len()
                        )))
                    }
                    None => map(&names)?,
                });
                writeln!(out, "{},anomaly_score,flag", echo_field(ts_field))?;
                continue;
            }
            columns = Some(arg_cols.clone().ok_or_else(|| {
                BacktestError::Setup("no header row: name the value column(s) with --signal".into())
            })?);
        }
        sum.rows += 1;
        let cols = columns.as_deref().unwrap_or(&[]);
        match parse_row(&fields, cols.len(), last_ts, tolerance_ns) {
            Err((flag, message)) => {
                sum.count(flag);
                if opts.strict {
                    return Err(BacktestError::BadRow {
                        line: line_no,
                        message,
                    });
                }
                if sum.bad_rows <= MAX_MESSAGES {
                    writeln!(
                        err,
                        "line {line_no}: {message} (flagged {}, previous score kept)",
                        flag.as_str()
                    )?;
                }
                writeln!(out, "{},{score:.4},{}", echo_field(ts_field), flag.as_str())?;
            }
            Ok(((ts, vals), flag)) => {
                if let Some(f) = flag {
                    sum.count(f);
                }
                last_ts = Some(last_ts.map_or(ts, |l| l.max(ts)));
                for (j, v) in vals.iter().enumerate() {
                    if let (Some(v), Some(&c)) = (v, cols.get(j)) {
                        monitor.observe_at(c, ts, *v, Quality::Good, &mut evbuf);
                    }
                }
                // A row is one instant: judge what still waits for a missing cell.
                monitor.flush(&mut evbuf);
                score = cols
                    .iter()
                    .map(|&i| monitor.signal_score(i))
                    .fold(0.0, f64::max);
                writeln!(
                    out,
                    "{},{score:.4},{}",
                    echo_field(ts_field),
                    flag.map_or("", RowFlag::as_str)
                )?;
                sum.scored += 1;
                for a in evbuf.drain(..) {
                    if a.phase == millwright_core::Phase::Opened {
                        sum.events_opened += 1;
                    }
                    if a.resolution == Some(millwright_core::Resolution::NewNormal) {
                        sum.new_normal += 1;
                    }
                    if let Some(w) = events.as_deref_mut() {
                        let j = serde_json::to_string(&a)
                            .map_err(|e| BacktestError::Setup(e.to_string()))?;
                        writeln!(w, "{j}")?;
                    }
                }
            }
        }
        if opts.flush_each_row {
            out.flush()?;
        }
    }
    if sum.bad_rows > MAX_MESSAGES {
        writeln!(
            err,
            "{} further flagged row(s) not shown",
            sum.bad_rows - MAX_MESSAGES
        )?;
    }
    out.flush()?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_all_accepted_forms_agree() {
        let want = 1_714_564_800_000_000_000i64; // 2024-05-01T12:00:00Z
        for s in [
            "2024-05-01T12:00:00Z",
            "2024-05-01 12:00:00",
            "2024-05-01T14:00:00+02:00",
            "2024-05-01T07:00:00-0500",
            "1714564800",
            "1714564800.0",
            "1714564800000",
            "1714564800000000",
            "1714564800000000000",
        ] {
            assert_eq!(parse_timestamp(s), Ok(want), "{s}");
        }
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.25Z"),
            Ok(want + 250_000_000)
        );
        assert_eq!(parse_timestamp("1714564800.5"), Ok(want + 500_000_000));
        assert!(parse_timestamp("2024-13-01T00:00:00Z").is_err());
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("").is_err());
    }

    #[test]
    fn days_from_civil_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
