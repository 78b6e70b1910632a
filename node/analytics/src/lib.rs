//! Analytics as a library: the synchronous, I/O-free state machine that turns readings into
//! anomaly events, incidents (one per fault: the events of one asset grouped, see
//! [`incidents`]), explanation requests, alerts and maintenance reports, in the style of
//! rumqttc's `MqttState`.
//!
//! The caller feeds it ([`Analytics::on_batch`], [`Analytics::on_tick`],
//! [`Analytics::on_report_request`], [`Analytics::on_explained`]) and delivers the
//! [`Output`]s it pushes into the caller's `Vec`: publish alerts and reports, write them to the
//! database, run the explanation of an [`ExplainRequest`] wherever the model lives and hand the
//! card back. Recent readings come in through [`millwright_core::History`].
//!
//! What it owns: the asset monitors (one per asset profile), the bounded history of anomaly
//! events and explanation cards (the latest [`Options::max_events`] / [`Options::max_cards`]),
//! the open and latest closed incidents, the report schedule and its counters. An incident
//! is explained once when it opens (again when its top diagnosis changes); its card is the
//! alert. Reports of an asset are due when one of its incidents closes, every [`Options::report_interval_s`] (every asset) and on request; a site report
//! follows when the request is [`SITE_REQUEST`] or when every asset (at least two) reports at
//! once.
//!
//! What must not live here: clocks (time comes from the caller), threads, channels, MQTT,
//! the database, the store type or a model.

use millwright_core::anomaly::{Anomaly, ExplanationCard, MaintenanceReport, TextSource};
use millwright_core::{AnomalyKind, History, Incident, LanguageModel, Reading};
use millwright_detect::AssetMonitor;
use millwright_profile::Profile;
pub use millwright_reason::{AskOptions, AskRequest};
use millwright_reason::{Candidate, ExplainOptions, Explainer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod ask;
pub mod incidents;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ask;
#[cfg(test)]
mod tests_incidents;

use incidents::{Incidents, Tuning};

/// Asking for this "asset" gives the site report (after every asset's own report).
pub const SITE_REQUEST: &str = "site";

/// Settings of the machine.
#[derive(Clone, Debug)]
pub struct Options {
    /// Site name (in reports).
    pub site: String,
    /// Seconds between scheduled reports of every asset (0: none).
    pub report_interval_s: u64,
    /// Anomaly events kept for reports (the latest; each event once, in its latest phase).
    pub max_events: usize,
    /// Explanation cards kept for reports (the latest).
    pub max_cards: usize,
    /// Closed incidents kept for reports (the latest).
    pub max_incidents: usize,
    /// Seconds an incident stays open after its last symptom closed (a symptom that comes
    /// back within it joins the same incident).
    pub incident_hold_off_s: f64,
    /// Least seconds between two updates of one incident (floods are suppressed and counted).
    pub incident_update_s: f64,
    /// Seconds after an incident closed during which a new symptom consistent with its
    /// diagnosed failure mode (a symptom of that mode: signal and direction, or the sensor
    /// kind) re-opens it instead of opening a new incident.
    pub incident_rejoin_s: f64,
    /// Seconds a new symptom of a running asset with operating states (`[states]`) waits
    /// before it opens or joins an incident; if the asset stops within that time, the symptom
    /// belonged to the run-down (current, pressure and vibration fall before the state signal
    /// crosses `running_above`) and raises no incident (state-based alarming, ISA-18.2). A
    /// value above its high limit never waits. 0: no wait.
    pub stop_hold_s: f64,
    /// Answering operator questions (shifts, UTC offset, model budget).
    pub ask: millwright_reason::AskOptions,
}

impl Options {
    /// Defaults for `site`: no scheduled reports, the latest 1000 events, cards and
    /// incidents; incidents close 60 s after their last symptom, update at most once a minute,
    /// re-open on a symptom of the same failure mode up to an hour after they closed.
    pub fn new(site: impl Into<String>) -> Self {
        Self {
            site: site.into(),
            report_interval_s: 0,
            max_events: 1000,
            max_cards: 1000,
            max_incidents: 1000,
            incident_hold_off_s: 60.0,
            incident_update_s: 60.0,
            incident_rejoin_s: 3600.0,
            stop_hold_s: 45.0,
            ask: millwright_reason::AskOptions::default(),
        }
    }
}

/// Counters of the machine (atomics: readable from a metrics task while it runs).
#[derive(Debug, Default)]
pub struct Counters {
    /// Anomaly events opened.
    pub anomalies: AtomicU64,
    /// Incidents opened.
    pub incidents: AtomicU64,
    /// Incident updates told.
    pub incident_updates: AtomicU64,
    /// Symptoms that opened while the asset was running down to a stop: no incident.
    pub symptoms_at_stop: AtomicU64,
    /// Incidents closed.
    pub incidents_closed: AtomicU64,
    /// Event phases an incident took without telling (repeats, flapping, floods held back by
    /// the update rate limit).
    pub events_suppressed: AtomicU64,
    /// Explanations whose text came from the model (passed the grounding check).
    pub explanations_model: AtomicU64,
    /// Explanations that used the rule-based template.
    pub explanations_fallback: AtomicU64,
    /// Maintenance reports of an asset made.
    pub reports: AtomicU64,
    /// Site reports made.
    pub site_reports: AtomicU64,
    /// Report requests for an asset with neither a profile nor history.
    pub unknown_assets: AtomicU64,
}

impl Counters {
    /// Current value of one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// An incident that needs its explanation card; hand the card to [`Analytics::on_explained`].
#[derive(Clone, Debug)]
pub struct ExplainRequest {
    /// The incident's strongest event standing for it: its id is the incident id, its
    /// related signals include the incident's other symptoms; phase `Opened` for the first
    /// card, `Updated` when the top diagnosis changed.
    pub event: Anomaly,
    /// The profile of its asset.
    pub profile: Arc<Profile>,
    /// The incident's ranked diagnosis (the card's failure modes, causes and actions).
    pub diagnosis: Vec<Candidate>,
    /// The incident id.
    pub incident: String,
}

impl ExplainRequest {
    /// Makes the card: with `model`, its text (grounded) or the template; without, the
    /// template at once.
    pub fn explain(
        &self,
        explainer: &Explainer,
        model: Option<&mut dyn LanguageModel>,
    ) -> ExplanationCard {
        let mut facts = millwright_reason::encode(&self.event, Some(&self.profile));
        facts.set_candidates(self.diagnosis.clone());
        explainer.explain_facts(&self.event, facts, Some(&self.profile), model)
    }
}

/// What the caller must deliver.
#[derive(Clone, Debug)]
pub enum Output {
    /// Every anomaly event (opened, updated, closed), as detected.
    Event(Anomaly),
    /// An incident opened, was updated (a symptom added, severity up) or closed.
    Incident(Incident),
    /// An incident needs its card: make it and call [`Analytics::on_explained`].
    Explain(ExplainRequest),
    /// A card is ready: publish the alert and store the card (phase `Opened`: the incident's
    /// alert; `Updated`: its diagnosis changed).
    Alert(ExplanationCard),
    /// The maintenance report of one asset.
    Report {
        /// The report.
        report: MaintenanceReport,
        /// Its Markdown.
        markdown: String,
    },
    /// The site report (Markdown), after the asset reports it covers.
    SiteReport {
        /// Its Markdown.
        markdown: String,
    },
    /// An operator question that needs the model: run [`AskRequest::prompt`] through it and
    /// publish [`AskRequest::finish`] (or [`AskRequest::template`] when there is no model or
    /// its queue is full). Boxed: it carries its facts.
    Ask(Box<AskRequest>),
    /// An answer ready to publish (refusal, no data, …); the caller fills `latency_ms`.
    Answer(millwright_core::Answer),
}

struct Monitor {
    monitor: AssetMonitor,
    profile: Arc<Profile>,
}

/// The analytics state machine (see the module documentation).
pub struct Analytics {
    opts: Options,
    monitors: Vec<Monitor>,
    explainer: Explainer,
    /// Scratch buffer of the monitors' events.
    scratch: Vec<Anomaly>,
    events: Vec<Anomaly>,
    cards: Vec<ExplanationCard>,
    incidents: Incidents,
    /// Events waiting [`Options::stop_hold_s`] before they reach the incidents, with the time
    /// they may go.
    held: std::collections::VecDeque<(i64, Anomaly)>,
    /// Latest time seen (readings, ticks).
    now_ns: i64,
    last_report_ns: Option<i64>,
    counters: Arc<Counters>,
}

impl Analytics {
    /// A machine with one monitor per `(asset, profile)`; a profile the detectors cannot use is
    /// logged and skipped (validate profiles first to refuse them).
    pub fn new(opts: Options, profiles: Vec<(String, Profile)>) -> Self {
        let known_assets = profiles.iter().map(|(a, _)| a.clone()).collect();
        let mut monitors = Vec::new();
        for (asset, p) in profiles {
            match AssetMonitor::new(&asset, &p) {
                Ok(monitor) => monitors.push(Monitor {
                    monitor,
                    profile: Arc::new(p),
                }),
                Err(e) => tracing::error!(%asset, error = %e, "asset monitor not started"),
            }
        }
        let incidents = Incidents::new(
            Tuning {
                hold_off_ns: secs_ns(opts.incident_hold_off_s),
                update_every_ns: secs_ns(opts.incident_update_s),
                rejoin_ns: secs_ns(opts.incident_rejoin_s),
            },
            opts.max_incidents,
        );
        Self {
            opts,
            monitors,
            explainer: Explainer::new(ExplainOptions {
                known_assets,
                ..Default::default()
            }),
            scratch: Vec::new(),
            events: Vec::new(),
            cards: Vec::new(),
            incidents,
            held: std::collections::VecDeque::new(),
            now_ns: i64::MIN,
            last_report_ns: None,
            counters: Arc::new(Counters::default()),
        }
    }

    /// The explainer for [`ExplainRequest::explain`] (clones share its counters).
    pub fn explainer(&self) -> &Explainer {
        &self.explainer
    }

    /// The counters (shared; clone the `Arc` for a metrics task).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Assets with a monitor, in profile order.
    pub fn assets(&self) -> impl Iterator<Item = &str> {
        self.monitors.iter().map(|m| m.monitor.asset())
    }

    /// The kept anomaly events (each in its latest phase), oldest first.
    pub fn events(&self) -> &[Anomaly] {
        &self.events
    }

    /// The open incidents, then the kept closed ones.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.open().chain(self.incidents.closed())
    }

    /// The kept explanation cards, oldest first.
    pub fn cards(&self) -> &[ExplanationCard] {
        &self.cards
    }

    /// Readings in: each goes to the monitor of its asset (others are ignored).
    pub fn on_batch(&mut self, readings: &[Reading], history: &dyn History, out: &mut Vec<Output>) {
        for r in readings {
            self.now_ns = self.now_ns.max(r.ts_ns);
            for m in self.monitors.iter_mut() {
                if *r.sensor.asset == *m.monitor.asset() {
                    m.monitor.observe(r, &mut self.scratch);
                }
            }
        }
        self.step(Vec::new(), history, out);
    }

    /// The caller's clock, about once a second: dropout checks at `now_ns` and the report
    /// schedule (the first tick starts it).
    pub fn on_tick(&mut self, now_ns: i64, history: &dyn History, out: &mut Vec<Output>) {
        self.now_ns = self.now_ns.max(now_ns);
        for m in self.monitors.iter_mut() {
            m.monitor.tick(now_ns, &mut self.scratch);
        }
        let mut due = Vec::new();
        let interval_ns = i64::try_from(self.opts.report_interval_s)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000_000);
        if self.opts.report_interval_s > 0 {
            match self.last_report_ns {
                None => self.last_report_ns = Some(now_ns),
                Some(t) if now_ns.saturating_sub(t) >= interval_ns => {
                    self.last_report_ns = Some(now_ns);
                    due.extend(self.assets().map(str::to_string));
                }
                Some(_) => {}
            }
        }
        self.step(due, history, out);
    }

    /// A report request: an asset tag, or [`SITE_REQUEST`] for the site report. An asset with
    /// neither a profile nor history is logged, counted and not reported.
    pub fn on_report_request(&mut self, asset: &str, history: &dyn History, out: &mut Vec<Output>) {
        self.step(vec![asset.to_string()], history, out);
    }

    /// A card made for an [`Output::Explain`]: kept for reports and delivered as an alert.
    pub fn on_explained(&mut self, card: ExplanationCard, out: &mut Vec<Output>) {
        if card.source == TextSource::Model {
            Counters::add(&self.counters.explanations_model);
        } else {
            Counters::add(&self.counters.explanations_fallback);
        }
        self.cards.push(card.clone());
        if self.cards.len() > self.opts.max_cards {
            self.cards.drain(..self.cards.len() - self.opts.max_cards);
        }
        out.push(Output::Alert(card));
    }

    /// Test hook: `events` as if the monitors had just raised them, at time `now_ns`.
    #[cfg(test)]
    pub(crate) fn inject(
        &mut self,
        events: &[Anomaly],
        now_ns: i64,
        history: &dyn History,
        out: &mut Vec<Output>,
    ) {
        self.now_ns = self.now_ns.max(now_ns);
        self.scratch.extend_from_slice(events);
        self.step(Vec::new(), history, out);
    }

    /// Handles the monitors' new events (each joins or opens an incident), the incidents'
    /// updates and closes, then the reports due.
    fn step(&mut self, mut due: Vec<String>, history: &dyn History, out: &mut Vec<Output>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        for ev in scratch.drain(..) {
            self.now_ns = self.now_ns.max(ev.ts_ns);
            self.events.retain(|h| h.id != ev.id);
            self.events.push(ev.clone());
            if self.events.len() > self.opts.max_events {
                self.events
                    .drain(..self.events.len() - self.opts.max_events);
            }
            out.push(Output::Event(ev.clone()));
            if ev.phase == millwright_core::Phase::Opened {
                Counters::add(&self.counters.anomalies);
            }
            if self.hold(&ev, out) {
                continue;
            }
            self.deliver_event(&ev, out);
        }
        self.release(out);
        self.scratch = scratch;
        due.extend(self.incidents.poll(self.now_ns, &self.counters, out));
        if !due.is_empty() {
            self.reports(due, history, out);
        }
    }

    /// Whether `ev` waits (see [`Options::stop_hold_s`]): a new symptom of a running asset
    /// with operating states, or a later phase of a waiting one; a limit breach lets its
    /// event's waiting phases go at once.
    fn hold(&mut self, ev: &Anomaly, out: &mut Vec<Output>) -> bool {
        // A value above its high limit is urgent whatever the state; a low-limit breach (an
        // oil pressure, a speed falling at a stop) is a run-down symptom like the others.
        let e = &ev.evidence;
        let limit = (ev.kind == AnomalyKind::Limit || ev.kinds.contains(&AnomalyKind::Limit))
            && e.limits.max.is_some_and(|m| e.value > m);
        let waiting = self.held.iter().any(|(_, h)| h.id == ev.id);
        if waiting && limit {
            let mut keep = std::collections::VecDeque::new();
            let mut go = Vec::new();
            for (t, h) in self.held.drain(..) {
                if h.id == ev.id {
                    go.push(h);
                } else {
                    keep.push_back((t, h));
                }
            }
            self.held = keep;
            // Its earlier phases go first, in order.
            for h in &go {
                self.deliver_event(h, out);
            }
            return false;
        }
        if waiting {
            self.held.push_back((
                ev.ts_ns.saturating_add(secs_ns(self.opts.stop_hold_s)),
                ev.clone(),
            ));
            return true;
        }
        if limit || ev.phase != millwright_core::Phase::Opened || self.opts.stop_hold_s <= 0.0 {
            return false;
        }
        let running_with_states = self.monitors.iter().any(|m| {
            m.monitor.asset() == &*ev.sensor.asset
                && m.profile.states.is_some()
                && m.monitor.running()
        });
        if running_with_states {
            self.held.push_back((
                ev.ts_ns.saturating_add(secs_ns(self.opts.stop_hold_s)),
                ev.clone(),
            ));
        }
        running_with_states
    }

    /// Drops the waiting events of assets that stopped, then hands on those whose wait is over.
    fn release(&mut self, out: &mut Vec<Output>) {
        let monitors = &self.monitors;
        let stopped = |a: &str| {
            monitors
                .iter()
                .any(|m| m.monitor.asset() == a && !m.monitor.running())
        };
        let mut dropped_opened = 0;
        self.held.retain(|(_, h)| {
            let keep = !stopped(&h.sensor.asset);
            if !keep && h.phase == millwright_core::Phase::Opened {
                dropped_opened += 1;
            }
            keep
        });
        self.counters
            .symptoms_at_stop
            .fetch_add(dropped_opened, Ordering::Relaxed);
        while self.held.front().is_some_and(|(t, _)| *t <= self.now_ns) {
            if let Some((_, ev)) = self.held.pop_front() {
                self.deliver_event(&ev, out);
            }
        }
    }

    /// One event to the incidents of its asset.
    fn deliver_event(&mut self, ev: &Anomaly, out: &mut Vec<Output>) {
        let Some(m) = self
            .monitors
            .iter()
            .find(|m| m.monitor.asset() == &*ev.sensor.asset)
        else {
            return;
        };
        let quiet = quiet_signals(&m.monitor);
        let profile = m.profile.clone();
        self.incidents
            .on_event(ev, &profile, &quiet, &self.counters, out);
    }

    fn profile(&self, asset: &str) -> Option<Arc<Profile>> {
        self.monitors
            .iter()
            .find(|m| m.monitor.asset() == asset)
            .map(|m| m.profile.clone())
    }

    /// Reports of the `due` assets, then the site report when asked for or when every asset
    /// (at least two) reported.
    fn reports(&mut self, mut due: Vec<String>, history: &dyn History, out: &mut Vec<Output>) {
        due.sort();
        due.dedup();
        let site = due.iter().any(|a| a == SITE_REQUEST) || due.len() >= self.monitors.len().max(2);
        let mut reports = Vec::new();
        for asset in due.iter().filter(|a| *a != SITE_REQUEST) {
            let profile = self.profile(asset);
            if profile.is_none() && history.signals_of(asset).is_empty() {
                tracing::warn!(%asset, "report requested for an unknown asset");
                Counters::add(&self.counters.unknown_assets);
                continue;
            }
            reports.push(self.report(asset, profile.as_deref(), history, out));
        }
        if !site {
            return;
        }
        if reports.is_empty() {
            // A site report on request covers every asset.
            let assets: Vec<(String, Arc<Profile>)> = self
                .monitors
                .iter()
                .map(|m| (m.monitor.asset().to_string(), m.profile.clone()))
                .collect();
            for (asset, p) in assets {
                reports.push(self.report(&asset, Some(&p), history, out));
            }
        }
        let markdown = millwright_reason::site_markdown(&self.opts.site, &reports);
        Counters::add(&self.counters.site_reports);
        out.push(Output::SiteReport { markdown });
    }

    /// The report of one asset over its whole history, with its kept events and the cards.
    fn report(
        &self,
        asset: &str,
        profile: Option<&Profile>,
        history: &dyn History,
        out: &mut Vec<Output>,
    ) -> MaintenanceReport {
        let events: Vec<Anomaly> = self
            .events
            .iter()
            .filter(|a| *a.sensor.asset == *asset)
            .cloned()
            .collect();
        let incidents = self.incidents.of_asset(asset);
        let report = millwright_reason::asset_report(
            history,
            &self.opts.site,
            asset,
            profile,
            (i64::MIN, i64::MAX),
            (&events, &incidents),
            &self.cards,
        );
        let markdown = millwright_reason::to_markdown(&report);
        Counters::add(&self.counters.reports);
        out.push(Output::Report {
            report: report.clone(),
            markdown,
        });
        report
    }
}

/// Seconds as ns (negative and non-finite as 0, saturating).
fn secs_ns(s: f64) -> i64 {
    if s.is_finite() && s > 0.0 {
        (s * 1e9).min(i64::MAX as f64) as i64
    } else {
        0
    }
}

/// Signals of the asset whose baseline is learned and whose deviation is small now (|z| < 2):
/// a failure mode that expects them to move is counted against.
fn quiet_signals(m: &AssetMonitor) -> Vec<String> {
    m.signals()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let e = m.evidence(i)?;
            (e.learned && e.z.abs() < 2.0).then(|| s.sensor().signal.to_string())
        })
        .collect()
}
