//! The node's one InfluxDB line-protocol encoder: every [`Record`] (reading, anomaly event,
//! incident, explanation card, maintenance report) becomes one line, with the names of
//! `millwright_core::schema::influx`.
//!
//! Escaping follows InfluxDB's rules: measurement `,` ` ` `\`; tag keys and values and field
//! keys `,` `=` ` ` `\`; string field values `"` `\`. Line protocol cannot carry a newline in a
//! tag or field value: in tags `\n`/`\r` become a space, in string fields they are written as
//! the two characters `\n` / `\r` (escaped backslash + letter), so Markdown keeps its line
//! marks and the line stays one line. Non-finite floats cannot be written either: a reading with
//! one is skipped, a non-finite field of another record is left out.
//!
//! Nothing here does I/O; the writer (`influx`) batches what this module encodes.

use millwright_core::anomaly::{Anomaly, ExplanationCard, MaintenanceReport, Phase};
use millwright_core::schema::influx as schema;
use millwright_core::{Incident, NodeMetricsPoint, Reading, Record, SignalLimits};
use std::fmt::Write;

/// Appends `s` escaped as a measurement name (commas and spaces).
pub fn escape_measurement(out: &mut String, s: &str) {
    if !s
        .bytes()
        .any(|b| matches!(b, b',' | b' ' | b'\\' | b'\n' | b'\r'))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            ',' | ' ' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // A newline would end the line: the rest would be a line of its own.
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

/// Appends `s` escaped as a tag key, tag value or field key (commas, equals signs, spaces).
pub fn escape_tag(out: &mut String, s: &str) {
    // The common case, nothing to escape: one copy instead of a push per character.
    if !s
        .bytes()
        .any(|b| matches!(b, b',' | b'=' | b' ' | b'\\' | b'\n' | b'\r'))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

/// Appends `s` as a quoted string field value (`"` and `\` escaped; a newline or carriage
/// return becomes the escaped two-character text `\n` / `\r`).
pub fn quote_field(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\\\n"),
            '\r' => out.push_str("\\\\r"),
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Appends one record as a line (ending in `\n`); returns false when nothing could be written
/// (a reading with a non-finite value, a record without any finite field). `site` tags readings.
pub fn write_record(out: &mut String, site: &str, rec: &Record) -> bool {
    match rec {
        Record::Reading(r) => write_reading(out, site, r),
        Record::Anomaly(a) => write_anomaly(out, a),
        Record::Incident(i) => write_incident(out, i),
        Record::Card(c) => write_card(out, c),
        Record::Report(r) => write_report(out, &r.report, &r.markdown, r.ts_ns),
        Record::NodeMetrics(p) => write_node_metrics(out, site, p),
        Record::Limits(l) => write_limits(out, site, l),
    }
}

/// A sample of the node's metrics: `millwright_node,site=…[,<label>=…] <field>=<v>,… <ts_ns>`
/// (non-finite values left out; nothing written without a finite field).
pub fn write_node_metrics(out: &mut String, site: &str, p: &NodeMetricsPoint) -> bool {
    let mut l = Line::start(out, schema::MEASUREMENT_NODE_METRICS);
    l.tag(schema::TAG_SITE, site);
    for (k, v) in &p.tags {
        l.tag(k, v);
    }
    for (k, v) in &p.fields {
        l.float(k, *v);
    }
    l.finish(p.ts_ns)
}

/// A profiled signal's normal range and limits: tags site, asset, signal, unit; the fields the
/// profile has (`normal_low`, `normal_high`, `limit_min`, `limit_max`). Nothing is written when
/// the profile states none (returns false).
pub fn write_limits(out: &mut String, site: &str, s: &SignalLimits) -> bool {
    let mut fields: Vec<(&str, f64)> = Vec::new();
    if let Some([lo, hi]) = s.normal {
        fields.push((schema::FIELD_NORMAL_LOW, lo));
        fields.push((schema::FIELD_NORMAL_HIGH, hi));
    }
    if let Some(m) = s.limits.min {
        fields.push((schema::FIELD_LIMIT_MIN, m));
    }
    if let Some(m) = s.limits.max {
        fields.push((schema::FIELD_LIMIT_MAX, m));
    }
    fields.retain(|(_, v)| v.is_finite());
    if fields.is_empty() {
        return false;
    }
    let mut l = Line::start(out, schema::MEASUREMENT_LIMITS);
    l.tag(schema::TAG_SITE, site);
    l.tag(schema::TAG_ASSET, &s.sensor.asset);
    l.tag(schema::TAG_SIGNAL, &s.sensor.signal);
    l.tag(schema::TAG_UNIT, &s.unit);
    for (k, v) in fields {
        l.float(k, v);
    }
    l.finish(s.ts_ns)
}

/// Appends one reading as a line: `<signal>,site=…,asset=…,unit=…,quality=… value=<v> <ts_ns>`.
/// Readings with a non-finite value are skipped (returns false): line protocol cannot carry them.
pub fn write_reading(out: &mut String, site: &str, r: &Reading) -> bool {
    // The codecs refuse such names; this is the last guard, as InfluxDB would reject the whole
    // batch for an empty measurement or tag, and a line starting with `#` is a comment.
    if !r.value.is_finite()
        || r.sensor.signal.is_empty()
        || r.sensor.asset.is_empty()
        || r.sensor.signal.starts_with('#')
    {
        return false;
    }
    escape_measurement(out, &r.sensor.signal);
    out.push(',');
    out.push_str(schema::TAG_ASSET);
    out.push('=');
    escape_tag(out, &r.sensor.asset);
    out.push(',');
    out.push_str(schema::TAG_QUALITY);
    out.push('=');
    out.push_str(r.quality.as_str());
    if !site.is_empty() {
        out.push(',');
        out.push_str(schema::TAG_SITE);
        out.push('=');
        escape_tag(out, site);
    }
    if !r.unit.is_empty() {
        out.push(',');
        out.push_str(schema::TAG_UNIT);
        out.push('=');
        escape_tag(out, r.unit.symbol());
    }
    out.push(' ');
    out.push_str(schema::FIELD_VALUE);
    out.push('=');
    push_float(out, r.value);
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(r.ts_ns));
    out.push('\n');
    true
}

/// Name of an event phase as written: `opened`, `updated`, `closed`.
pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Opened => "opened",
        Phase::Updated => "updated",
        Phase::Closed => "closed",
    }
}

/// The explanation card as an event: tags asset, signal, kind, phase, source; fields score,
/// text, title, evidence, causes, actions, model, id, since_ns, duration_s; time = the time of
/// the reading that produced the phase (Grafana: annotation region `since_ns` … time).
pub fn write_card(out: &mut String, card: &ExplanationCard) -> bool {
    let causes = card.likely_causes.join("; ");
    let actions: Vec<String> = card
        .actions
        .iter()
        .map(|a| format!("[{}] {}", a.urgency.as_str(), a.text))
        .collect();
    let title = format!("{} {} {}", card.asset, card.signal, card.kind.describe());
    let mut l = Line::start(out, schema::MEASUREMENT_ANOMALY);
    l.tag(schema::TAG_ASSET, &card.asset);
    l.tag(schema::TAG_SIGNAL, &card.signal);
    l.tag(schema::TAG_KIND, card.kind.as_str());
    l.tag(schema::TAG_PHASE, phase_name(card.phase));
    l.tag(schema::TAG_SOURCE, card.source.as_str());
    l.float(schema::FIELD_SCORE, card.score);
    l.string(schema::FIELD_TEXT, &card.text);
    l.string(schema::FIELD_TITLE, &title);
    l.string(schema::FIELD_EVIDENCE, &card.evidence);
    l.string(schema::FIELD_CAUSES, &causes);
    l.string(schema::FIELD_ACTIONS, &actions.join("; "));
    l.string(schema::FIELD_MODEL, &card.model);
    l.string(schema::FIELD_ID, &card.id);
    l.int(schema::FIELD_SINCE_NS, card.since_ns);
    l.float(
        schema::FIELD_DURATION_S,
        ((card.ts_ns - card.since_ns) as f64 / 1e9).max(0.0),
    );
    l.finish(card.ts_ns)
}

/// An anomaly event phase: tags asset, signal, kind, phase; fields score, peak_score, value,
/// baseline, z, id, since_ns, duration_s; time = the reading that produced the phase.
pub fn write_anomaly(out: &mut String, a: &Anomaly) -> bool {
    let mut l = Line::start(out, schema::MEASUREMENT_ANOMALY);
    l.tag(schema::TAG_ASSET, &a.sensor.asset);
    l.tag(schema::TAG_SIGNAL, &a.sensor.signal);
    l.tag(schema::TAG_KIND, a.kind.as_str());
    l.tag(schema::TAG_PHASE, phase_name(a.phase));
    l.float(schema::FIELD_SCORE, a.score);
    l.float(schema::FIELD_PEAK_SCORE, a.peak_score);
    l.float(schema::FIELD_EVENT_VALUE, a.evidence.value);
    l.float(schema::FIELD_BASELINE, a.evidence.baseline);
    l.float(schema::FIELD_Z, a.evidence.z);
    l.string(schema::FIELD_ID, &a.id);
    l.int(schema::FIELD_SINCE_NS, a.since_ns);
    l.float(schema::FIELD_DURATION_S, a.duration_s().max(0.0));
    l.finish(a.ts_ns)
}

/// An incident phase: tags asset, phase, severity, diagnosis (top mode id, if any),
/// resolution (closed); fields id, opened_ns, duration_s, symptoms, open_symptoms, peak_score,
/// confidence, events_merged, events_suppressed, runner_up (when close); time = the phase's.
pub fn write_incident(out: &mut String, i: &Incident) -> bool {
    let top = i.top();
    let runner_up = i.diagnosis.get(1).filter(|r| {
        top.is_some_and(|t| r.score >= millwright_core::incident::CLOSE_RUNNER_UP * t.score)
    });
    let mut l = Line::start(out, schema::MEASUREMENT_INCIDENT);
    l.tag(schema::TAG_ASSET, &i.asset);
    l.tag(schema::TAG_PHASE, phase_name(i.phase));
    l.tag(schema::TAG_SEVERITY, i.severity.as_str());
    l.tag(schema::TAG_DIAGNOSIS, top.map_or("", |t| t.id.as_str()));
    l.tag(
        schema::TAG_RESOLUTION,
        i.resolution.map_or("", |r| r.as_str()),
    );
    l.string(schema::FIELD_ID, &i.id);
    l.int(schema::FIELD_OPENED_NS, i.opened_ns);
    l.float(
        schema::FIELD_DURATION_S,
        ((i.closed_ns.unwrap_or(i.updated_ns) - i.opened_ns) as f64 / 1e9).max(0.0),
    );
    l.int(schema::FIELD_SYMPTOMS, i.symptoms.len() as i64);
    l.int(
        schema::FIELD_OPEN_SYMPTOMS,
        i.open_symptoms().count() as i64,
    );
    l.float(schema::FIELD_PEAK_SCORE, i.peak_score());
    l.float(schema::FIELD_CONFIDENCE, top.map_or(0.0, |t| t.confidence));
    l.int(
        schema::FIELD_EVENTS_MERGED,
        i64::try_from(i.events_merged).unwrap_or(i64::MAX),
    );
    l.int(
        schema::FIELD_EVENTS_SUPPRESSED,
        i64::try_from(i.events_suppressed).unwrap_or(i64::MAX),
    );
    if let Some(r) = runner_up {
        l.string(schema::FIELD_RUNNER_UP, &r.id);
    }
    l.finish(i.updated_ns)
}

/// A report as a point: tags asset, status (spaces as `_`); fields anomalies, actions (counts),
/// markdown.
pub fn write_report(out: &mut String, r: &MaintenanceReport, markdown: &str, ts_ns: i64) -> bool {
    let mut l = Line::start(out, schema::MEASUREMENT_REPORT);
    l.tag(schema::TAG_ASSET, &r.asset);
    l.tag(schema::TAG_STATUS, &r.status.replace(' ', "_"));
    l.int(schema::FIELD_ANOMALIES, r.anomalies.len() as i64);
    l.int(schema::FIELD_ACTIONS, r.actions.len() as i64);
    l.string(schema::FIELD_MARKDOWN, markdown);
    l.finish(ts_ns)
}

/// Appends a finite float in the shortest form that reads back as the same value (ryu:
/// `1.5`, `3.0`, `1e-7`, `1.2345e20`; InfluxDB parses each as a float). About 3× faster than
/// `{:?}` through `fmt`.
fn push_float(out: &mut String, v: f64) {
    out.push_str(ryu::Buffer::new().format_finite(v));
}

/// One line being appended to `out`: tags (empty values left out, as InfluxDB forbids them),
/// then fields, then the time; rolled back when it ends up without a field.
struct Line<'a> {
    out: &'a mut String,
    start: usize,
    fields: usize,
}

impl<'a> Line<'a> {
    fn start(out: &'a mut String, measurement: &str) -> Self {
        let start = out.len();
        escape_measurement(out, measurement);
        Self {
            out,
            start,
            fields: 0,
        }
    }

    /// A tag; call every `tag` before the first field.
    fn tag(&mut self, key: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        self.out.push(',');
        escape_tag(self.out, key);
        self.out.push('=');
        escape_tag(self.out, value);
    }

    fn key(&mut self, key: &str) {
        self.out.push(if self.fields == 0 { ' ' } else { ',' });
        escape_tag(self.out, key);
        self.out.push('=');
        self.fields += 1;
    }

    fn float(&mut self, key: &str, v: f64) {
        if v.is_finite() {
            self.key(key);
            push_float(self.out, v);
        }
    }

    fn int(&mut self, key: &str, v: i64) {
        self.key(key);
        let _ = write!(self.out, "{v}i");
    }

    fn string(&mut self, key: &str, v: &str) {
        self.key(key);
        quote_field(self.out, v);
    }

    fn finish(self, ts_ns: i64) -> bool {
        if self.fields == 0 {
            self.out.truncate(self.start);
            return false;
        }
        let _ = writeln!(self.out, " {ts_ns}");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_core::anomaly::{
        Action, AnomalyKind, Evidence, RankedAction, ReportAnomaly, TextSource, Urgency,
    };
    use millwright_core::{DataQuality, Quality, SensorId, Unit};

    #[test]
    fn formats_and_escapes() {
        let mut r = Reading::new(SensorId::new("P 1,a", "temp c"), 5, 1.5, Unit::new("°C"));
        r.quality = Quality::Bad;
        let mut s = String::new();
        assert!(write_reading(&mut s, "site=x", &r));
        assert_eq!(
            s,
            "temp\\ c,asset=P\\ 1\\,a,quality=bad,site=site\\=x,unit=°C value=1.5 5\n"
        );
        r.value = f64::NAN;
        assert!(!write_reading(&mut s, "", &r));
        let mut s = String::new();
        let r = Reading::new(SensorId::new("a", "b"), 1, 3.0, Unit::none());
        write_reading(&mut s, "", &r);
        assert_eq!(s, "b,asset=a,quality=good value=3.0 1\n");
        let mut q = String::new();
        quote_field(&mut q, "say \"hi\"");
        assert_eq!(q, "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn newlines_never_split_a_line() {
        let mut q = String::new();
        quote_field(&mut q, "a\nb\r\\");
        assert_eq!(q, r#""a\\nb\\r\\""#);
        let mut t = String::new();
        escape_tag(&mut t, "a\nb");
        assert_eq!(t, "a b");
        let mut m = String::new();
        escape_measurement(&mut m, "temp\nx");
        assert_eq!(m, "temp x");
    }

    #[test]
    fn names_influxdb_would_refuse_are_not_written() {
        for (asset, signal) in [("", "temp"), ("P-1", ""), ("P-1", "#temp")] {
            let mut s = String::new();
            let r = Reading::new(SensorId::new(asset, signal), 1, 3.0, Unit::none());
            assert!(!write_reading(&mut s, "", &r), "{asset:?} {signal:?}");
            assert!(s.is_empty(), "{s}");
        }
        let mut s = String::new();
        let r = Reading::new(SensorId::new("P-1", "a\nb"), 1, 3.0, Unit::none());
        assert!(write_reading(&mut s, "", &r));
        assert_eq!(s.lines().count(), 1, "{s}");
    }

    pub(crate) fn card() -> ExplanationCard {
        ExplanationCard {
            id: "P-101/bearing_temp_c@1000".into(),
            asset: "P-101".into(),
            signal: "bearing_temp_c".into(),
            unit: "°C".into(),
            kind: AnomalyKind::Drift,
            phase: Phase::Opened,
            since: "1970-01-01T00:00:00Z".into(),
            since_ns: 1_000_000_000,
            ts_ns: 4_000_000_000,
            score: 0.75,
            evidence: "P-101 bearing_temp_c 75 °C, \"rising\"".into(),
            evidence_data: Evidence::default(),
            failure_modes: vec!["lubrication".into()],
            likely_causes: vec!["lack of grease".into(), "misalignment".into()],
            actions: vec![Action {
                text: "Regrease the bearing.".into(),
                urgency: Urgency::High,
            }],
            text: "The bearing runs hot.\nRegrease it.".into(),
            model: "template".into(),
            source: TextSource::Fallback,
            attempts: 0,
            confidence: 0.7,
            runner_up: None,
        }
    }

    /// The line-protocol half of reason's `card_serialises_to_json_and_line_protocol` (moved
    /// here with its encoder; the assertions are unchanged).
    #[test]
    fn card_serialises_to_line_protocol() {
        let card = card();
        let mut line = String::new();
        assert!(write_card(&mut line, &card));
        assert!(
            line.starts_with("millwright_anomaly,asset=P-101,signal=bearing_temp_c,kind="),
            "{line}"
        );
        assert!(
            line.contains(",source=fallback ") && line.contains("score="),
            "{line}"
        );
        let line = line.trim_end_matches('\n');
        assert!(line.ends_with(&format!(" {}", card.ts_ns)), "{line}");
    }

    #[test]
    fn card_line_is_exact() {
        let mut line = String::new();
        assert!(write_card(&mut line, &card()));
        assert_eq!(
            line,
            concat!(
                "millwright_anomaly,asset=P-101,signal=bearing_temp_c,kind=drift,phase=opened,",
                "source=fallback score=0.75,text=\"The bearing runs hot.\\\\nRegrease it.\",",
                "title=\"P-101 bearing_temp_c drift\",",
                "evidence=\"P-101 bearing_temp_c 75 °C, \\\"rising\\\"\",",
                "causes=\"lack of grease; misalignment\",",
                "actions=\"[high] Regrease the bearing.\",model=\"template\",",
                "id=\"P-101/bearing_temp_c@1000\",since_ns=1000000000i,duration_s=3.0 4000000000\n"
            )
        );
        // A non-finite score is left out instead of making the line invalid.
        let mut c = card();
        c.score = f64::NAN;
        let mut line = String::new();
        assert!(write_card(&mut line, &c));
        assert!(
            line.contains(" text=") && !line.contains("score") && !line.contains("NaN"),
            "{line}"
        );
    }

    #[test]
    fn anomaly_event_line() {
        let a = Anomaly {
            id: "P 1/t@5".into(),
            sensor: SensorId::new("P 1", "t"),
            unit: Unit::new("°C"),
            kind: AnomalyKind::LevelShift,
            kinds: vec![AnomalyKind::LevelShift],
            phase: Phase::Closed,
            since_ns: 5,
            ts_ns: 2_000_000_005,
            score: 0.25,
            peak_score: 0.9,
            evidence: Evidence {
                value: 70.0,
                baseline: 60.0,
                z: f64::INFINITY,
                ..Default::default()
            },
            related: vec![],
            profile: "pump".into(),
            resolution: None,
        };
        let mut s = String::new();
        assert!(write_record(&mut s, "site", &Record::from(a)));
        assert_eq!(
            s,
            "millwright_anomaly,asset=P\\ 1,signal=t,kind=level_shift,phase=closed score=0.25,peak_score=0.9,value=70.0,baseline=60.0,id=\"P 1/t@5\",since_ns=5i,duration_s=2.0 2000000005\n"
        );
    }

    #[test]
    fn limits_line_has_what_the_profile_states_and_nothing_without_any() {
        let mut l = SignalLimits {
            sensor: millwright_core::SensorId::new("P 1", "bearing_temp_c"),
            unit: "°C".into(),
            normal: Some([25.0, 75.0]),
            limits: millwright_core::Limits {
                min: None,
                max: Some(90.0),
            },
            ts_ns: 7,
        };
        let mut s = String::new();
        assert!(write_record(
            &mut s,
            "s",
            &Record::Limits(Box::new(l.clone()))
        ));
        assert_eq!(
            s,
            "millwright_limits,site=s,asset=P\\ 1,signal=bearing_temp_c,unit=°C normal_low=25.0,normal_high=75.0,limit_max=90.0 7\n"
        );
        l.normal = None;
        l.limits.max = None;
        let mut s = String::new();
        assert!(!write_record(&mut s, "s", &Record::Limits(Box::new(l))));
        assert!(s.is_empty(), "{s:?}");
    }

    #[test]
    fn report_line_keeps_markdown_on_one_line() {
        let r = MaintenanceReport {
            site: "s".into(),
            asset: "P-101".into(),
            profile: "pump".into(),
            from: String::new(),
            to: String::new(),
            status: "action required".into(),
            incidents: vec![],
            anomalies: vec![ReportAnomaly {
                id: "x".into(),
                signal: "t".into(),
                kind: AnomalyKind::Spike,
                since: String::new(),
                open: true,
                peak_score: 1.0,
                evidence: String::new(),
                explanation: String::new(),
                source: TextSource::Model,
            }],
            signals: vec![],
            quality: DataQuality::default(),
            actions: vec![
                RankedAction {
                    action: Action {
                        text: "a".into(),
                        urgency: Urgency::Low,
                    },
                    because_of: vec![],
                };
                2
            ],
        };
        let mut s = String::new();
        let rec = Record::report(r, "# Report\n\n- ok".into(), 9);
        assert!(write_record(&mut s, "", &rec));
        assert_eq!(
            s,
            "millwright_report,asset=P-101,status=action_required anomalies=1i,actions=2i,markdown=\"# Report\\\\n\\\\n- ok\" 9\n"
        );
        assert_eq!(s.lines().count(), 1);
    }

    #[test]
    fn incident_line_is_exact() {
        use millwright_core::{DiagnosedMode, Direction, IncidentSymptom, Resolution, Severity};
        let mode = |id: &str, score: f64| DiagnosedMode {
            id: id.into(),
            title: id.into(),
            score,
            confidence: 0.5,
        };
        let mut i = Incident {
            id: "P-101#1000".into(),
            asset: "P-101".into(),
            profile: "pump".into(),
            phase: Phase::Closed,
            opened_ns: 1_000,
            updated_ns: 9_000_001_000,
            closed_ns: Some(4_000_001_000),
            severity: Severity::Warning,
            symptoms: vec![IncidentSymptom {
                event_id: "e".into(),
                signal: "vibration_rms_mm_s".into(),
                kind: AnomalyKind::Drift,
                kinds: vec![AnomalyKind::Drift],
                direction: Direction::Up,
                peak_score: 0.9,
                open: false,
                resolution: Some(Resolution::Normal),
            }],
            diagnosis: vec![mode("bearing_wear", 1.0), mode("overheating", 0.7)],
            resolution: Some(Resolution::NewNormal),
            events_merged: 3,
            events_suppressed: 2,
        };
        let mut s = String::new();
        assert!(write_record(&mut s, "", &Record::from(i.clone())));
        assert_eq!(
            s,
            concat!(
                "millwright_incident,asset=P-101,phase=closed,severity=warning,",
                "diagnosis=bearing_wear,resolution=new_normal id=\"P-101#1000\",",
                "opened_ns=1000i,duration_s=4.0,symptoms=1i,open_symptoms=0i,peak_score=0.9,",
                "confidence=0.5,events_merged=3i,events_suppressed=2i,",
                "runner_up=\"overheating\" 9000001000\n"
            )
        );
        // No diagnosis: no diagnosis tag, no runner-up; an open incident has no resolution.
        i.diagnosis.clear();
        i.resolution = None;
        i.phase = Phase::Opened;
        let mut s = String::new();
        assert!(write_incident(&mut s, &i));
        assert!(
            s.starts_with("millwright_incident,asset=P-101,phase=opened,severity=warning id="),
            "{s}"
        );
        assert!(
            !s.contains("runner_up") && s.contains("confidence=0.0"),
            "{s}"
        );
    }

    #[test]
    fn empty_tags_are_left_out_and_a_point_needs_a_field() {
        let mut s = String::from("keep\n");
        let mut l = Line::start(&mut s, "m");
        l.tag("a", "");
        l.float("f", f64::NAN);
        assert!(!l.finish(1));
        assert_eq!(s, "keep\n", "a line without fields is rolled back");
    }

    #[test]
    fn node_metrics_are_one_line_per_label_set_tagged_with_the_site() {
        let p = NodeMetricsPoint {
            tags: vec![("device", "pump 1".into()), ("reason", String::new())],
            fields: vec![("modbus_cycles_total", 3.0), ("x", f64::NAN)],
            ts_ns: 7,
        };
        let mut s = String::new();
        assert!(write_record(
            &mut s,
            "plant-1",
            &Record::NodeMetrics(Box::new(p))
        ));
        assert_eq!(
            s,
            "millwright_node,site=plant-1,device=pump\\ 1 modbus_cycles_total=3.0 7\n"
        );
    }

    #[test]
    fn floats_read_back_as_the_same_value_and_timestamps_are_exact() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..20_000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            let ts = (x >> 1) as i64 - i64::MAX / 2 + i;
            let mut s = String::new();
            assert!(write_reading(
                &mut s,
                "",
                &Reading::new(SensorId::new("a", "b"), ts, v, Unit::none())
            ));
            let (value, time) = s
                .trim_end()
                .split_once(" value=")
                .and_then(|(_, r)| r.split_once(' '))
                .unwrap_or_else(|| panic!("{s}"));
            assert_eq!(
                value.parse::<f64>().map(f64::to_bits),
                Ok(v.to_bits()),
                "{value}"
            );
            assert_eq!(time.parse::<i64>(), Ok(ts));
        }
        for (v, want) in [
            (3.0, "3.0"),
            (-0.25, "-0.25"),
            (1e-7, "1e-7"),
            (1.25e20, "1.25e20"),
        ] {
            let mut s = String::new();
            write_reading(
                &mut s,
                "",
                &Reading::new(SensorId::new("a", "b"), -1, v, Unit::none()),
            );
            assert_eq!(s, format!("b,asset=a,quality=good value={want} -1\n"));
        }
    }
}
