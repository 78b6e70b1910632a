//! Incidents: the anomaly events of one asset that overlap in time and are of one class
//! (process symptoms, or sensor/data symptoms: flatline, dropout) are one incident — one fault,
//! one alert (ISA-18.2 / EEMUA 191). An incident opens with its first event, takes every
//! further event of its asset and class while it is open (or within the hold-off after its
//! last symptom closed), tells an update when a symptom is added or its severity rises (at most
//! one per [`Tuning::update_every_ns`]; the rest are suppressed and counted) and closes once
//! every symptom has been normal for [`Tuning::hold_off_ns`]. A closed incident re-opens (an
//! update, not a new incident) when a new event of its asset and class comes within
//! [`Tuning::rejoin_ns`] of its close and is consistent with its diagnosed failure mode (a
//! symptom of that mode: the signal in its direction, or the sensor kind on the signal): the
//! same fault coming back is not a new fault.
//!
//! Part of the analytics state machine: no clock (time from the readings and ticks), no I/O.
//! The diagnosis itself is `millwright_reason::diagnose`.

use crate::{Counters, ExplainRequest, Output};
use millwright_core::{
    Anomaly, AnomalyKind, DiagnosedMode, Direction, Incident, IncidentSymptom, Phase,
    RelatedSignal, Resolution, Severity,
};
use millwright_profile::Profile;
use millwright_reason::facts::anomaly_direction;
use millwright_reason::{diagnose, Candidate, Observed};
use std::sync::Arc;

/// Peak score from which an incident is a warning (a limit breach makes it critical).
pub const WARNING_SCORE: f64 = 0.8;

/// Timing of incidents, ns.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// An incident closes this long after its last symptom closed (a symptom that comes back
    /// before keeps it open: no close-and-reopen on a flapping signal).
    pub hold_off_ns: i64,
    /// Least time between two updates of one incident.
    pub update_every_ns: i64,
    /// A closed incident re-opens on an event consistent with its diagnosis this long after it
    /// closed.
    pub rejoin_ns: i64,
}

/// Sensor or data symptoms (a stuck or silent signal) are a fault of their own.
fn is_sensor_kind(k: AnomalyKind) -> bool {
    matches!(k, AnomalyKind::Flatline | AnomalyKind::Dropout)
}

struct Open {
    incident: Incident,
    /// Latest phase of each of its events.
    events: Vec<Anomaly>,
    profile: Arc<Profile>,
    diagnosis: Vec<Candidate>,
    sensor: bool,
    all_closed_since: Option<i64>,
    last_told_ns: i64,
    pending: bool,
    explained_top: Option<String>,
}

/// The open incidents and the latest closed ones.
pub struct Incidents {
    tuning: Tuning,
    open: Vec<Open>,
    /// Recently closed incidents that may re-open, oldest first.
    recent: Vec<Open>,
    closed: Vec<Incident>,
    max_closed: usize,
}

fn severity(events: &[Anomaly]) -> Severity {
    if events
        .iter()
        .any(|e| e.kind == AnomalyKind::Limit || e.kinds.contains(&AnomalyKind::Limit))
    {
        Severity::Critical
    } else if events.iter().any(|e| e.peak_score >= WARNING_SCORE) {
        Severity::Warning
    } else {
        Severity::Watch
    }
}

/// Whether event `ev` is a symptom of failure mode `mode` of `profile`: its signal in its
/// direction, or (a flat symptom) its kind on that signal.
fn consistent(ev: &Anomaly, profile: &Profile, mode: Option<&str>) -> bool {
    let Some(m) = mode.and_then(|id| profile.failure_modes.iter().find(|m| m.id == id)) else {
        return false;
    };
    let dir = anomaly_direction(ev);
    m.symptoms.iter().any(|s| {
        s.signal == *ev.sensor.signal
            && if s.direction == Direction::Flat {
                s.kinds.is_empty() || s.kinds.contains(&ev.kind)
            } else {
                s.direction == dir
                    && (s.kinds.is_empty() || ev.kinds.iter().any(|k| s.kinds.contains(k)))
            }
    })
}

fn symptom(e: &Anomaly) -> IncidentSymptom {
    IncidentSymptom {
        event_id: e.id.clone(),
        signal: e.sensor.signal.to_string(),
        kind: e.kind,
        kinds: e.kinds.clone(),
        direction: anomaly_direction(e),
        peak_score: e.peak_score,
        open: e.phase != Phase::Closed,
        resolution: e.resolution,
    }
}

fn modes(c: &[Candidate]) -> Vec<DiagnosedMode> {
    c.iter()
        .map(|c| DiagnosedMode {
            id: c.id.clone(),
            title: c.title.clone(),
            score: (c.score * 1000.0).round() / 1000.0,
            confidence: c.confidence,
        })
        .collect()
}

impl Open {
    /// Recomputes the diagnosis from every event (own signals, kinds, related signals).
    fn diagnose(&mut self, quiet: &[String]) {
        let mut observed = Vec::new();
        for e in &self.events {
            Observed::add_event(&mut observed, e);
        }
        self.diagnosis = diagnose(&observed, quiet, &self.profile);
        self.incident.diagnosis = modes(&self.diagnosis);
        self.incident.symptoms = self.events.iter().map(symptom).collect();
    }

    /// The request for the incident's explanation card: its strongest open event (else the
    /// strongest) standing for the incident (id = the incident id), with the other symptoms'
    /// signals as related signals, and the incident's diagnosis.
    fn explain_request(&self, phase: Phase) -> Option<ExplainRequest> {
        let lead = self
            .events
            .iter()
            .filter(|e| e.phase != Phase::Closed)
            .max_by(|a, b| a.peak_score.total_cmp(&b.peak_score))
            .or_else(|| {
                self.events
                    .iter()
                    .max_by(|a, b| a.peak_score.total_cmp(&b.peak_score))
            })?;
        let mut event = lead.clone();
        event.id = self.incident.id.clone();
        event.phase = phase;
        for e in &self.events {
            let d = anomaly_direction(e);
            if *e.sensor.signal != *lead.sensor.signal
                && d != Direction::Flat
                && !event.related.iter().any(|r| r.signal == e.sensor.signal)
            {
                event.related.push(RelatedSignal {
                    signal: e.sensor.signal.clone(),
                    z: e.evidence.z,
                    rate_per_min: e.evidence.rate_per_min,
                    direction: d,
                });
            }
        }
        Some(ExplainRequest {
            event,
            profile: self.profile.clone(),
            diagnosis: self.diagnosis.clone(),
            incident: self.incident.id.clone(),
        })
    }
}

impl Incidents {
    /// No incidents yet; `max_closed` closed ones are kept for reports.
    pub fn new(tuning: Tuning, max_closed: usize) -> Self {
        Self {
            tuning,
            open: Vec::new(),
            recent: Vec::new(),
            closed: Vec::new(),
            max_closed,
        }
    }

    /// The open incidents.
    pub fn open(&self) -> impl Iterator<Item = &Incident> {
        self.open.iter().map(|o| &o.incident)
    }

    /// The kept closed incidents, oldest first.
    pub fn closed(&self) -> &[Incident] {
        &self.closed
    }

    /// Every kept incident of `asset` (closed ones, then open ones) in its latest phase.
    pub fn of_asset(&self, asset: &str) -> Vec<Incident> {
        self.closed
            .iter()
            .chain(self.open())
            .filter(|i| i.asset == asset)
            .cloned()
            .collect()
    }

    /// One anomaly event of `profile`'s asset; `quiet`: the asset's signals that are learned
    /// and normal now.
    pub fn on_event(
        &mut self,
        ev: &Anomaly,
        profile: &Arc<Profile>,
        quiet: &[String],
        counters: &Counters,
        out: &mut Vec<Output>,
    ) {
        let asset = &*ev.sensor.asset;
        let sensor = is_sensor_kind(ev.kind);
        let idx = self
            .open
            .iter()
            .position(|o| o.events.iter().any(|e| e.id == ev.id))
            .or_else(|| {
                (ev.phase == Phase::Opened)
                    .then(|| {
                        self.open
                            .iter()
                            .position(|o| o.incident.asset == asset && o.sensor == sensor)
                    })
                    .flatten()
            });
        let idx = match idx {
            Some(i) => Some(i),
            None if ev.phase == Phase::Opened => self.reopen(ev, sensor),
            None => None,
        };
        let Some(idx) = idx else {
            if ev.phase == Phase::Opened {
                self.start(ev, profile, sensor, quiet, counters, out);
            }
            return;
        };
        let Some(o) = self.open.get_mut(idx) else {
            return;
        };
        let before_sev = o.incident.severity;
        let mut news;
        match o.events.iter().position(|e| e.id == ev.id) {
            Some(k) => {
                // A known event: a new main kind on its signal is news, the rest is not.
                let old_kind = o.events.get(k).map(|e| e.kind);
                news = ev.phase == Phase::Updated
                    && old_kind != Some(ev.kind)
                    && !o
                        .events
                        .iter()
                        .any(|x| x.sensor.signal == ev.sensor.signal && x.kinds.contains(&ev.kind));
                if let Some(e) = o.events.get_mut(k) {
                    *e = ev.clone();
                }
            }
            None => {
                // A new event joins: news when its signal or kind is new to the incident.
                news = !o.events.iter().any(|x| {
                    x.sensor.signal == ev.sensor.signal
                        && (x.kind == ev.kind || x.kinds.contains(&ev.kind))
                });
                o.events.push(ev.clone());
                o.incident.events_merged += 1;
            }
        }
        if ev.phase != Phase::Closed {
            o.all_closed_since = None;
        } else if o.events.iter().all(|e| e.phase == Phase::Closed) {
            o.all_closed_since = Some(ev.ts_ns);
        }
        o.diagnose(quiet);
        let sev = severity(&o.events).max(before_sev);
        o.incident.severity = sev;
        news |= sev != before_sev;
        if ev.phase != Phase::Closed {
            if news && !o.pending {
                o.pending = true;
            } else {
                o.incident.events_suppressed += 1;
                Counters::add(&counters.events_suppressed);
            }
        }
    }

    /// Re-opens the latest recently closed incident of the event's asset and class that the
    /// event is consistent with (see the module doc); its index among the open ones.
    fn reopen(&mut self, ev: &Anomaly, sensor: bool) -> Option<usize> {
        let horizon = ev.since_ns.saturating_sub(self.tuning.rejoin_ns);
        self.recent
            .retain(|o| o.incident.closed_ns.is_some_and(|t| t >= horizon));
        let k = self.recent.iter().rposition(|o| {
            o.incident.asset == *ev.sensor.asset
                && o.sensor == sensor
                && o.incident.closed_ns.is_some_and(|t| t <= ev.since_ns)
                && consistent(ev, &o.profile, o.diagnosis.first().map(|c| c.id.as_str()))
        })?;
        let mut o = self.recent.remove(k);
        self.closed.retain(|i| i.id != o.incident.id);
        o.incident.phase = Phase::Updated;
        o.incident.closed_ns = None;
        o.incident.resolution = None;
        o.all_closed_since = None;
        // Told as an update (the symptom is back), not as a new incident.
        o.pending = true;
        self.open.push(o);
        Some(self.open.len() - 1)
    }

    fn start(
        &mut self,
        ev: &Anomaly,
        profile: &Arc<Profile>,
        sensor: bool,
        quiet: &[String],
        counters: &Counters,
        out: &mut Vec<Output>,
    ) {
        let mut o = Open {
            incident: Incident {
                id: format!("{}#{}", ev.sensor.asset, ev.since_ns),
                asset: ev.sensor.asset.to_string(),
                profile: profile.name.clone(),
                phase: Phase::Opened,
                opened_ns: ev.since_ns,
                updated_ns: ev.ts_ns,
                closed_ns: None,
                severity: severity(std::slice::from_ref(ev)),
                symptoms: Vec::new(),
                diagnosis: Vec::new(),
                resolution: None,
                events_merged: 0,
                events_suppressed: 0,
            },
            events: vec![ev.clone()],
            profile: profile.clone(),
            diagnosis: Vec::new(),
            sensor,
            all_closed_since: None,
            last_told_ns: ev.ts_ns,
            pending: false,
            explained_top: None,
        };
        o.diagnose(quiet);
        o.explained_top = o.diagnosis.first().map(|c| c.id.clone());
        Counters::add(&counters.incidents);
        out.push(Output::Incident(o.incident.clone()));
        if let Some(req) = o.explain_request(Phase::Opened) {
            out.push(Output::Explain(req));
        }
        self.open.push(o);
    }

    /// At `now_ns`: tells the pending updates that are due (a changed top diagnosis is
    /// explained again) and closes the incidents whose symptoms stayed normal for the
    /// hold-off. Returns the assets of the incidents closed (their reports are due).
    pub fn poll(&mut self, now_ns: i64, counters: &Counters, out: &mut Vec<Output>) -> Vec<String> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.open.len() {
            let Some(o) = self.open.get_mut(i) else {
                break;
            };
            if let Some(t) = o.all_closed_since {
                if now_ns.saturating_sub(t) >= self.tuning.hold_off_ns {
                    let o = self.open.remove(i);
                    let mut inc = o.incident.clone();
                    inc.phase = Phase::Closed;
                    inc.closed_ns = Some(t);
                    inc.updated_ns = now_ns.max(t);
                    inc.resolution = Some(
                        if o.events
                            .iter()
                            .any(|e| e.resolution == Some(Resolution::NewNormal))
                        {
                            Resolution::NewNormal
                        } else {
                            Resolution::Normal
                        },
                    );
                    Counters::add(&counters.incidents_closed);
                    due.push(inc.asset.clone());
                    out.push(Output::Incident(inc.clone()));
                    self.closed.push(inc.clone());
                    if self.tuning.rejoin_ns > 0 {
                        self.recent.push(Open {
                            incident: inc,
                            pending: false,
                            ..o
                        });
                        if self.recent.len() > self.max_closed {
                            self.recent.remove(0);
                        }
                    }
                    if self.closed.len() > self.max_closed {
                        self.closed.drain(..self.closed.len() - self.max_closed);
                    }
                    continue;
                }
            }
            if o.pending && now_ns.saturating_sub(o.last_told_ns) >= self.tuning.update_every_ns {
                o.pending = false;
                o.last_told_ns = now_ns;
                o.incident.phase = Phase::Updated;
                o.incident.updated_ns = now_ns;
                Counters::add(&counters.incident_updates);
                out.push(Output::Incident(o.incident.clone()));
                let top = o.diagnosis.first().map(|c| c.id.clone());
                if top.is_some() && top != o.explained_top {
                    o.explained_top = top;
                    if let Some(req) = o.explain_request(Phase::Updated) {
                        out.push(Output::Explain(req));
                    }
                }
            }
            i += 1;
        }
        due
    }
}
