//! The one description of Millwright's Grafana dashboards and its generator.
//!
//! Each panel is described once (title, unit, kind, layout) with its query in both flavours
//! side by side: Flux for InfluxDB 2 and PromQL for VictoriaMetrics/Prometheus reading the
//! node's writes. Node-health panels are derived from the schema's metric list, so both
//! flavours always name the same metrics. Names come from `millwright_core::schema`.
//! `generate()` returns every file under `dashboards/` it owns; the test in `dashboards.rs`
//! compares them with the committed files (and rewrites them with `MILLWRIGHT_BLESS=1`).
//!
//! Longer than 600 lines on purpose: it is one table of four dashboards, and keeping each
//! panel's two queries next to each other in one place is what stops the flavours drifting.

use millwright_core::schema::influx as s;
use millwright_core::schema::node_metrics::{self as nm, Kind, NodeMetric};
use millwright_core::schema::DEVICE_ONLINE_SIGNAL;
use serde_json::{json, Value};

/// Grafana dashboard JSON model version the files declare (Grafana 10.4 / 11).
pub const SCHEMA_VERSION: u64 = 39;
/// Data source uid of the InfluxDB 2 (Flux) flavour, as provisioned.
pub const DS_INFLUX: &str = "millwright-influxdb";
/// Data source uid of the Prometheus (VictoriaMetrics) flavour, as provisioned.
pub const DS_PROM: &str = "millwright-victoriametrics";

/// The two flavours.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavour {
    /// InfluxDB 2, Flux.
    Flux,
    /// VictoriaMetrics / Prometheus, PromQL.
    Prom,
}

impl Flavour {
    /// Folder under `dashboards/`.
    pub fn dir(self) -> &'static str {
        match self {
            Flavour::Flux => "influxdb-flux",
            Flavour::Prom => "victoriametrics-promql",
        }
    }
    fn ds(self) -> Value {
        match self {
            Flavour::Flux => json!({"type": "influxdb", "uid": DS_INFLUX}),
            Flavour::Prom => json!({"type": "prometheus", "uid": DS_PROM}),
        }
    }
}

/// A query in both flavours (`None`: the flavour cannot show it, e.g. text in PromQL).
struct Q {
    flux: Option<String>,
    prom: Option<String>,
    legend: &'static str,
}

struct Panel {
    title: &'static str,
    viz: &'static str,
    unit: &'static str,
    w: u64,
    h: u64,
    q: Vec<Q>,
    description: &'static str,
}

struct Dash {
    file: &'static str,
    uid: &'static str,
    title: &'static str,
    vars: &'static [&'static str],
    panels: Vec<Panel>,
    annotations: Vec<(&'static str, Q)>,
}

// ---- Flux helpers -------------------------------------------------------------------------

fn from(filter: &str) -> String {
    format!(
        "from(bucket: \"${{bucket}}\")\n  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n  |> filter(fn: (r) => {filter})"
    )
}

fn m_is(m: &str) -> String {
    format!("r._measurement == \"{m}\"")
}

fn f_is(f: &str) -> String {
    format!("r._field == \"{f}\"")
}

/// Anomaly events (numbers), not cards: cards carry the `source` tag.
fn events(field: &str) -> String {
    from(&format!(
        "{} and {} and r.{} == \"${{asset}}\" and not exists r.{}",
        m_is(s::MEASUREMENT_ANOMALY),
        f_is(field),
        s::TAG_ASSET,
        s::TAG_SOURCE
    ))
}

fn node_flux(m: &NodeMetric) -> String {
    let base = from(&format!(
        "{} and {} and r.{} == \"${{site}}\"",
        m_is(s::MEASUREMENT_NODE_METRICS),
        f_is(nm::influx_field(m.name)),
        s::TAG_SITE
    ));
    let mut group = vec![];
    for l in m.labels {
        group.push(format!("\"{l}\""));
    }
    let g = format!("\n  |> group(columns: [{}])", group.join(", "));
    match m.kind {
        Kind::Counter => format!(
            "{base}{g}\n  |> derivative(unit: 1s, nonNegative: true)\n  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)"
        ),
        Kind::Gauge => format!(
            "{base}{g}\n  |> aggregateWindow(every: v.windowPeriod, fn: last, createEmpty: false)"
        ),
    }
}

fn node_prom(m: &NodeMetric) -> String {
    let name = format!("millwright_node_{}", nm::influx_field(m.name));
    let sel = format!("{name}{{{}=\"$site\"}}", s::TAG_SITE);
    let by = if m.labels.is_empty() {
        String::new()
    } else {
        format!(" by ({})", m.labels.join(", "))
    };
    match m.kind {
        Kind::Counter => format!("sum{by} (rate({sel}[$__rate_interval]))"),
        Kind::Gauge => format!("max{by} ({sel})"),
    }
}

/// A node-health panel of one metric: counters as per-second rates, gauges as they are.
fn node_panel(m: NodeMetric, title: &'static str, unit: &'static str) -> Panel {
    let legend = match m.labels {
        [] => "{{site}}",
        [l] if *l == nm::LABEL_DEVICE => "{{device}}",
        [l] if *l == nm::LABEL_SUBSCRIPTION => "{{subscription}}",
        _ => "{{subscription}} {{reason}}",
    };
    Panel {
        title,
        viz: "timeseries",
        unit,
        w: 8,
        h: 7,
        q: vec![Q {
            flux: Some(node_flux(&m)),
            prom: Some(node_prom(&m)),
            legend,
        }],
        description: m.help,
    }
}

/// One limits series of the asset (`millwright_limits`, written with the node metrics): the
/// latest value per signal in both flavours.
fn limits_q(field: &str, legend: &'static str) -> Q {
    let (a, site) = (s::TAG_ASSET, s::TAG_SITE);
    Q {
        flux: Some(format!(
            "{}\n  |> group(columns: [\"{sig}\", \"{u}\"])\n  |> last()",
            from(&format!(
                "{} and {} and r.{site} == \"${{site}}\" and r.{a} == \"${{asset}}\"",
                m_is(s::MEASUREMENT_LIMITS),
                f_is(field)
            )),
            sig = s::TAG_SIGNAL,
            u = s::TAG_UNIT
        )),
        prom: Some(format!(
            "last_over_time({}_{field}{{{site}=\"$site\", {a}=\"$asset\"}}[$__range])",
            s::MEASUREMENT_LIMITS
        )),
        legend,
    }
}

fn readings_prom(extra: &str) -> String {
    format!(
        "{{__name__=~\".+_{v}\", __name__!~\"millwright_.+\", {site}=\"$site\"{extra}}}",
        v = s::FIELD_VALUE,
        site = s::TAG_SITE
    )
}

fn dashboards() -> Vec<Dash> {
    let (a, site) = (s::TAG_ASSET, s::TAG_SITE);
    let anomaly = s::MEASUREMENT_ANOMALY;
    let report = s::MEASUREMENT_REPORT;
    let ev = |f: &str, extra: &str| format!("{anomaly}_{f}{{{}=\"\"{extra}}}", s::TAG_SOURCE);
    let opened_minus_closed = {
        let c = |phase: &str| {
            format!(
                "sum by ({a}) (count_over_time({}[$__range]))",
                ev(s::FIELD_SCORE, &format!(", {}=\"{phase}\"", s::TAG_PHASE))
            )
        };
        format!("{o} - ({c} or {o} * 0)", o = c("opened"), c = c("closed"))
    };
    let site_overview = Dash {
        file: "site-overview.json",
        uid: "millwright-site",
        title: "Millwright — Site overview",
        vars: &["site"],
        panels: vec![
            Panel {
                title: "Signals per asset",
                viz: "bargauge",
                unit: "none",
                w: 8,
                h: 8,
                description: "Assets that sent readings in the time range and how many signals each has.",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{a}\", \"_measurement\"])\n  |> last()\n  |> group(columns: [\"{a}\"])\n  |> count()",
                        from(&format!("{} and r.{site} == \"${{site}}\"", f_is(s::FIELD_VALUE)))
                    )),
                    prom: Some(format!(
                        "count by ({a}) (last_over_time({}[$__range]))",
                        readings_prom("")
                    )),
                    legend: "{{asset}}",
                }],
            },
            Panel {
                title: "Asset state: highest anomaly score",
                viz: "bargauge",
                unit: "percentunit",
                w: 8,
                h: 8,
                description: "Highest anomaly score per asset in the time range (0 normal, 1 certain anomaly).",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{a}\"])\n  |> max()",
                        from(&format!("{} and {}", m_is(anomaly), f_is(s::FIELD_SCORE)))
                    )),
                    prom: Some(format!(
                        "max by ({a}) (max_over_time({anomaly}_{}[$__range]))",
                        s::FIELD_SCORE
                    )),
                    legend: "{{asset}}",
                }],
            },
            Panel {
                title: "Open anomalies",
                viz: "bargauge",
                unit: "none",
                w: 8,
                h: 8,
                description: "Anomaly events opened and not closed in the time range, per asset.",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{a}\", \"{sig}\", \"{k}\"])\n  |> last()\n  |> filter(fn: (r) => r.{p} != \"closed\")\n  |> group(columns: [\"{a}\"])\n  |> count()",
                        from(&format!(
                            "{} and {} and not exists r.{}",
                            m_is(anomaly),
                            f_is(s::FIELD_SCORE),
                            s::TAG_SOURCE
                        )),
                        sig = s::TAG_SIGNAL,
                        k = s::TAG_KIND,
                        p = s::TAG_PHASE
                    )),
                    prom: Some(opened_minus_closed),
                    legend: "{{asset}}",
                }],
            },
            Panel {
                title: "Devices offline",
                viz: "stat",
                unit: "none",
                w: 8,
                h: 6,
                description: "Devices whose last device_online reading is 0, per asset.",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{a}\"])\n  |> last()\n  |> map(fn: (r) => ({{r with _value: 1.0 - r._value}}))",
                        from(&format!(
                            "{} and {} and r.{site} == \"${{site}}\"",
                            m_is(DEVICE_ONLINE_SIGNAL),
                            f_is(s::FIELD_VALUE)
                        ))
                    )),
                    prom: Some(format!(
                        "sum by ({a}) (1 - last_over_time({DEVICE_ONLINE_SIGNAL}_{}{{{site}=\"$site\"}}[$__range]))",
                        s::FIELD_VALUE
                    )),
                    legend: "{{asset}}",
                }],
            },
            Panel {
                title: "Anomaly events opened",
                viz: "timeseries",
                unit: "none",
                w: 16,
                h: 6,
                description: "Anomaly events opened per asset over time.",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{a}\"])\n  |> aggregateWindow(every: v.windowPeriod, fn: count, createEmpty: false)",
                        from(&format!(
                            "{} and {} and r.{} == \"opened\" and not exists r.{}",
                            m_is(anomaly),
                            f_is(s::FIELD_SCORE),
                            s::TAG_PHASE,
                            s::TAG_SOURCE
                        ))
                    )),
                    prom: Some(format!(
                        "sum by ({a}) (count_over_time({}[$__interval]))",
                        ev(s::FIELD_SCORE, &format!(", {}=\"opened\"", s::TAG_PHASE))
                    )),
                    legend: "{{asset}}",
                }],
            },
        ],
        annotations: vec![],
    };
    let asset_detail = Dash {
        file: "asset-detail.json",
        uid: "millwright-asset",
        title: "Millwright — Asset detail",
        vars: &["site", "asset"],
        panels: vec![
            Panel {
                title: "Signals of $asset",
                viz: "timeseries",
                unit: "none",
                w: 24,
                h: 9,
                description: "Every signal of the asset; the legend carries each signal's unit (from the unit tag).",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"_measurement\", \"{u}\"])\n  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)",
                        from(&format!(
                            "{} and r.{site} == \"${{site}}\" and r.{a} == \"${{asset}}\"",
                            f_is(s::FIELD_VALUE)
                        )),
                        u = s::TAG_UNIT
                    )),
                    prom: Some(format!(
                        "avg by (__name__, {u}) ({})",
                        readings_prom(&format!(", {a}=\"$asset\"")),
                        u = s::TAG_UNIT
                    )),
                    legend: "{{__name__}} [{{unit}}]",
                }],
            },
            Panel {
                title: "Normal range and limits of $asset",
                viz: "table",
                unit: "none",
                w: 24,
                h: 7,
                description: "Each profiled signal's normal operating range and hard limits, in the signal's unit (from the asset profile; the node writes them with its metrics).",
                q: [
                    (s::FIELD_NORMAL_LOW, "{{signal}} normal low [{{unit}}]"),
                    (s::FIELD_NORMAL_HIGH, "{{signal}} normal high [{{unit}}]"),
                    (s::FIELD_LIMIT_MIN, "{{signal}} limit min [{{unit}}]"),
                    (s::FIELD_LIMIT_MAX, "{{signal}} limit max [{{unit}}]"),
                ]
                .into_iter()
                .map(|(field, legend)| limits_q(field, legend))
                .collect(),
            },
            Panel {
                title: "Anomaly score per signal",
                viz: "timeseries",
                unit: "percentunit",
                w: 12,
                h: 8,
                description: "Score of each anomaly event phase (0–1).",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{}\"])",
                        events(s::FIELD_SCORE),
                        s::TAG_SIGNAL
                    )),
                    prom: Some(format!(
                        "max by ({sig}) ({})",
                        ev(s::FIELD_SCORE, &format!(", {a}=\"$asset\"")),
                        sig = s::TAG_SIGNAL
                    )),
                    legend: "{{signal}}",
                }],
            },
            Panel {
                title: "Value against its learned normal (anomaly events)",
                viz: "timeseries",
                unit: "none",
                w: 12,
                h: 8,
                description: "At each anomaly event phase: the sensor's value and the learned baseline (the normal level) it departed from.",
                q: vec![
                    Q {
                        flux: Some(format!(
                            "{}\n  |> group(columns: [\"{}\"])",
                            events(s::FIELD_EVENT_VALUE),
                            s::TAG_SIGNAL
                        )),
                        prom: Some(format!(
                            "max by ({sig}) ({})",
                            ev(s::FIELD_EVENT_VALUE, &format!(", {a}=\"$asset\"")),
                            sig = s::TAG_SIGNAL
                        )),
                        legend: "{{signal}} value",
                    },
                    Q {
                        flux: Some(format!(
                            "{}\n  |> group(columns: [\"{}\"])",
                            events(s::FIELD_BASELINE),
                            s::TAG_SIGNAL
                        )),
                        prom: Some(format!(
                            "max by ({sig}) ({})",
                            ev(s::FIELD_BASELINE, &format!(", {a}=\"$asset\"")),
                            sig = s::TAG_SIGNAL
                        )),
                        legend: "{{signal}} baseline",
                    },
                ],
            },
            Panel {
                title: "Deviation (σ) of anomaly events",
                viz: "timeseries",
                unit: "none",
                w: 12,
                h: 7,
                description: "Deviation of the value from the baseline in learned spreads (σ).",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{}\"])",
                        events(s::FIELD_Z),
                        s::TAG_SIGNAL
                    )),
                    prom: Some(format!(
                        "max by ({sig}) ({})",
                        ev(s::FIELD_Z, &format!(", {a}=\"$asset\"")),
                        sig = s::TAG_SIGNAL
                    )),
                    legend: "{{signal}}",
                }],
            },
            Panel {
                title: "Explanations",
                viz: "table",
                unit: "none",
                w: 12,
                h: 7,
                description: "Explanation cards of the asset's anomalies (text is stored in InfluxDB only; VictoriaMetrics drops string fields).",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  |> group()\n  |> keep(columns: [\"_time\", \"{sig}\", \"{k}\", \"{src}\", \"{t}\", \"{c}\", \"{ac}\", \"{mo}\"])\n  |> sort(columns: [\"_time\"], desc: true)",
                        from(&format!(
                            "{} and r.{a} == \"${{asset}}\" and exists r.{src} and ({} or {} or {} or {})",
                            m_is(anomaly),
                            f_is(s::FIELD_TEXT),
                            f_is(s::FIELD_CAUSES),
                            f_is(s::FIELD_ACTIONS),
                            f_is(s::FIELD_MODEL),
                            src = s::TAG_SOURCE
                        )),
                        sig = s::TAG_SIGNAL,
                        k = s::TAG_KIND,
                        src = s::TAG_SOURCE,
                        t = s::FIELD_TEXT,
                        c = s::FIELD_CAUSES,
                        ac = s::FIELD_ACTIONS,
                        mo = s::FIELD_MODEL
                    )),
                    prom: None,
                    legend: "",
                }],
            },
        ],
        annotations: vec![
            (
                "Anomalies",
                Q {
                    flux: Some(format!(
                        "{}\n  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  |> map(fn: (r) => ({{r with time: time(v: r.{since}), timeEnd: r._time}}))\n  |> group()\n  |> keep(columns: [\"time\", \"timeEnd\", \"{title}\", \"{text}\"])",
                        from(&format!(
                            "{} and r.{a} == \"${{asset}}\" and exists r.{} and ({} or {} or {})",
                            m_is(anomaly),
                            s::TAG_SOURCE,
                            f_is(s::FIELD_TITLE),
                            f_is(s::FIELD_TEXT),
                            f_is(s::FIELD_SINCE_NS)
                        )),
                        since = s::FIELD_SINCE_NS,
                        title = s::FIELD_TITLE,
                        text = s::FIELD_TEXT
                    )),
                    prom: Some(format!(
                        "max by ({sig}, {k}) ({})",
                        ev(
                            s::FIELD_SCORE,
                            &format!(", {a}=\"$asset\", {}=\"opened\"", s::TAG_PHASE)
                        ),
                        sig = s::TAG_SIGNAL,
                        k = s::TAG_KIND
                    )),
                    legend: "{{signal}} {{kind}}",
                },
            ),
            (
                "Reports",
                Q {
                    flux: Some(format!(
                        "{}\n  |> group()\n  |> keep(columns: [\"_time\", \"_value\", \"{}\"])",
                        from(&format!(
                            "{} and {} and r.{a} == \"${{asset}}\"",
                            m_is(report),
                            f_is(s::FIELD_ANOMALIES)
                        )),
                        s::TAG_STATUS
                    )),
                    prom: Some(format!(
                        "max by ({st}) ({report}_{}{{{a}=\"$asset\"}})",
                        s::FIELD_ANOMALIES,
                        st = s::TAG_STATUS
                    )),
                    legend: "report: {{status}}",
                },
            ),
        ],
    };
    let h = |m: NodeMetric, t: &'static str, u: &'static str| node_panel(m, t, u);
    let node_health = Dash {
        file: "node-health.json",
        uid: "millwright-node",
        title: "Millwright — Node health",
        vars: &["site"],
        panels: vec![
            h(nm::READINGS_TOTAL, "Readings / s", "reqps"),
            h(
                nm::MQTT_REJECTED_TOTAL,
                "MQTT rejects / s by reason",
                "reqps",
            ),
            h(nm::MQTT_CONNECTED, "Broker connected", "bool"),
            h(
                nm::MQTT_SUBSCRIBED,
                "Subscriptions accepted (SUBACK)",
                "bool",
            ),
            h(
                nm::ANALYTICS_DROPPED_BATCHES_TOTAL,
                "Analytics tap drops / s",
                "reqps",
            ),
            h(
                nm::MODBUS_DROPPED_BATCHES_TOTAL,
                "Modbus bus drops / s",
                "reqps",
            ),
            h(nm::INFLUX_BACKLOG_POINTS, "InfluxDB backlog", "none"),
            h(
                nm::INFLUX_FAILED_REQUESTS_TOTAL,
                "Write errors: failed requests / s",
                "reqps",
            ),
            h(
                nm::INFLUX_REJECTED_POINTS_TOTAL,
                "Write errors: rejected points / s",
                "reqps",
            ),
            h(
                nm::INFLUX_DROPPED_POINTS_TOTAL,
                "Write errors: dropped points / s",
                "reqps",
            ),
            h(nm::MODBUS_DEVICE_ONLINE, "Modbus devices online", "bool"),
            h(nm::MODBUS_POLL_CYCLE_SECONDS, "Modbus poll cycle", "s"),
            h(nm::MODBUS_TIMEOUTS_TOTAL, "Modbus timeouts / s", "reqps"),
            h(
                nm::MODEL_TIME_TO_FIRST_TOKEN_SECONDS,
                "Model: time to first token",
                "s",
            ),
            h(
                nm::MODEL_PROMPT_TOKENS_PER_SECOND,
                "Model: prompt tokens / s",
                "none",
            ),
            h(
                nm::MODEL_DECODE_TOKENS_PER_SECOND,
                "Model: decode tokens / s",
                "none",
            ),
            h(
                nm::MODEL_CPU_SECONDS_PER_TOKEN,
                "Model: CPU seconds per token",
                "s",
            ),
            h(nm::MODEL_QUEUE_DEPTH, "Model: queue depth", "none"),
            h(
                nm::MODEL_QUEUE_WAIT_SECONDS_TOTAL,
                "Model: queue wait (s per s)",
                "s",
            ),
            h(
                nm::EXPLANATIONS_QUEUE_FULL_TOTAL,
                "Model: busy answers / s",
                "reqps",
            ),
            h(
                nm::GROUNDING_FAILURES_TOTAL,
                "Model: grounding failures / s",
                "reqps",
            ),
            h(
                nm::EXPLANATIONS_FALLBACK_TOTAL,
                "Template fallbacks / s",
                "reqps",
            ),
            h(
                nm::MODEL_RESIDENT_MEMORY_BYTES,
                "Model resident memory",
                "bytes",
            ),
            h(
                nm::PROCESS_RESIDENT_MEMORY_BYTES,
                "Node resident memory",
                "bytes",
            ),
        ],
        annotations: vec![],
    };
    let reports = Dash {
        file: "reports.json",
        uid: "millwright-reports",
        title: "Millwright — Reports",
        vars: &["site"],
        panels: vec![
            Panel {
                title: "Latest report per asset: anomalies",
                viz: "table",
                unit: "none",
                w: 12,
                h: 8,
                description: "Anomalies in each asset's latest maintenance report, with its status.",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{a}\"])\n  |> last()\n  |> group()\n  |> keep(columns: [\"_time\", \"{a}\", \"{st}\", \"_value\"])",
                        from(&format!("{} and {}", m_is(report), f_is(s::FIELD_ANOMALIES))),
                        st = s::TAG_STATUS
                    )),
                    prom: Some(format!(
                        "last_over_time({report}_{}[$__range])",
                        s::FIELD_ANOMALIES
                    )),
                    legend: "{{asset}} {{status}}",
                }],
            },
            Panel {
                title: "Latest report per asset: recommended actions",
                viz: "table",
                unit: "none",
                w: 12,
                h: 8,
                description: "Recommended actions in each asset's latest maintenance report.",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{a}\"])\n  |> last()\n  |> group()\n  |> keep(columns: [\"_time\", \"{a}\", \"{st}\", \"_value\"])",
                        from(&format!("{} and {}", m_is(report), f_is(s::FIELD_ACTIONS))),
                        st = s::TAG_STATUS
                    )),
                    prom: Some(format!(
                        "last_over_time({report}_{}[$__range])",
                        s::FIELD_ACTIONS
                    )),
                    legend: "{{asset}} {{status}}",
                }],
            },
            Panel {
                title: "Latest report text",
                viz: "table",
                unit: "none",
                w: 24,
                h: 12,
                description: "Each asset's latest maintenance report as Markdown (InfluxDB only: VictoriaMetrics drops string fields).",
                q: vec![Q {
                    flux: Some(format!(
                        "{}\n  |> group(columns: [\"{a}\"])\n  |> last()\n  |> group()\n  |> keep(columns: [\"_time\", \"{a}\", \"_value\"])",
                        from(&format!("{} and {}", m_is(report), f_is(s::FIELD_MARKDOWN)))
                    )),
                    prom: None,
                    legend: "",
                }],
            },
        ],
        annotations: vec![],
    };
    vec![site_overview, asset_detail, node_health, reports]
}

fn variable(name: &str, f: Flavour) -> Value {
    let (a, site) = (s::TAG_ASSET, s::TAG_SITE);
    let query = match (name, f) {
        ("site", Flavour::Flux) => format!(
            "import \"influxdata/influxdb/schema\"\nschema.tagValues(bucket: \"${{bucket}}\", tag: \"{site}\", predicate: (r) => {}, start: -30d)",
            f_is(s::FIELD_VALUE)
        ),
        ("asset", Flavour::Flux) => format!(
            "import \"influxdata/influxdb/schema\"\nschema.tagValues(bucket: \"${{bucket}}\", tag: \"{a}\", predicate: (r) => {} and r.{site} == \"${{site}}\", start: -30d)",
            f_is(s::FIELD_VALUE)
        ),
        ("site", Flavour::Prom) => format!("label_values({}, {site})", readings_prom("").replace(&format!(", {site}=\"$site\""), "")),
        ("asset", Flavour::Prom) => format!("label_values({}, {a})", readings_prom("")),
        _ => unreachable!("variable {name}"),
    };
    json!({
        "name": name,
        "label": name,
        "type": "query",
        "datasource": f.ds(),
        "query": query,
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "includeAll": false,
        "multi": false,
        "current": {},
        "options": [],
        "hide": 0
    })
}

fn target(q: &Q, f: Flavour, ref_id: char) -> Option<Value> {
    match f {
        Flavour::Flux => q
            .flux
            .as_ref()
            .map(|text| json!({"refId": ref_id.to_string(), "datasource": f.ds(), "query": text})),
        Flavour::Prom => q.prom.as_ref().map(|expr| {
            json!({"refId": ref_id.to_string(), "datasource": f.ds(), "expr": expr,
                   "legendFormat": q.legend, "range": true, "instant": false})
        }),
    }
}

fn dashboard(d: &Dash, f: Flavour) -> Value {
    let mut panels = Vec::new();
    let (mut x, mut y, mut row_h) = (0u64, 0u64, 0u64);
    for p in &d.panels {
        let targets: Vec<Value> =
            p.q.iter()
                .zip('A'..='Z')
                .filter_map(|(q, r)| target(q, f, r))
                .collect();
        if targets.is_empty() {
            continue;
        }
        if x + p.w > 24 {
            (x, y, row_h) = (0, y + row_h, 0);
        }
        panels.push(json!({
            "id": panels.len() + 1,
            "type": p.viz,
            "title": p.title,
            "description": p.description,
            "datasource": f.ds(),
            "gridPos": {"h": p.h, "w": p.w, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
            "options": {},
            "targets": targets,
        }));
        x += p.w;
        row_h = row_h.max(p.h);
    }
    let mut templating = Vec::new();
    if f == Flavour::Flux {
        templating.push(json!({
            "name": "bucket", "label": "bucket", "type": "constant", "query": "millwright",
            "hide": 2, "current": {"text": "millwright", "value": "millwright"}, "options": []
        }));
    }
    for v in d.vars {
        templating.push(variable(v, f));
    }
    let mut annotations = vec![json!({
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": true, "hide": true, "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts", "type": "dashboard"
    })];
    for (name, q) in &d.annotations {
        let mut a = json!({"name": name, "enable": true, "iconColor": "red", "datasource": f.ds()});
        match f {
            Flavour::Flux => match &q.flux {
                Some(t) => a["target"] = json!({"refId": "Anno", "query": t}),
                None => continue,
            },
            Flavour::Prom => match &q.prom {
                Some(e) => {
                    a["expr"] = json!(e);
                    a["titleFormat"] = json!(q.legend);
                    a["step"] = json!("60s");
                }
                None => continue,
            },
        }
        annotations.push(a);
    }
    let flavour = match f {
        Flavour::Flux => "InfluxDB 2 (Flux)",
        Flavour::Prom => "VictoriaMetrics / Prometheus (PromQL)",
    };
    json!({
        "uid": format!("{}-{}", d.uid, match f { Flavour::Flux => "flux", Flavour::Prom => "prom" }),
        "title": format!("{} — {flavour}", d.title),
        "description": "Generated by tests/tests/dashboards/spec.rs; do not edit by hand.",
        "tags": ["millwright"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": true,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "templating": {"list": templating},
        "annotations": {"list": annotations},
        "panels": panels,
        "links": [],
    })
}

/// Every generated file: path under `dashboards/` and its text.
pub fn generate() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in [Flavour::Flux, Flavour::Prom] {
        for d in dashboards() {
            let text = serde_json::to_string_pretty(&dashboard(&d, f)).unwrap() + "\n";
            out.push((format!("{}/{}", f.dir(), d.file), text));
        }
    }
    out
}
