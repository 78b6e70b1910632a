//! `millwright check-config FILE`: reports every problem with its path and line; exit 1 on any.
//! Besides the config itself: the asset profiles load, and the model files exist and parse.
//! Includes the egress policy (`egress.rs`): an endpoint resolving to a public address is a
//! problem unless `[node] allow_public_endpoints = true`. Secrets are never printed.

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
            let (refused, unresolved) =
                crate::egress::check_config(&cfg, &crate::egress::system_resolve);
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut problems: Vec<String> = refused
                .into_iter()
                .map(|(field, why)| {
                    crate::config::ConfigProblem {
                        line: crate::config::locate(&text, &field),
                        path: field,
                        message: why,
                    }
                    .to_string()
                })
                .collect();
            // Configured model files must exist and parse (header, metadata, tensor table);
            // at run time a bad one only means the template explains, here it is an error.
            let mut models = Vec::new();
            for (i, f) in cfg.model.iter().flat_map(|m| m.files.iter()).enumerate() {
                let path = base.join(f);
                match millwright_slm::gguf::GgufFile::open(&path) {
                    Ok(g) => models.push(format!(
                        "  model {}: {} ({} tensors, {} MiB)",
                        path.display(),
                        g.architecture()
                            .unwrap_or_else(|_| "unknown architecture".into()),
                        g.content.tensor_infos.len(),
                        g.size / (1024 * 1024)
                    )),
                    Err(e) => problems.push(format!("model.files[{i}]: {e}")),
                }
            }
            if !problems.is_empty() {
                eprintln!("{}: {} problem(s)", file.display(), problems.len());
                for p in problems {
                    eprintln!("  {}: {p}", file.display());
                }
                return Ok(ExitCode::FAILURE);
            }
            println!("{}: OK", file.display());
            for w in unresolved {
                println!("  warning: {w}");
            }
            for m in models {
                println!("{m}");
            }
            for (asset, p) in &profiles {
                println!(
                    "  asset {asset}: profile {} ({} signals)",
                    p.name,
                    p.signals.len()
                );
            }
            println!("  site: {}", cfg.site.name);
            println!(
                "  egress: {}",
                if cfg.node.allow_public_endpoints {
                    "public endpoints allowed"
                } else {
                    "on-site endpoints only (loopback, private, link-local, CGNAT)"
                }
            );
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
                crate::memory::store_bytes(&cfg.store) / (1024 * 1024)
            );
            // The caps [node] memory_budget_mb gives, and the limits it lowers.
            let caps = crate::memory::MemoryCaps::of(&cfg);
            println!("  memory: {}", caps.summary());
            for l in caps.apply(&mut cfg.clone()) {
                println!("  memory: lowered {l}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprint!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
