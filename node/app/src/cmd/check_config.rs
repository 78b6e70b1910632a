//! `millwright check-config FILE`: reports every problem with its path and line; exit 1 on any.

use crate::config::Config;
use std::path::Path;
use std::process::ExitCode;

/// Checks the file and prints the verdict.
pub fn run(file: &Path) -> anyhow::Result<ExitCode> {
    match Config::load(file) {
        Ok(cfg) => {
            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let profiles = match crate::analytics::load_profiles(&cfg, &base) {
                Ok(p) => p,
                Err(errs) => {
                    eprintln!("{}: {} problem(s)", file.display(), errs.len());
                    for e in errs {
                        eprintln!("  {}: {e}", file.display());
                    }
                    return Ok(ExitCode::FAILURE);
                }
            };
            println!("{}: OK", file.display());
            for (asset, p) in &profiles {
                println!(
                    "  asset {asset}: profile {} ({} signals)",
                    p.name,
                    p.signals.len()
                );
            }
            println!("  site: {}", cfg.site.name);
            if let Some(m) = &cfg.mqtt {
                println!(
                    "  mqtt: {}:{} ({} subscription(s), protocol {:?})",
                    m.host,
                    m.port,
                    m.subscriptions.len(),
                    m.protocol
                );
            }
            if let Some(m) = &cfg.modbus {
                for d in m.plan_summary() {
                    println!(
                        "  modbus device {}: {} field(s) read in {} request(s) per poll (one per field would be {})",
                        d.device, d.fields, d.requests_per_cycle, d.per_field_requests
                    );
                }
            }
            if let Some(i) = &cfg.influxdb {
                println!("  influxdb: {} org={} bucket={}", i.url, i.org, i.bucket);
                for w in i.warnings("influxdb") {
                    eprintln!("  warning: {w}");
                }
            }
            println!(
                "  store: {} s window, ≤ {} points/sensor, ≤ {} sensors (≤ {} MiB)",
                cfg.store.window_s,
                cfg.store.max_points_per_sensor,
                cfg.store.max_sensors,
                cfg.store.max_bytes() / (1024 * 1024)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprint!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
