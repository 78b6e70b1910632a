//! `millwright run --config FILE`: the node in production.

use crate::config::Config;
use crate::node::Node;
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
    let node = Node::start(&cfg).context("starting the node")?;
    let metrics_task = match cfg.node.metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("node.metrics_listen: cannot listen on {addr}"))?;
            tracing::info!(%addr, "serving /metrics and /health");
            Some(tokio::spawn(crate::metrics::serve(
                l,
                crate::metrics::NodeMetrics::of(&node),
            )))
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
    node.shutdown();
    Ok(ExitCode::SUCCESS)
}
