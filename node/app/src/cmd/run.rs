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
    let analytics_status = std::sync::Arc::new(crate::analytics::AnalyticsStatus::default());
    let (tap, inbox) = crate::analytics::channel(analytics_status.clone());
    let node = crate::node::Node::start_with(
        &cfg,
        crate::node::Hooks {
            time_lapse: None,
            tap: (!profiles.is_empty()).then_some(tap),
        },
    )
    .context("starting the node")?;
    let limit_profiles = profiles.clone();
    if !profiles.is_empty() {
        start_analytics(&cfg, &base, profiles, &node, inbox, &analytics_status)?;
    }
    let metrics = std::sync::Arc::new(crate::metrics::NodeMetrics {
        analytics: Some(analytics_status.clone()),
        ..crate::metrics::NodeMetrics::of(&node)
    });
    let metrics_task = match cfg.node.metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("node.metrics_listen: cannot listen on {addr}"))?;
            tracing::info!(%addr, "serving /metrics and /health");
            Some(tokio::spawn(crate::metrics::serve(l, metrics.clone())))
        }
        None => None,
    };
    let metrics_writer = match (&node.influx_writer, cfg.node.metrics_interval_s) {
        (Some(w), every) if every > 0 => Some(tokio::spawn(crate::metrics::write_every(
            metrics.clone(),
            limit_profiles,
            w.clone(),
            Duration::from_secs(every),
        ))),
        _ => None,
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
    for t in [metrics_task, metrics_writer].into_iter().flatten() {
        t.abort();
    }
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Starts the analytics thread; the model loads on its own thread, never on the runtime.
pub(crate) fn start_analytics(
    cfg: &Config,
    base: &Path,
    profiles: Vec<(String, millwright_profile::Profile)>,
    node: &crate::node::Node,
    inbox: crate::analytics::Inbox,
    status: &std::sync::Arc<crate::analytics::AnalyticsStatus>,
) -> anyhow::Result<()> {
    use crate::analytics::{deliver, Driver, DriverOptions, SharedStore};
    let model = match &cfg.model {
        Some(m) => {
            let files: Vec<std::path::PathBuf> = m.files.iter().map(|f| base.join(f)).collect();
            let opts = millwright_slm::EngineOptions {
                threads: m.threads,
                weight_format: millwright_slm::WeightFormat::parse(&m.weights).unwrap_or_default(),
                ..Default::default()
            };
            let stats = status.model.clone();
            let loader = move || -> Box<dyn millwright_core::LanguageModel> {
                let rss0 = crate::procinfo::rss_mb();
                let model = millwright_slm::load_best(&files, &opts);
                if let (Some(a), Some(b)) = (rss0, crate::procinfo::rss_mb()) {
                    let bytes = ((b - a).max(0.0) * 1024.0 * 1024.0) as u64;
                    stats
                        .resident_bytes
                        .store(bytes, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::info!(model = %model.name(), "language model for explanations");
                Box::new(crate::metrics::model::Metered::new(model, stats))
            };
            // Room for the explanations plus the questions the ask service lets through.
            let queue = crate::analytics::EXPLAIN_QUEUE + crate::ask::service::MODEL_SLOTS;
            Some(
                millwright_slm::ModelHandle::spawn_with(loader, queue)
                    .context("starting the model thread")?,
            )
        }
        None => None,
    };
    let mut opts = millwright_analytics::Options::new(cfg.site.name.clone());
    opts.report_interval_s = cfg.node.report_interval_s;
    opts.ask = cfg.ask.ask_options();
    let machine = millwright_analytics::Analytics::new(opts, profiles);
    let publisher = deliver::alert_client(cfg, inbox.requests());
    if let Some(p) = &publisher {
        let _ = status.publisher.set(p.status().clone());
    }
    let deliver = deliver::NodeDeliver {
        mqtt: publisher,
        influx: node.influx_writer.clone(),
        rt: tokio::runtime::Handle::current(),
        status: status.clone(),
    };
    let answers = start_ask(cfg, &inbox, model.clone(), node, status)?;
    let history = Box::new(SharedStore(node.store.clone()));
    let mut driver = Driver::new(
        inbox,
        machine,
        history,
        model,
        deliver,
        DriverOptions::default(),
    );
    if let Some(port) = answers {
        driver = driver.with_answers(port);
    }
    std::thread::Builder::new()
        .name("analytics".into())
        .spawn(move || {
            driver.run();
        })
        .context("starting the analytics thread")?;
    Ok(())
}

/// Starts the ask service when `[ask]` is enabled (and `[mqtt]` exists): questions on
/// `<root>/<site>/ask`, answers on `…/answers/<id>`.
fn start_ask(
    cfg: &Config,
    inbox: &crate::analytics::Inbox,
    model: Option<millwright_slm::ModelHandle>,
    node: &crate::node::Node,
    status: &std::sync::Arc<crate::analytics::AnalyticsStatus>,
) -> anyhow::Result<Option<crate::ask::AnswerPort>> {
    let Some(m) = cfg.mqtt.as_ref().filter(|_| cfg.ask.is_enabled(true)) else {
        tracing::info!("operator questions are off ([ask] enabled = false or no [mqtt])");
        return Ok(None);
    };
    let ask_status = std::sync::Arc::new(crate::ask::AskStatus::default());
    let _ = status.ask.set(ask_status.clone());
    let setup = crate::ask::AskSetup {
        conn: m
            .connection()
            .with_client_id(format!("{}-ask", m.client_id)),
        prefix: format!("{}/{}", cfg.site.topic_root, cfg.site.name),
        topic_root: cfg.site.topic_root.clone(),
        section: cfg.ask.clone(),
        assets: crate::ask::service::known_assets(
            cfg.assets.iter().map(|a| a.name.clone()).collect(),
            node.store.clone(),
        ),
        clock: std::sync::Arc::new(crate::time_ns),
        model,
        status: ask_status,
    };
    let (port, _task) =
        crate::ask::spawn(setup, inbox.questions()).context("starting the ask service")?;
    Ok(Some(port))
}
