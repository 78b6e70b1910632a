//! Configuration of the MQTT source (`[mqtt]`): broker connection and subscriptions.
//!
//! The TOML shape lives here; the connection part of it is handed to `millwright-mqtt` as a
//! [`ConnectOptions`] ([`MqttConfig::connection`]), which validates it and builds the client
//! options, so every MQTT client of the node connects the same way. Validation is pure and
//! collects every problem with its path.

use super::codec::mapped::JsonMapping;
use super::codec::sparkplug::SparkplugOptions;
use super::codec::{DecodeDefaults, PayloadFormat, Precision};
use super::topic::TopicPattern;
use millwright_core::{Secret, ValidationError};
use millwright_mqtt::ConnectOptions;
pub use millwright_mqtt::{MqttProtocol, TlsConfig};
use serde::{Deserialize, Serialize};

/// Broker connection (`[mqtt]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or IP address.
    pub host: String,
    /// Broker TCP port (1883 plain, 8883 usually with TLS).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Client id; keep it stable so the broker can keep the session across reconnects.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// User name, if the broker requires one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (never logged).
    #[serde(default)]
    pub password: Option<Secret>,
    /// TLS settings; omit for plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Keep-alive interval in seconds (5–65535).
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// `"3.1.1"` or `"5"`.
    #[serde(default)]
    pub protocol: MqttProtocol,
    /// Start with a clean session. `false` (default) lets the broker keep QoS 1 messages
    /// for the node while it is disconnected.
    #[serde(default)]
    pub clean_session: bool,
    /// First reconnect delay in ms; doubles per failed attempt up to `reconnect_max_ms`.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay in ms.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// Largest MQTT packet the client accepts, in bytes. Larger packets break the connection,
    /// so this is generous; payload limits per subscription are `max_payload_bytes`.
    #[serde(default = "default_max_packet_bytes")]
    pub max_packet_bytes: usize,
    /// Topics to subscribe to (`[[mqtt.subscriptions]]`).
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionConfig>,
}

/// One subscription (`[[mqtt.subscriptions]]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Topic pattern: MQTT filter whose levels may be `{asset}` and `{signal}`,
    /// e.g. `plant/{asset}/{signal}` or `factory/line1/#`.
    pub topic: String,
    /// Payload format: `json`, `line_protocol` or `sparkplug_b`.
    #[serde(default)]
    pub format: PayloadFormat,
    /// QoS 0 (at most once) or 1 (at least once).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// Asset for messages that name none in payload or topic.
    #[serde(default)]
    pub asset: Option<String>,
    /// Signal for messages that name none in payload or topic.
    #[serde(default)]
    pub signal: Option<String>,
    /// Unit for values whose payload names none.
    #[serde(default)]
    pub unit: Option<String>,
    /// Timestamp precision of line-protocol payloads: `ns`, `us`, `ms`, `s`.
    #[serde(default)]
    pub precision: Precision,
    /// Largest payload accepted, in bytes; larger ones are counted as `too_large`.
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Where the readings are in JSON payloads whose keys someone else chose
    /// (`[mqtt.subscriptions.json]`, with `format = "json"`); omit for the node's own schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonMapping>,
    /// Sparkplug B options (`[mqtt.subscriptions.sparkplug]`, with `format = "sparkplug_b"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparkplug: Option<SparkplugOptions>,
    /// How often messages are expected on this subscription, in seconds; omit to not watch it.
    /// Silent for `silence_factor` × this while connected: reported and the client reconnects
    /// and re-subscribes (`watch.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_interval_s: Option<f64>,
    /// Intervals without a message before the subscription counts as silent (≥ 2).
    #[serde(default = "default_silence_factor")]
    pub silence_factor: u32,
    /// Longest asset or signal name accepted, in bytes; longer ones are counted as `bad_name`.
    #[serde(default = "default_max_name_bytes")]
    pub max_name_bytes: usize,
    /// Readings dated more than this many seconds ahead of the node's clock are counted as
    /// `bad_time` and dropped (0: no limit).
    #[serde(default = "default_max_future_skew_s")]
    pub max_future_skew_s: u64,
    /// Readings dated more than this many seconds before the node's clock are counted as
    /// `bad_time` and dropped (0, the default: no limit, so buffered data can be back-filled;
    /// set it to the bucket's retention, as InfluxDB refuses points older than that).
    #[serde(default = "default_max_past_age_s")]
    pub max_past_age_s: u64,
    /// Most readings one message may give; a message with more is counted as `too_large`
    /// (with `max_payload_bytes`, this bounds what one message puts on the reading bus).
    #[serde(default = "default_max_readings_per_message")]
    pub max_readings_per_message: usize,
}

fn default_port() -> u16 {
    1883
}
fn default_client_id() -> String {
    "millwright".into()
}
fn default_keep_alive_s() -> u64 {
    30
}
fn default_reconnect_min_ms() -> u64 {
    250
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}
fn default_max_packet_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_qos() -> u8 {
    1
}
fn default_silence_factor() -> u32 {
    5
}
fn default_max_payload_bytes() -> usize {
    1024 * 1024
}
fn default_max_name_bytes() -> usize {
    millwright_core::validate::DEFAULT_MAX_NAME_BYTES
}
fn default_max_future_skew_s() -> u64 {
    300
}
fn default_max_past_age_s() -> u64 {
    0
}
fn default_max_readings_per_message() -> usize {
    10_000
}

impl SubscriptionConfig {
    /// A subscription to `topic` with payloads in `format`, defaults for everything else (QoS 1).
    pub fn new(topic: &str, format: PayloadFormat) -> Self {
        Self {
            topic: topic.into(),
            format,
            qos: default_qos(),
            asset: None,
            signal: None,
            unit: None,
            precision: Precision::default(),
            max_payload_bytes: default_max_payload_bytes(),
            json: None,
            sparkplug: None,
            expected_interval_s: None,
            silence_factor: default_silence_factor(),
            max_name_bytes: default_max_name_bytes(),
            max_future_skew_s: default_max_future_skew_s(),
            max_past_age_s: default_max_past_age_s(),
            max_readings_per_message: default_max_readings_per_message(),
        }
    }
}

impl SubscriptionConfig {
    /// What the subscription's decoder applies to every message.
    pub fn decode_defaults(&self) -> DecodeDefaults {
        DecodeDefaults {
            asset: self.asset.clone(),
            signal: self.signal.clone(),
            unit: self.unit.clone(),
            precision: self.precision,
            max_payload_bytes: self.max_payload_bytes,
            mapping: self.json.clone(),
            sparkplug: self.sparkplug.clone().unwrap_or_default(),
            max_name_bytes: self.max_name_bytes,
            time_window: millwright_core::TimeWindow::from_secs(
                self.max_future_skew_s,
                self.max_past_age_s,
            ),
            max_readings: self.max_readings_per_message,
        }
    }
}

impl MqttConfig {
    /// A connection to `host:port` with defaults for everything else and no subscriptions
    /// (for configs built in code, e.g. the benchmarks').
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            client_id: default_client_id(),
            username: None,
            password: None,
            tls: None,
            keep_alive_s: default_keep_alive_s(),
            protocol: MqttProtocol::default(),
            clean_session: false,
            reconnect_min_ms: default_reconnect_min_ms(),
            reconnect_max_ms: default_reconnect_max_ms(),
            max_packet_bytes: default_max_packet_bytes(),
            subscriptions: Vec::new(),
        }
    }

    /// The broker connection part of this section (host, port, client id, credentials, TLS,
    /// keep-alive, protocol, packet limit, reconnect back-off).
    pub fn connection(&self) -> ConnectOptions {
        ConnectOptions {
            host: self.host.clone(),
            port: self.port,
            client_id: self.client_id.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            tls: self.tls.clone(),
            keep_alive_s: self.keep_alive_s,
            protocol: self.protocol,
            max_packet_bytes: self.max_packet_bytes,
            reconnect_min_ms: self.reconnect_min_ms,
            reconnect_max_ms: self.reconnect_max_ms,
        }
    }

    /// Every problem in this section, paths prefixed with `prefix` (e.g. `mqtt`).
    pub fn validate(&self, prefix: &str) -> Vec<ValidationError> {
        let mut e = self.connection().validate(prefix);
        if self.subscriptions.is_empty() {
            e.push(ValidationError::new(
                format!("{prefix}.subscriptions"),
                "no subscription: the node would receive nothing over MQTT",
            ));
        }
        for (i, s) in self.subscriptions.iter().enumerate() {
            let sp = |k: &str| format!("{prefix}.subscriptions[{i}].{k}");
            if let Err(err) = TopicPattern::parse(&s.topic) {
                e.push(ValidationError::new(sp("topic"), err.to_string()));
            }
            if s.qos > 1 {
                e.push(ValidationError::new(
                    sp("qos"),
                    format!("{} is not 0 or 1", s.qos),
                ));
            }
            if let Some(m) = &s.json {
                if s.format != PayloadFormat::Json {
                    e.push(ValidationError::new(
                        sp("json"),
                        "a JSON mapping needs format = \"json\"",
                    ));
                }
                e.extend(m.validate(&sp("json")));
            }
            if let Some(o) = &s.sparkplug {
                if s.format != PayloadFormat::SparkplugB {
                    e.push(ValidationError::new(
                        sp("sparkplug"),
                        "Sparkplug B options need format = \"sparkplug_b\"",
                    ));
                }
                e.extend(o.validate(&sp("sparkplug")));
            }
            if s.format == PayloadFormat::SparkplugB
                && (!s.topic.starts_with("spBv1.0/") || s.topic.contains(['{', '}']))
            {
                e.push(ValidationError::new(
                    sp("topic"),
                    format!(
                        "`{}`: a Sparkplug B subscription is `spBv1.0/<group>/#` (or `spBv1.0/#`); \
                         asset and signal come from the edge node, device and metric names",
                        s.topic
                    ),
                ));
            }
            if let Some(iv) = s.expected_interval_s {
                if !(iv.is_finite() && iv > 0.0 && iv <= 86_400.0) {
                    e.push(ValidationError::new(
                        sp("expected_interval_s"),
                        format!("{iv} is not a number of seconds in (0, 86400]"),
                    ));
                }
            }
            if !(2..=1000).contains(&s.silence_factor) {
                e.push(ValidationError::new(
                    sp("silence_factor"),
                    format!("{} is not 2..=1000", s.silence_factor),
                ));
            }
            if s.max_readings_per_message == 0 {
                e.push(ValidationError::new(
                    sp("max_readings_per_message"),
                    "must be > 0",
                ));
            }
            if !(1..=65_536).contains(&s.max_name_bytes) {
                e.push(ValidationError::new(
                    sp("max_name_bytes"),
                    "must be 1..=65536",
                ));
            }
            if s.max_payload_bytes == 0 || s.max_payload_bytes > self.max_packet_bytes {
                e.push(ValidationError::new(
                    sp("max_payload_bytes"),
                    format!(
                        "must be 1..={} (mqtt.max_packet_bytes)",
                        self.max_packet_bytes
                    ),
                ));
            }
        }
        e
    }
}
