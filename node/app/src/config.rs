//! The node's configuration file (`millwright.toml`): structure, loading and validation.
//!
//! Loading reports *every* problem it can find, each with its dotted path and line:
//! syntax and shape errors from the TOML reader (an offending line is set aside and reading
//! goes on, so one typo does not hide the next), then the semantic checks of each section.
//! Secrets (`password`, `token`) are never printed; `password_file` / `token_file` and
//! `${VAR}` in them are resolved by [`secrets`] before the text is deserialized.

pub mod secrets;

use millwright_core::ValidationError;
use millwright_ingest::mqtt::MqttConfig;
use millwright_sinks::InfluxConfig;
use millwright_store::StoreConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The whole node configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Site identity (`[site]`).
    pub site: SiteConfig,
    /// MQTT broker and subscriptions (`[mqtt]`); omit to not use MQTT.
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    /// Modbus devices to poll (`[[modbus.devices]]`); omit to not use Modbus.
    #[serde(default)]
    pub modbus: Option<millwright_ingest::modbus::ModbusConfig>,
    /// InfluxDB 2 output (`[influxdb]`); omit to keep data only locally.
    #[serde(default)]
    pub influxdb: Option<InfluxConfig>,
    /// Local history (`[store]`).
    #[serde(default)]
    pub store: StoreConfig,
    /// Node-wide settings (`[node]`).
    #[serde(default)]
    pub node: NodeSection,
    /// Assets watched by detectors (`[[assets]]`).
    #[serde(default)]
    pub assets: Vec<AssetConfig>,
    /// The on-device language model that explains anomalies (`[model]`).
    #[serde(default)]
    pub model: Option<ModelSection>,
    /// Operator questions over MQTT (`[ask]`, `[[ask.acl]]`).
    #[serde(default)]
    pub ask: crate::ask::AskSection,
}

/// An asset and its profile (`[[assets]]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    /// Asset tag as readings name it, e.g. `P-101`.
    pub name: String,
    /// Asset profile file (relative to this config file), e.g. `../pipelines/centrifugal-pump.toml`.
    pub profile: String,
}

/// `[model]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// GGUF files, largest first; the largest that fits the available RAM is used
    /// (relative to this config file). None usable: the rule-based template explains.
    pub files: Vec<String>,
    /// Threads for inference (default: all cores).
    #[serde(default)]
    pub threads: Option<usize>,
    /// In-memory weight format: `auto` (default: 4- and 8-bit weights stay as they are, on
    /// the node's own kernels), `q8_0` (everything 8-bit, ~1.7x the RAM of Q4_1), `native`
    /// (the file's types) or `f32` (~6x the RAM, for experiments).
    #[serde(default = "default_weights")]
    pub weights: String,
    /// Nice value (0–19) of the model's threads, so that ingest and detection run first when
    /// the cores are busy (default 10: the model gets about a tenth of a core that ingest
    /// wants; 0: the same priority as the rest of the node). Shown in `/health`
    /// (`model.priority`).
    #[serde(default = "default_model_nice")]
    pub nice: i32,
}

fn default_weights() -> String {
    "auto".into()
}

/// Default `[model] nice`.
pub const DEFAULT_MODEL_NICE: i32 = 10;

fn default_model_nice() -> i32 {
    DEFAULT_MODEL_NICE
}

/// `[site]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site name: tags every point written and forms the MQTT topic root `<topic_root>/<name>/`.
    pub name: String,
    /// First level of the topics the node publishes on.
    #[serde(default = "default_topic_root")]
    pub topic_root: String,
}

fn default_topic_root() -> String {
    "millwright".into()
}

/// `[node]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Capacity of the reading bus in batches (back-pressure beyond it).
    #[serde(default = "default_bus_capacity")]
    pub bus_capacity: usize,
    /// Seconds between status lines in the log (0: never).
    #[serde(default = "default_status_interval_s")]
    pub status_interval_s: u64,
    /// Seconds between scheduled maintenance reports of every asset (e.g. 28800 = per 8-h shift;
    /// 0: none). Reports are also written when an anomaly closes and on request over MQTT.
    #[serde(default = "default_report_interval_s")]
    pub report_interval_s: u64,
    /// Where to serve Prometheus `/metrics` and `/health` (e.g. `127.0.0.1:9464`); omit for none.
    /// A loopback address unless `metrics_public = true`.
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Allow `metrics_listen` on a non-loopback address (e.g. `0.0.0.0` inside a container
    /// whose port is published to the host's loopback only). Default false.
    #[serde(default)]
    pub metrics_public: bool,
    /// On SIGTERM/SIGINT, the longest time spent writing what the InfluxDB writer still holds
    /// before the node exits, in seconds (1–600; keep it below the service manager's stop
    /// timeout).
    #[serde(default = "default_shutdown_drain_s")]
    pub shutdown_drain_s: u64,
    /// Seconds between samples of the node's own metrics written to InfluxDB as
    /// `millwright_node` (0: never; needs `[influxdb]`).
    #[serde(default = "default_metrics_interval_s")]
    pub metrics_interval_s: u64,
    /// Allow endpoints (broker, InfluxDB, Modbus devices) that resolve to public addresses.
    /// `false` (default): every endpoint must be loopback, private, link-local or CGNAT
    /// (`egress.rs`), checked by `check-config` and again when the node connects.
    #[serde(default)]
    pub allow_public_endpoints: bool,
    /// Memory the node's data path may use, in MB (32–65536): the reading bus, the InfluxDB
    /// writer's inbox and in-memory backlog, the analytics tap, the largest MQTT packet and the
    /// local store are sized from it (`memory.rs`). The model's weights come on top.
    #[serde(default = "default_memory_budget_mb")]
    pub memory_budget_mb: usize,
}

fn default_memory_budget_mb() -> usize {
    crate::memory::DEFAULT_BUDGET_MB
}

fn default_metrics_interval_s() -> u64 {
    10
}
fn default_bus_capacity() -> usize {
    1024
}
fn default_status_interval_s() -> u64 {
    60
}
fn default_report_interval_s() -> u64 {
    28_800
}
fn default_shutdown_drain_s() -> u64 {
    10
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            bus_capacity: default_bus_capacity(),
            status_interval_s: default_status_interval_s(),
            report_interval_s: default_report_interval_s(),
            metrics_listen: None,
            metrics_public: false,
            shutdown_drain_s: default_shutdown_drain_s(),
            metrics_interval_s: default_metrics_interval_s(),
            allow_public_endpoints: false,
            memory_budget_mb: default_memory_budget_mb(),
        }
    }
}

/// A problem in a config file: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path (`mqtt.subscriptions[0].qos`), empty for file-level problems.
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.path.is_empty()) {
            (Some(l), false) => write!(f, "line {l}: {}: {}", self.path, self.message),
            (Some(l), true) => write!(f, "line {l}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

/// All problems of a config file.
#[derive(Debug)]
pub struct ConfigErrors {
    /// The file.
    pub file: String,
    /// Its problems, in file order where known.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} problem(s)", self.file, self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {}: {p}", self.file)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

// For configs built in code: the demo and the benchmarks.
#[cfg_attr(not(any(feature = "demo", feature = "bench")), allow(dead_code))]
impl Config {
    /// A config of `[site]` named `site` alone: no inputs, no outputs, every other section at
    /// its default. For commands that build their config in code (demo, benchmarks): set the
    /// sections, then [`Config::checked`].
    pub fn for_site(site: &str) -> Config {
        Config {
            site: SiteConfig {
                name: site.into(),
                topic_root: default_topic_root(),
            },
            mqtt: None,
            modbus: None,
            influxdb: None,
            store: StoreConfig::default(),
            node: Default::default(),
            assets: Vec::new(),
            model: None,
            ask: Default::default(),
        }
    }

    /// The config, if [`Config::validate`] finds no problem; else every problem, one a line.
    pub fn checked(self) -> Result<Config, String> {
        let problems = self.validate();
        if problems.is_empty() {
            return Ok(self);
        }
        Err(problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: file.clone(),
            problems: vec![ConfigProblem {
                path: String::new(),
                line: None,
                message: format!("cannot read: {e}"),
            }],
        })?;
        Self::parse_in(&text, path.parent(), &secrets::process_env)
            .map_err(|problems| ConfigErrors { file, problems })
    }

    /// Parses and checks config text (secret files relative to the working directory).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
        Self::parse_in(text, None, &secrets::process_env)
    }

    /// Parses and checks config text; `base` is the directory relative secret files are in,
    /// `env` the environment `${VAR}` is expanded from.
    pub fn parse_in(
        text: &str,
        base: Option<&Path>,
        env: secrets::Env<'_>,
    ) -> Result<Config, Vec<ConfigProblem>> {
        let (mut src, resolved, mut problems) = secrets::resolve(text, base, env);
        let mut parsed = None;
        for _ in 0..50 {
            match deserialize(&src) {
                Ok(c) => {
                    parsed = Some(c);
                    break;
                }
                Err((mut p, span)) => {
                    secrets::redact_problem(&mut p);
                    let missing = p.message.starts_with("missing field");
                    let syntax = p.path.is_empty() && span.is_none();
                    problems.push(p);
                    // Set the offending line(s) aside and read on, to find further problems.
                    match span {
                        Some(s) if !missing && !syntax => blank_lines(&mut src, s),
                        _ => break,
                    }
                }
            }
        }
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        match parsed {
            Some(mut cfg) if problems.is_empty() => {
                secrets::apply(&mut cfg, resolved);
                let semantic = cfg.validate();
                if semantic.is_empty() {
                    Ok(cfg)
                } else {
                    Err(semantic
                        .into_iter()
                        .map(|e| ConfigProblem {
                            line: locate(text, &e.path),
                            path: e.path,
                            message: e.message,
                        })
                        .collect())
                }
            }
            _ => Err(problems),
        }
    }

    /// Semantic checks of every section (pure; collects every problem).
    pub fn validate(&self) -> Vec<ValidationError> {
        let mut e = Vec::new();
        if self.site.name.trim().is_empty() {
            e.push(ValidationError::new("site.name", "is empty"));
        }
        if self.site.name.contains(['/', '+', '#']) || self.site.topic_root.contains(['+', '#']) {
            e.push(ValidationError::new(
                "site.name",
                "must not contain `/`, `+` or `#` (it is an MQTT topic level)",
            ));
        }
        if let Some(m) = &self.mqtt {
            e.extend(m.validate("mqtt"));
        }
        if let Some(m) = &self.modbus {
            e.extend(m.validate());
        }
        if let Some(i) = &self.influxdb {
            e.extend(i.validate("influxdb"));
        }
        e.extend(self.store.validate("store"));
        let mut names = std::collections::HashSet::new();
        for (i, a) in self.assets.iter().enumerate() {
            if a.name.trim().is_empty() {
                e.push(ValidationError::new(
                    format!("assets[{i}].name"),
                    "is empty",
                ));
            } else if !names.insert(a.name.clone()) {
                e.push(ValidationError::new(
                    format!("assets[{i}].name"),
                    format!("`{}` is listed twice", a.name),
                ));
            }
        }
        if let Some(m) = &self.model {
            if m.files.is_empty() {
                e.push(ValidationError::new("model.files", "is empty"));
            }
            if m.threads == Some(0) {
                e.push(ValidationError::new("model.threads", "must be > 0"));
            }
            if !(0..=19).contains(&m.nice) {
                e.push(ValidationError::new("model.nice", "must be 0–19"));
            }
            if millwright_slm::WeightFormat::parse(&m.weights).is_none() {
                e.push(ValidationError::new(
                    "model.weights",
                    format!("`{}` is not one of auto, q8_0, native, f32", m.weights),
                ));
            }
        }
        let assets: Vec<String> = self.assets.iter().map(|a| a.name.clone()).collect();
        e.extend(self.ask.validate(&assets, self.mqtt.is_some()));
        e.extend(crate::memory::MemoryCaps::validate(self));
        if self.node.bus_capacity == 0 {
            e.push(ValidationError::new("node.bus_capacity", "must be > 0"));
        }
        if !(1..=600).contains(&self.node.shutdown_drain_s) {
            e.push(ValidationError::new(
                "node.shutdown_drain_s",
                "must be 1–600 (seconds)",
            ));
        }
        if let Some(a) = self.node.metrics_listen {
            if !a.ip().is_loopback() && !self.node.metrics_public {
                e.push(ValidationError::new(
                    "node.metrics_listen",
                    format!(
                        "{a} is not a loopback address: /metrics and /health would be open to the \
                         network; use 127.0.0.1 or set node.metrics_public = true"
                    ),
                ));
            }
        }
        if self.node.metrics_interval_s > 86_400 {
            e.push(ValidationError::new(
                "node.metrics_interval_s",
                "must be 0 (never) to 86400 seconds",
            ));
        }
        if self.mqtt.is_none() && self.modbus.as_ref().is_none_or(|m| m.devices.is_empty()) {
            e.push(ValidationError::new(
                "mqtt",
                "no input configured: add an [mqtt] section or [[modbus.devices]]",
            ));
        }
        e
    }
}

fn deserialize(src: &str) -> Result<Config, (ConfigProblem, Option<std::ops::Range<usize>>)> {
    let de = toml::Deserializer::new(src);
    serde_path_to_error::deserialize::<_, Config>(de).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = err.into_inner();
        let span = inner.span();
        let line = span.clone().map(|s| line_of(src, s.start));
        (
            ConfigProblem {
                path,
                line,
                message: inner.message().trim().to_string(),
            },
            span,
        )
    })
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Replaces the lines covered by `span` with blanks (keeping offsets and line numbers).
fn blank_lines(src: &mut String, span: std::ops::Range<usize>) {
    let bytes = src.as_bytes();
    let start = bytes[..span.start.min(bytes.len())]
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let end = bytes[span.end.min(bytes.len())..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|p| p + span.end)
        .unwrap_or(bytes.len());
    let blank: String = src[start..end]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    src.replace_range(start..end, &blank);
}

/// Finds the line of a dotted path like `mqtt.subscriptions[1].topic` in the TOML text.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item: &toml_edit::Item = doc.as_item();
    let mut span = None;
    for seg in path.split('.') {
        let (key, idx) = match seg.find('[') {
            Some(b) => (
                &seg[..b],
                seg[b + 1..].trim_end_matches(']').parse::<usize>().ok(),
            ),
            None => (seg, None),
        };
        let table = item.as_table_like()?;
        let (k, next) = table.get_key_value(key)?;
        span = k.span().or(next.span()).or(span);
        item = next;
        if let Some(i) = idx {
            if let Some(arr) = item.as_array_of_tables() {
                let t = arr.get(i)?;
                span = t.span().or(span);
                // Re-wrap: walk into the table.
                let mut found = None;
                for (n, tt) in arr.iter().enumerate() {
                    if n == i {
                        found = Some(tt);
                    }
                }
                let tt = found?;
                return locate_in_table(text, tt, path.split_once(&format!("{seg}."))?.1)
                    .or_else(|| span.map(|s| line_of(text, s.start)));
            }
        }
    }
    span.map(|s| line_of(text, s.start))
}

fn locate_in_table(text: &str, t: &toml_edit::Table, rest: &str) -> Option<usize> {
    let key = rest.split(['.', '[']).next()?;
    let (k, v) = t.get_key_value(key)?;
    k.span().or(v.span()).map(|s| line_of(text, s.start))
}

/// Modbus sections built in code with the defaults a config file would get (the demo's config;
/// `sections_built_in_code_equal_parsed_ones` keeps them equal to parsed ones). MQTT sections
/// have their own constructors (`MqttConfig::new`, `SubscriptionConfig::new`).
#[cfg_attr(not(feature = "demo"), allow(dead_code))]
pub mod build {
    use millwright_ingest::modbus::config::{DataType, TransportKind};
    use millwright_ingest::modbus::decode::RegisterOrder;
    use millwright_ingest::modbus::plan::{
        Function, MAX_COILS_PER_REQUEST, MAX_REGISTERS_PER_REQUEST,
    };
    use millwright_ingest::modbus::{DeviceConfig, FieldConfig};

    /// `[[modbus.devices]]`: a Modbus TCP device `name` of `asset` at `host:port`, unit 1.
    pub fn modbus_tcp(
        name: &str,
        host: &str,
        port: u16,
        poll_interval_ms: u64,
        timeout_ms: u64,
        fields: Vec<FieldConfig>,
    ) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            asset: name.into(),
            transport: TransportKind::Tcp,
            host: Some(host.into()),
            port: Some(port),
            serial_path: None,
            baud_rate: None,
            parity: None,
            stop_bits: None,
            unit_id: 1,
            poll_interval_ms,
            timeout_ms,
            retries: 1,
            backoff_max_ms: 30_000,
            max_gap_registers: 4,
            max_registers_per_request: MAX_REGISTERS_PER_REQUEST,
            max_coils_per_request: MAX_COILS_PER_REQUEST,
            fields,
        }
    }

    /// `[[modbus.devices.fields]]`: a numeric register field, no offset.
    pub fn register_field(
        signal: &str,
        function: Function,
        address: u16,
        data_type: DataType,
        order: RegisterOrder,
        scale: f64,
        unit: &str,
    ) -> FieldConfig {
        FieldConfig {
            signal: signal.into(),
            asset: None,
            function,
            address,
            data_type,
            bit: None,
            length_registers: None,
            order,
            scale,
            offset: 0.0,
            unit: unit.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[site]
name = "plant-1"

[mqtt]
host = "127.0.0.1"

[[mqtt.subscriptions]]
topic = "plant/{asset}/{signal}"
"#;

    #[test]
    fn good_config_parses() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.site.name, "plant-1");
        assert_eq!(c.mqtt.unwrap().subscriptions[0].qos, 1);
    }

    #[test]
    fn every_shape_error_is_reported_with_path_and_line() {
        let bad = format!("{GOOD}colour = 3\n\n[store]\nwindow_s = \"long\"\n");
        let probs = Config::parse(&bad).unwrap_err();
        assert_eq!(probs.len(), 2, "{probs:?}");
        assert!(
            probs[0].message.contains("unknown field `colour`"),
            "{probs:?}"
        );
        assert_eq!(probs[0].line, Some(10));
        assert_eq!(probs[1].path, "store.window_s");
        assert_eq!(probs[1].line, Some(13));
    }

    #[test]
    fn shutdown_drain_defaults_to_10_s_and_is_bounded() {
        assert_eq!(Config::parse(GOOD).unwrap().node.shutdown_drain_s, 10);
        let set = |v: &str| format!("{GOOD}\n[node]\nshutdown_drain_s = {v}\n");
        assert_eq!(Config::parse(&set("30")).unwrap().node.shutdown_drain_s, 30);
        for bad in ["0", "601"] {
            let probs = Config::parse(&set(bad)).unwrap_err();
            assert_eq!(probs.len(), 1, "{probs:?}");
            assert_eq!(probs[0].path, "node.shutdown_drain_s");
            assert_eq!(probs[0].line, Some(12), "{probs:?}");
        }
    }

    #[test]
    fn model_nice_defaults_to_10_and_is_bounded() {
        let set = |v: &str| format!("{GOOD}\n[model]\nfiles = [\"m.gguf\"]\n{v}\n");
        let m = |c: Config| c.model.map(|m| m.nice);
        assert_eq!(
            m(Config::parse(&set("")).unwrap()),
            Some(DEFAULT_MODEL_NICE)
        );
        assert_eq!(m(Config::parse(&set("nice = 0")).unwrap()), Some(0));
        assert_eq!(m(Config::parse(&set("nice = 19")).unwrap()), Some(19));
        for bad in ["nice = -1", "nice = 20"] {
            let probs = Config::parse(&set(bad)).unwrap_err();
            assert_eq!(probs.len(), 1, "{probs:?}");
            assert_eq!(probs[0].path, "model.nice");
        }
    }

    #[test]
    fn semantic_errors_have_lines() {
        let bad = GOOD.replace(
            "topic = \"plant/{asset}/{signal}\"",
            "topic = \"plant/#/x\"\nqos = 2",
        );
        let probs = Config::parse(&bad).unwrap_err();
        let paths: Vec<_> = probs.iter().map(|p| (p.path.as_str(), p.line)).collect();
        assert!(
            paths.contains(&("mqtt.subscriptions[0].topic", Some(9))),
            "{probs:?}"
        );
        assert!(
            paths.contains(&("mqtt.subscriptions[0].qos", Some(10))),
            "{probs:?}"
        );
    }

    #[test]
    fn mqtt_dialect_sections_are_checked_with_lines() {
        let text = format!(
            "{GOOD}[mqtt.subscriptions.json]\nvalue = \"val\"\ntime_format = \"unix_minutes\"\n\
             [[mqtt.subscriptions]]\ntopic = \"plant/{{asset}}\"\nformat = \"sparkplug_b\"\n"
        );
        let probs = Config::parse(&text).unwrap_err();
        let paths: Vec<_> = probs.iter().map(|p| p.path.as_str()).collect();
        assert!(
            paths.contains(&"mqtt.subscriptions[0].json.value"),
            "{probs:?}"
        );
        assert!(
            paths.contains(&"mqtt.subscriptions[0].json.time_format"),
            "{probs:?}"
        );
        assert!(paths.contains(&"mqtt.subscriptions[1].topic"), "{probs:?}");
        assert!(probs.iter().all(|p| p.line.is_some()), "{probs:?}");
        let ok = format!(
            "{GOOD}[mqtt.subscriptions.json]\nfields = \"$.sensors\"\ntime = \"$.ts\"\n\
             [[mqtt.subscriptions]]\ntopic = \"spBv1.0/plant/#\"\nformat = \"sparkplug_b\"\n\
             [mqtt.subscriptions.sparkplug]\nasset = \"metric_folder\"\n"
        );
        Config::parse(&ok).unwrap();
    }

    #[test]
    fn config_built_in_code_is_checked_like_a_file() {
        let bare = Config::for_site("plant-1");
        assert_eq!(bare.site.topic_root, "millwright");
        let err = bare.clone().checked().unwrap_err();
        assert!(err.contains("no input configured"), "{err}");

        let mut with_input = bare;
        let mut mqtt = MqttConfig::new("127.0.0.1", 1883);
        mqtt.subscriptions
            .push(millwright_ingest::mqtt::SubscriptionConfig::new(
                "plant/{asset}/{signal}",
                millwright_ingest::mqtt::PayloadFormat::Json,
            ));
        with_input.mqtt = Some(mqtt);
        let built = with_input.checked().unwrap();
        let parsed = Config::parse(GOOD).unwrap();
        assert_eq!(
            serde_json::to_value(&built).unwrap(),
            serde_json::to_value(&parsed).unwrap(),
            "a config built in code equals the same config read from a file"
        );
    }

    #[test]
    fn sections_built_in_code_equal_parsed_ones() {
        use millwright_ingest::modbus::config::DataType;
        use millwright_ingest::modbus::decode::RegisterOrder;
        use millwright_ingest::modbus::plan::Function;
        let text = r#"
[site]
name = "b"
[mqtt]
host = "127.0.0.1"
port = 1884
client_id = "c"
[[mqtt.subscriptions]]
topic = "demo/{asset}/telemetry"
format = "json"
[[modbus.devices]]
name = "P-1"
asset = "P-1"
transport = "tcp"
host = "127.0.0.1"
port = 1502
poll_interval_ms = 200
timeout_ms = 150
[[modbus.devices.fields]]
signal = "t_c"
function = "input"
address = 3
type = "f32"
order = "cdab"
scale = 0.5
unit = "°C"
"#;
        let parsed = Config::parse(text).unwrap();
        let mut built = Config::for_site("b");
        let mut mqtt = MqttConfig::new("127.0.0.1", 1884);
        mqtt.client_id = "c".into();
        mqtt.subscriptions
            .push(millwright_ingest::mqtt::SubscriptionConfig::new(
                "demo/{asset}/telemetry",
                millwright_ingest::mqtt::PayloadFormat::Json,
            ));
        built.mqtt = Some(mqtt);
        built.modbus = Some(millwright_ingest::modbus::ModbusConfig {
            devices: vec![build::modbus_tcp(
                "P-1",
                "127.0.0.1",
                1502,
                200,
                150,
                vec![build::register_field(
                    "t_c",
                    Function::Input,
                    3,
                    DataType::F32,
                    RegisterOrder::CDAB,
                    0.5,
                    "°C",
                )],
            )],
        });
        let json = |c: &Config| serde_json::to_value(c).unwrap();
        assert_eq!(json(&built), json(&parsed));
        assert!(built.validate().is_empty());
    }
}
