//! `millwright detect`: back-testing an asset profile on a historian export (CSV on stdin,
//! `timestamp,anomaly_score,flag` on stdout, one row per input row; a summary on stderr). Its benchmark, `bench detect`, is `bench/detect.rs`.
//!
//! The detection itself lives in `millwright-detect`; this file only resolves arguments and
//! wires the standard streams.

use crate::cli::DetectArgs;
use anyhow::{bail, Context};
use millwright_detect::backtest::{self, BacktestOptions};
use millwright_profile::Profile;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Finds a profile: an existing file path, or `<dir>/<name>.toml`.
pub fn resolve_profile(name: &str, dir: &Path) -> anyhow::Result<Profile> {
    let direct = PathBuf::from(name);
    let path = if direct.is_file() {
        direct
    } else {
        let p = dir.join(format!("{name}.toml"));
        if !p.is_file() {
            bail!(
                "profile {name:?} not found: neither a file nor {} (use --pipelines DIR)",
                p.display()
            );
        }
        p
    };
    Ok(Profile::load(&path)?)
}

/// Runs `millwright detect`.
pub fn run(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let profile = resolve_profile(&args.profile, &args.pipelines)?;
    let signals: Vec<String> = args
        .signal
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let opts = BacktestOptions {
        asset: args.asset.clone(),
        signals,
        strict: args.strict,
        flush_each_row: args.line_buffered,
        clock_tolerance_s: args.clock_tolerance_s,
    };
    if args
        .clock_tolerance_s
        .is_some_and(|t| !(t.is_finite() && t >= 0.0))
    {
        bail!("--clock-tolerance-s must be zero or a positive number of seconds");
    }
    let stdin = std::io::stdin().lock();
    let stdout = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let stderr = std::io::stderr();
    let mut events_file = match &args.events {
        Some(p) => Some(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let events = events_file.as_mut().map(|w| w as &mut dyn Write);
    let sum = match backtest::run(&profile, &opts, stdin, stdout, stderr.lock(), events) {
        Ok(s) => s,
        Err(backtest::BacktestError::BadRow { line, message }) => {
            eprintln!("error: line {line}: {message} (stopped: --strict)");
            return Ok(ExitCode::FAILURE);
        }
        Err(backtest::BacktestError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(mut w) = events_file {
        w.flush()?;
    }
    eprintln!(
        "detect: {} rows, {} scored, {} flagged and not scored (bad_columns {}, bad_timestamp {}, \
         bad_value {}, time_backwards {}), {} clock corrections scored, {} events opened, \
         {} closed as new normal",
        sum.rows,
        sum.scored,
        sum.bad_rows,
        sum.bad_columns,
        sum.bad_timestamp,
        sum.bad_value,
        sum.time_backwards,
        sum.clock_corrections,
        sum.events_opened,
        sum.new_normal
    );
    Ok(if sum.rows > 0 && sum.scored == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
