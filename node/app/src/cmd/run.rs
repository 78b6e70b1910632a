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
    let budgets = crate::memory::Budgets::new(crate::memory::MemoryCaps::of(&cfg));
    let (tap, inbox) =
        crate::analytics::channel_with(analytics_status.clone(), budgets.analytics_tap.clone());
    let node = crate::node::Node::start_with(
        &cfg,
        crate::node::Hooks {
            time_lapse: None,
            tap: (!profiles.is_empty()).then_some(tap),
            base_dir: Some(base.clone()),
            budgets: Some(budgets),
        },
    )
    .context("starting the node")?;
    let limit_profiles = profiles.clone();
    // The node's publisher (status topic, alerts, reports) runs whether or not assets are
    // configured, so the status topic always exists.
    let publisher = crate::analytics::deliver::alert_client(&cfg, inbox.requests());
    if let Some(p) = &publisher {
        let _ = analytics_status.publisher.set(p.status().clone());
    }
    let mut analytics_thread = None;
    if !profiles.is_empty() {
        analytics_thread = Some(start_analytics(
            &cfg,
            &base,
            profiles,
            &node,
            inbox,
            &analytics_status,
            publisher.clone(),
        )?);
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
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    let mut health_topic = HealthTopic::default();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut node = node;
    let mut failed = None;
    loop {
        tokio::select! {
            _ = tick.tick(), if cfg.node.status_interval_s > 0 => {
                tracing::info!(status = %node.status_line(), "status");
            }
            _ = watch.tick() => {
                if let Err(e) = supervise(&mut node, &mut analytics_thread, publisher.as_ref()).await {
                    tracing::error!(error = %e, "a task of the node failed; stopping so the service manager restarts it");
                    failed = Some(e);
                }
                if let Some(p) = &publisher {
                    health_topic.publish(p, &metrics, every);
                }
                if failed.is_some() {
                    break;
                }
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
    Ok(if failed.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The node's supervision round: the node's own tasks ([`crate::node::Node::supervise`]), the
/// analytics thread and the MQTT publisher's task. Either of the last two ending before shutdown
/// is fatal (they hold state a restart in place would not rebuild); the caller exits non-zero.
async fn supervise(
    node: &mut crate::node::Node,
    analytics: &mut Option<std::thread::JoinHandle<()>>,
    publisher: Option<&millwright_sinks::mqtt::MqttPublisher>,
) -> Result<(), String> {
    node.supervise().await?;
    if analytics.as_ref().is_some_and(|t| t.is_finished()) {
        let msg = match analytics.take().map(|t| t.join()) {
            Some(Err(p)) => crate::node::panic_message(&*p),
            _ => "ended".into(),
        };
        node.tasks.panicked("analytics thread", &msg);
        return Err(node
            .tasks
            .fatal(format!("the analytics thread stopped: {msg}")));
    }
    if publisher.is_some_and(|p| !p.is_running()) {
        node.tasks
            .panicked("mqtt publisher", "its event loop ended");
        return Err(node
            .tasks
            .fatal("the MQTT publisher's event loop ended".into()));
    }
    Ok(())
}

/// Publishes the health document retained on `status/health`: when the overall state or its
/// reasons change, after every (re)connection of the publisher, and at least every status
/// interval.
#[derive(Default)]
struct HealthTopic {
    last: Option<(crate::metrics::health::Overall, Vec<String>, u64)>,
    at: Option<std::time::Instant>,
}

impl HealthTopic {
    fn publish(
        &mut self,
        p: &millwright_sinks::mqtt::MqttPublisher,
        m: &crate::metrics::NodeMetrics,
        every: Duration,
    ) {
        use std::sync::atomic::Ordering;
        let conns = p.status().connections.load(Ordering::Relaxed);
        if conns == 0 {
            return;
        }
        let h = crate::metrics::health::health(m, crate::time_ns() / 1_000_000);
        let key = (h.overall, h.reasons, conns);
        let due = self.at.is_none_or(|t| t.elapsed() >= every);
        if self.last.as_ref() == Some(&key) && !due {
            return;
        }
        if p.publish_retained(
            millwright_sinks::mqtt::STATUS_HEALTH_SUFFIX,
            h.doc.to_string(),
        ) {
            self.last = Some(key);
            self.at = Some(std::time::Instant::now());
        }
    }
}

/// Starts the analytics thread; the model loads on its own thread, never on the runtime.
pub(crate) fn start_analytics(
    cfg: &Config,
    base: &Path,
    profiles: Vec<(String, millwright_profile::Profile)>,
    node: &crate::node::Node,
    inbox: crate::analytics::Inbox,
    status: &std::sync::Arc<crate::analytics::AnalyticsStatus>,
    publisher: Option<millwright_sinks::mqtt::MqttPublisher>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
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
            stats.set_state(crate::metrics::model::ModelState::Loading);
            // The model's threads (its own and the kernel pool's) lower themselves to this
            // when they start: ingest and detection run first when the cores are busy.
            millwright_slm::priority::set_nice(m.nice);
            let loader = move || -> Box<dyn millwright_core::LanguageModel> {
                // On the model thread, which has tried to lower itself by now: said once.
                let p = millwright_slm::priority::status();
                match (&p.error, p.nice) {
                    (Some(e), _) => {
                        tracing::warn!(error = %e, "the model's threads keep the node's priority")
                    }
                    (None, Some(n)) => {
                        tracing::info!(nice = n, "the model's threads run below ingest")
                    }
                    (None, None) => {}
                }
                let rss0 = crate::procinfo::rss_mb();
                let mut model = millwright_slm::load_best(&files, &opts);
                stats.set_state(crate::metrics::model::ModelState::of(model.as_mut()));
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
        .context("starting the analytics thread")
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
