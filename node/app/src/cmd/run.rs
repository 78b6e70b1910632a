//! `millwright run --config FILE`: the node in production.

use crate::config::Config;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Runs until Ctrl-C / SIGTERM.
pub async fn run(file: &Path) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    tracing::info!(site = %cfg.site.name, version = env!("CARGO_PKG_VERSION"), "millwright starting");
    let base = file
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let profiles = match crate::analytics::load_profiles(&cfg, &base) {
        Ok(p) => p,
        Err(errs) => {
            for e in errs {
                eprintln!("{}: {e}", file.display());
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let (tap_tx, tap_rx) = tokio::sync::mpsc::channel(4096);
    let node = crate::node::Node::start_with(
        &cfg,
        crate::node::Hooks {
            time_lapse: None,
            tap: if profiles.is_empty() {
                None
            } else {
                Some(tap_tx)
            },
        },
    )
    .context("starting the node")?;
    let analytics_status = std::sync::Arc::new(crate::analytics::AnalyticsStatus::default());
    if !profiles.is_empty() {
        let model = cfg.model.as_ref().map(|m| {
            let files: Vec<std::path::PathBuf> = m.files.iter().map(|f| base.join(f)).collect();
            let opts = millwright_slm::EngineOptions {
                threads: m.threads,
                weight_format: millwright_slm::WeightFormat::parse(&m.weights).unwrap_or_default(),
                ..Default::default()
            };
            let model = millwright_slm::load_best(&files, &opts);
            tracing::info!(model = %model.name(), "language model for explanations");
            model
        });
        let (mqtt_out, requests) = match crate::analytics::alert_client(&cfg) {
            Some((c, r)) => (Some(c), Some(r)),
            None => (None, None),
        };
        let outputs = crate::analytics::Outputs {
            mqtt: mqtt_out,
            topic_prefix: format!("{}/{}/", cfg.site.topic_root, cfg.site.name),
            influx: node.influx_writer.clone(),
            rt: tokio::runtime::Handle::current(),
            requests,
            store: node.store.clone(),
            site: cfg.site.name.clone(),
            report_interval_s: cfg.node.report_interval_s,
        };
        let st = analytics_status.clone();
        std::thread::Builder::new()
            .name("analytics".into())
            .spawn(move || crate::analytics::run(tap_rx, profiles, model, outputs, st))
            .context("starting the analytics thread")?;
    }
    let metrics_task = match cfg.node.metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("node.metrics_listen: cannot listen on {addr}"))?;
            tracing::info!(%addr, "serving /metrics and /health");
            let mut m = crate::metrics::NodeMetrics::of(&node);
            m.analytics = Some(analytics_status.clone());
            Some(tokio::spawn(crate::metrics::serve(l, m)))
        }
        None => None,
    };
    let every = Duration::from_secs(cfg.node.status_interval_s.max(1));
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = tick.tick(), if cfg.node.status_interval_s > 0 => {
                tracing::info!(status = %node.status_line(), "status");
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!(status = %node.status_line(), "millwright stopping");
    if let Some(t) = metrics_task {
        t.abort();
    }
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
