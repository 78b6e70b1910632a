//! The node's analytics driver: runs the [`millwright_analytics::Analytics`] state machine on
//! its own OS thread and delivers what it says.
//!
//! One bounded input channel carries everything the machine reacts to: batches from the
//! pipeline's [`Tap`] (lossy for analytics only, drops are counted; every reading still reaches
//! the store and the sinks), report requests ([`Requests`]) and finished explanation cards.
//! The thread waits on it with `recv_timeout` and ticks the machine about once a second.
//!
//! Explanations never run on this thread: each goes to the model's own thread through its
//! bounded queue ([`millwright_slm::ModelHandle::try_run`]) and its card comes back on the
//! input channel; when the queue is full (or there is no model) the rule-based template
//! explains at once, and that is counted. So a slow model never delays detection.
//!
//! Delivery sits behind [`Deliver`]: the running node publishes on MQTT and writes to InfluxDB
//! ([`deliver::NodeDeliver`]), the demo prints. The MQTT client of the node's own publications
//! is [`deliver::alert_client`]. Operator questions arrive on the same input channel from the
//! ask service ([`Questions`]); their answers, and the model part of answering, go back to it
//! ([`Driver::with_answers`]).

pub mod deliver;
#[cfg(test)]
mod tests;

use crate::config::{AssetConfig, Config};
use millwright_analytics::{Analytics, ExplainRequest, Output};
use millwright_core::anomaly::{Anomaly, ExplanationCard, MaintenanceReport};
use millwright_core::history::{Sample, SensorHealth, Stats};
use millwright_core::{Batch, History, Incident, SensorId, Unit};
use millwright_profile::Profile;
use millwright_reason::ExplainCounters;
use millwright_slm::ModelHandle;
use millwright_store::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use millwright_analytics::SITE_REQUEST;

/// Batches, requests and cards the input channel holds before the tap drops batches.
pub const INPUT_CAPACITY: usize = 4096;
/// Explanations that may wait for the model (plus the one it is writing); more are explained
/// by the template at once.
pub const EXPLAIN_QUEUE: usize = 4;

/// Counters of analytics in the running node (for `/metrics`).
#[derive(Debug, Default)]
pub struct AnalyticsStatus {
    /// The machine's counters (anomalies, explanations, reports; set when the driver starts).
    pub machine: OnceLock<Arc<millwright_analytics::Counters>>,
    /// Grounding-check counters of the explainer (set when the driver starts).
    pub explain: OnceLock<Arc<ExplainCounters>>,
    /// Alerts published on MQTT.
    pub alerts_published: AtomicU64,
    /// Explanations the model queue could not take: the template explained at once.
    pub explanations_queue_full: AtomicU64,
    /// Batches the tap dropped because analytics was behind (the store and sinks got them).
    pub dropped_batches: AtomicU64,
    /// Counters of the node's MQTT publisher (set when it starts).
    pub publisher: OnceLock<Arc<millwright_sinks::mqtt::PublisherStatus>>,
    /// The model's figures (generations via the loader's `Metered` wrapper; queue here).
    pub model: Arc<crate::metrics::model::ModelStats>,
    /// Wall-clock time (Unix ms) the driver thread last went round its loop (`/health`).
    pub heartbeat_unix_ms: std::sync::atomic::AtomicI64,
    /// Counters of the ask service (set when it starts).
    pub ask: OnceLock<Arc<crate::ask::AskStatus>>,
}

impl AnalyticsStatus {
    /// One of the machine's counters (0 before the driver starts).
    pub fn machine(&self, f: impl Fn(&millwright_analytics::Counters) -> &AtomicU64) -> u64 {
        self.machine
            .get()
            .map(|c| f(c).load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

/// Resolves an asset's profile path (relative paths are relative to the config file's folder).
pub fn profile_path(base: &Path, a: &AssetConfig) -> PathBuf {
    let p = PathBuf::from(&a.profile);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// Loads every asset's profile; errors name the asset and the file.
pub fn load_profiles(cfg: &Config, base: &Path) -> Result<Vec<(String, Profile)>, Vec<String>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (i, a) in cfg.assets.iter().enumerate() {
        let path = profile_path(base, a);
        match Profile::load(&path) {
            Ok(p) => {
                let v = p.validate();
                if v.is_empty() {
                    out.push((a.name.clone(), p));
                } else {
                    for e in v {
                        errs.push(format!("assets[{i}] ({}): {}: {e}", a.name, path.display()));
                    }
                }
            }
            Err(e) => errs.push(format!("assets[{i}] ({}): {e}", a.name)),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// What the driver thread reacts to.
pub enum Input {
    /// Readings from the pipeline, with the bytes they hold of the tap's budget (given back
    /// when the driver is done with them).
    Batch(Batch, Option<millwright_core::budget::Held>),
    /// A report request: an asset tag or [`SITE_REQUEST`].
    ReportRequest(String),
    /// A card made on the model thread.
    Explained(Box<ExplanationCard>),
    /// An operator's question, checked by the ask service (`crate::ask`).
    Question(Box<millwright_core::ask::Question>),
    /// Nothing to do but look at the time and the tap (sent when the tap closes).
    Wake,
}

/// The pipeline's lossy tap into analytics: never blocks, counts what it drops. Dropping the
/// tap ends the driver (after in-flight explanations, within [`DriverOptions::drain`]).
pub struct Tap {
    tx: SyncSender<Input>,
    budget: Arc<millwright_core::budget::ByteBudget>,
    closed: Arc<AtomicBool>,
    status: Arc<AnalyticsStatus>,
}

impl Tap {
    /// Hands a batch to analytics, or counts it as dropped when analytics is behind (the
    /// channel is full in batches, or the tap's byte budget is spent: a budget hit).
    pub fn send(&self, batch: Batch) {
        use millwright_core::budget::ByteSize;
        let Some(held) = self.budget.try_take(batch.byte_size()) else {
            self.status.dropped_batches.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.tx.try_send(Input::Batch(batch, Some(held))).is_err() {
            self.status.dropped_batches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.tx.try_send(Input::Wake);
    }
}

/// The driver's end of the input channel (hand it to [`Driver::new`]).
pub struct Inbox {
    tx: SyncSender<Input>,
    rx: Receiver<Input>,
    closed: Arc<AtomicBool>,
    status: Arc<AnalyticsStatus>,
}

impl Inbox {
    /// A sender of report requests.
    pub fn requests(&self) -> Requests {
        Requests(self.tx.clone())
    }

    /// A sender of operator questions.
    pub fn questions(&self) -> Questions {
        Questions(self.tx.clone())
    }
}

/// Sends operator questions to the driver (cloneable; never blocks).
#[derive(Clone)]
pub struct Questions(SyncSender<Input>);

impl Questions {
    /// Hands a question over; false when analytics is behind or stopped (answer `busy`).
    pub fn ask(&self, q: millwright_core::ask::Question) -> bool {
        self.0.try_send(Input::Question(Box::new(q))).is_ok()
    }
}

/// The bounded input channel of analytics: the pipeline's tap and the driver's inbox (the tap
/// capped at [`INPUT_CAPACITY`] batches and the default budget's share of bytes).
#[cfg_attr(not(test), allow(dead_code))]
pub fn channel(status: Arc<AnalyticsStatus>) -> (Tap, Inbox) {
    let caps = crate::memory::MemoryCaps::of_mb(crate::memory::DEFAULT_BUDGET_MB);
    channel_with(
        status,
        millwright_core::budget::ByteBudget::new("analytics_tap", caps.tap_bytes),
    )
}

/// The bounded input channel of analytics, the tap capped at `tap_budget`'s bytes too.
pub fn channel_with(
    status: Arc<AnalyticsStatus>,
    tap_budget: Arc<millwright_core::budget::ByteBudget>,
) -> (Tap, Inbox) {
    let (tx, rx) = sync_channel(INPUT_CAPACITY);
    let closed = Arc::new(AtomicBool::new(false));
    let tap = Tap {
        tx: tx.clone(),
        budget: tap_budget,
        closed: closed.clone(),
        status: status.clone(),
    };
    (
        tap,
        Inbox {
            tx,
            rx,
            closed,
            status,
        },
    )
}

/// Sends report requests to the driver (cloneable).
#[derive(Clone)]
pub struct Requests(SyncSender<Input>);

impl Requests {
    /// Asks for the report of `asset` (or [`SITE_REQUEST`]); false when analytics is behind
    /// or stopped.
    pub fn request(&self, asset: String) -> bool {
        self.0.try_send(Input::ReportRequest(asset)).is_ok()
    }
}

/// The shared local store as [`History`]: one short lock per question.
pub struct SharedStore(pub Arc<Mutex<Store>>);

impl SharedStore {
    fn with<T>(&self, f: impl FnOnce(&Store) -> T) -> Option<T> {
        self.0.lock().ok().map(|s| f(&s))
    }
}

impl History for SharedStore {
    fn signals_of(&self, asset: &str) -> Vec<SensorId> {
        self.with(|s| s.signals_of(asset)).unwrap_or_default()
    }
    fn unit(&self, sensor: &SensorId) -> Option<Unit> {
        self.with(|s| s.unit(sensor).cloned()).flatten()
    }
    fn last(&self, sensor: &SensorId) -> Option<Sample> {
        self.with(|s| s.last(sensor)).flatten()
    }
    fn stats(&self, sensor: &SensorId, from_ns: i64, to_ns: i64) -> Option<Stats> {
        self.with(|s| s.stats(sensor, from_ns, to_ns)).flatten()
    }
    fn health(&self, sensor: &SensorId) -> Option<SensorHealth> {
        self.with(|s| s.health(sensor)).flatten()
    }
}

/// Where the machine's outputs go.
pub trait Deliver {
    /// An incident is to be explained (its card follows in [`Deliver::alert`]); `event` is
    /// its strongest event, with the incident's id.
    fn opened(&mut self, _event: &Anomaly) {}
    /// An incident opened, was updated or closed (ignored unless delivered).
    fn incident(&mut self, _incident: &Incident) {}
    /// Every phase of an anomaly event (opened, updated, closed), e.g. to write it out.
    fn event(&mut self, _event: &Anomaly) {}
    /// A card is ready: the alert.
    fn alert(&mut self, card: &ExplanationCard);
    /// The maintenance report of one asset.
    fn report(&mut self, report: &MaintenanceReport, markdown: &str);
    /// The site report.
    fn site_report(&mut self, markdown: &str);
}

/// Timing of the driver.
#[derive(Clone, Copy, Debug)]
pub struct DriverOptions {
    /// How often the machine ticks with the wall clock (dropouts, report schedule); None: never
    /// (the demo's time-lapsed readings are not on the wall clock).
    pub tick: Option<Duration>,
    /// After the tap closes, how long to wait for explanations still with the model.
    pub drain: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            tick: Some(Duration::from_secs(1)),
            drain: Duration::from_secs(60),
        }
    }
}

/// The analytics thread's loop: input channel → machine → delivery, explanations through the
/// model queue.
pub struct Driver<D: Deliver> {
    machine: Analytics,
    history: Box<dyn History + Send>,
    model: Option<ModelHandle>,
    deliver: D,
    status: Arc<AnalyticsStatus>,
    opts: DriverOptions,
    tx: SyncSender<Input>,
    rx: Receiver<Input>,
    closed: Arc<AtomicBool>,
    in_flight: usize,
    answers: Option<crate::ask::AnswerPort>,
}

impl<D: Deliver> Driver<D> {
    /// Answers to operator questions go to the ask service through `port` (without one they
    /// are dropped: nobody asked over MQTT).
    pub fn with_answers(mut self, port: crate::ask::AnswerPort) -> Self {
        self.answers = Some(port);
        self
    }

    /// A driver reading `inbox` (whose tap feeds it).
    pub fn new(
        inbox: Inbox,
        machine: Analytics,
        history: Box<dyn History + Send>,
        model: Option<ModelHandle>,
        deliver: D,
        opts: DriverOptions,
    ) -> Self {
        let status = inbox.status;
        let _ = status.machine.set(machine.counters().clone());
        let _ = status.explain.set(machine.explainer().counters().clone());
        Self {
            machine,
            history,
            model,
            deliver,
            status,
            opts,
            tx: inbox.tx,
            rx: inbox.rx,
            closed: inbox.closed,
            in_flight: 0,
            answers: None,
        }
    }

    /// Runs until the tap closes and the explanations with the model are back (or the drain
    /// time is over); returns the machine (the demo reports from it at the end).
    pub fn run(mut self) -> (Analytics, D) {
        let mut out = Vec::new();
        let mut next_tick = self.opts.tick.map(|t| Instant::now() + t);
        let mut drain_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            self.status
                .heartbeat_unix_ms
                .store(crate::time_ns() / 1_000_000, Ordering::Relaxed);
            if self.closed.load(Ordering::Acquire) {
                let until = *drain_until.get_or_insert(now + self.opts.drain);
                if self.in_flight == 0 || now >= until {
                    break;
                }
            }
            let wait = next_tick
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            match self.rx.recv_timeout(wait) {
                Ok(Input::Batch(b, _held)) => self.machine.on_batch(&b, &*self.history, &mut out),
                Ok(Input::ReportRequest(asset)) => {
                    self.machine
                        .on_report_request(&asset, &*self.history, &mut out)
                }
                Ok(Input::Explained(card)) => {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.status
                        .model
                        .queue_depth
                        .store(self.in_flight as u64, Ordering::Relaxed);
                    self.machine.on_explained(*card, &mut out);
                }
                Ok(Input::Question(q)) => self.machine.on_question(*q, &*self.history, &mut out),
                Ok(Input::Wake) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if let (Some(t), Some(every)) = (next_tick, self.opts.tick) {
                if Instant::now() >= t {
                    next_tick = Some(Instant::now() + every);
                    self.machine
                        .on_tick(crate::time_ns(), &*self.history, &mut out);
                }
            }
            self.deliver_all(&mut out);
        }
        (self.machine, self.deliver)
    }

    /// Delivers `out` (and what explaining at once adds to it) until it is empty.
    pub fn deliver_all(&mut self, out: &mut Vec<Output>) {
        while !out.is_empty() {
            for o in std::mem::take(out) {
                match o {
                    Output::Event(ev) => {
                        tracing::debug!(id = %ev.id, phase = ?ev.phase, kind = ?ev.kind, "anomaly event");
                        self.deliver.event(&ev);
                    }
                    Output::Incident(i) => self.deliver.incident(&i),
                    Output::Explain(req) => {
                        self.deliver.opened(&req.event);
                        self.explain(req, out);
                    }
                    Output::Alert(card) => self.deliver.alert(&card),
                    Output::Report { report, markdown } => self.deliver.report(&report, &markdown),
                    Output::SiteReport { markdown } => self.deliver.site_report(&markdown),
                    // The model part of answering runs on the ask service's side of the
                    // model queue: this thread never waits for the model.
                    Output::Ask(req) => self.answer(crate::ask::FromAnalytics::Ask(req)),
                    Output::Answer(a) => {
                        self.answer(crate::ask::FromAnalytics::Answer(Box::new(a)))
                    }
                }
            }
        }
    }

    fn answer(&self, m: crate::ask::FromAnalytics) {
        match &self.answers {
            Some(port) => port.send(m),
            None => tracing::debug!("an answer without an ask service: dropped"),
        }
    }

    /// Hands the explanation to the model thread; the template explains at once when its
    /// queue is full or there is no model.
    fn explain(&mut self, req: ExplainRequest, out: &mut Vec<Output>) {
        if let Some(model) = &self.model {
            let (job_req, explainer, tx) = (
                req.clone(),
                self.machine.explainer().clone(),
                self.tx.clone(),
            );
            let (queued, stats) = (Instant::now(), self.status.model.clone());
            let job = Box::new(move |m: &mut dyn millwright_core::LanguageModel| {
                stats.job_started(queued.elapsed());
                let card = job_req.explain(&explainer, Some(m));
                let _ = tx.send(Input::Explained(Box::new(card)));
            });
            match model.try_run(job) {
                Ok(()) => {
                    self.in_flight += 1;
                    self.status
                        .model
                        .queue_depth
                        .store(self.in_flight as u64, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    if matches!(e, millwright_core::SlmError::Busy(_)) {
                        self.status
                            .explanations_queue_full
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::warn!(asset = %req.event.sensor.asset, error = %e, "model not free; the template explains");
                }
            }
        }
        let card = req.explain(self.machine.explainer(), None);
        self.machine.on_explained(card, out);
    }
}
