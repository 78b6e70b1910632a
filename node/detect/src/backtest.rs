//! Back-testing on historian exports: CSV `timestamp,value` (or `timestamp,col1,col2,…`) in,
//! `timestamp,anomaly_score` out, one row per input row, streaming; each score uses only the
//! rows before it and the row itself.
//!
//! Timestamps: RFC 3339 (`2024-05-01T12:00:00Z`, `…T12:00:00.250+02:00`, a space instead of `T`;
//! no offset means UTC) or epoch numbers: seconds (may be fractional), milliseconds from 1e11,
//! microseconds from 1e14, nanoseconds from 1e17.
//!
//! Bad rows (unparseable timestamp or value, wrong column count, time going backwards) are
//! skipped and counted, with `line N: …` on the error stream, unless `strict` is set: then the
//! run stops at the first bad row. Empty value cells mean "no reading" (the row is still scored).
//! Lines that are empty or start with `#` are ignored. The only I/O is on the given streams.

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
}

/// What a back-test did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BacktestSummary {
    /// Data rows read (excluding header, comments and empty lines).
    pub rows: u64,
    /// Rows written with a score.
    pub scored: u64,
    /// Bad rows skipped.
    pub bad_rows: u64,
    /// Events opened.
    pub events_opened: u64,
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

/// A parsed data row: time and one optional value per value column.
type Row = (i64, Vec<Option<f64>>);

fn parse_row(fields: &[&str], n_cols: usize, last_ts: Option<i64>) -> Result<Row, String> {
    if fields.len() != n_cols + 1 {
        return Err(format!(
            "expected {} columns, found {}",
            n_cols + 1,
            fields.len()
        ));
    }
    let ts = parse_timestamp(fields[0])?;
    if last_ts.is_some_and(|l| ts < l) {
        return Err(format!("timestamp {} goes backwards", fields[0]));
    }
    let mut vals = Vec::with_capacity(n_cols);
    for (j, f) in fields[1..].iter().enumerate() {
        if f.is_empty() {
            vals.push(None);
        } else {
            match f.parse::<f64>() {
                Ok(v) if v.is_finite() => vals.push(Some(v)),
                _ => {
                    return Err(format!(
                        "value {f:?} in column {} is not a finite number",
                        j + 2
                    ))
                }
            }
        }
    }
    Ok((ts, vals))
}

fn split(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| f.trim().trim_matches('"'))
        .collect()
}

/// Runs a back-test: reads CSV from `input`, writes `timestamp,anomaly_score` rows to `out`,
/// bad-row messages to `err`, and (if given) every event as a JSON line to `events`.
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
    let mut first = true;
    for (lineno, line) in input.lines().enumerate() {
        let line_no = lineno as u64 + 1;
        let line = line?;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let fields = split(t);
        if first {
            first = false;
            if parse_timestamp(fields[0]).is_err() {
                // Header row.
                let names: Vec<String> = fields[1..].iter().map(|s| s.to_string()).collect();
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
                writeln!(out, "{},anomaly_score", fields[0])?;
                continue;
            }
            columns = Some(arg_cols.clone().ok_or_else(|| {
                BacktestError::Setup("no header row: name the value column(s) with --signal".into())
            })?);
        }
        sum.rows += 1;
        let cols = columns.as_deref().unwrap_or(&[]);
        let parsed = parse_row(&fields, cols.len(), last_ts).map_err(|m| (line_no, m));
        match parsed {
            Err((line, message)) => {
                sum.bad_rows += 1;
                if opts.strict {
                    return Err(BacktestError::BadRow { line, message });
                }
                writeln!(err, "line {line}: {message} (row skipped)")?;
            }
            Ok((ts, vals)) => {
                last_ts = Some(ts);
                for (j, v) in vals.iter().enumerate() {
                    if let Some(v) = v {
                        monitor.observe_at(cols[j], ts, *v, Quality::Good, &mut evbuf);
                    }
                }
                let score = cols
                    .iter()
                    .map(|&i| monitor.signal_score(i))
                    .fold(0.0, f64::max);
                writeln!(out, "{},{score:.4}", fields[0])?;
                sum.scored += 1;
                for a in evbuf.drain(..) {
                    if a.phase == millwright_core::Phase::Opened {
                        sum.events_opened += 1;
                    }
                    if let Some(w) = events.as_deref_mut() {
                        let j = serde_json::to_string(&a)
                            .map_err(|e| BacktestError::Setup(e.to_string()))?;
                        writeln!(w, "{j}")?;
                    }
                }
                if opts.flush_each_row {
                    out.flush()?;
                }
            }
        }
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
