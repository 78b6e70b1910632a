//! Configuration of the MQTT source: broker connection and subscriptions.
//!
//! Validation is pure and collects every problem with its path.

use super::codec::{PayloadFormat, Precision};
use super::topic::TopicPattern;
use millwright_core::{Secret, ValidationError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// MQTT protocol version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum MqttProtocol {
    /// MQTT 3.1.1 (default; every broker speaks it).
    #[default]
    #[serde(rename = "3.1.1", alias = "v311")]
    V311,
    /// MQTT 5.
    #[serde(rename = "5", alias = "v5")]
    V5,
}

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

/// TLS to the broker (`[mqtt.tls]`). Certificates and keys are PEM files.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// Client certificate for mutual TLS.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Private key of the client certificate.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// One subscription (`[[mqtt.subscriptions]]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Topic pattern: MQTT filter whose levels may be `{asset}` and `{signal}`,
    /// e.g. `plant/{asset}/{signal}` or `factory/line1/#`.
    pub topic: String,
    /// Payload format: `json` or `line_protocol`.
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
fn default_max_payload_bytes() -> usize {
    1024 * 1024
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

    /// Every problem in this section, paths prefixed with `prefix` (e.g. `mqtt`).
    pub fn validate(&self, prefix: &str) -> Vec<ValidationError> {
        let mut e = Vec::new();
        let p = |k: &str| format!("{prefix}.{k}");
        if self.host.trim().is_empty() {
            e.push(ValidationError::new(p("host"), "is empty"));
        } else if self.host.contains("://") {
            e.push(ValidationError::new(
                p("host"),
                format!(
                    "`{}` is a URL; give only the host name or IP (port goes in `port`)",
                    self.host
                ),
            ));
        } else if self.host.contains(['/', ' ']) {
            e.push(ValidationError::new(
                p("host"),
                format!("`{}` is not a host name", self.host),
            ));
        }
        if self.port == 0 {
            e.push(ValidationError::new(p("port"), "must be 1–65535"));
        }
        if self.client_id.is_empty() || self.client_id.len() > 128 {
            e.push(ValidationError::new(
                p("client_id"),
                "must be 1–128 characters",
            ));
        }
        if !(5..=65_535).contains(&self.keep_alive_s) {
            e.push(ValidationError::new(
                p("keep_alive_s"),
                format!("{} is outside 5–65535", self.keep_alive_s),
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            e.push(ValidationError::new(
                p("password"),
                "is set but `username` is not",
            ));
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            e.push(ValidationError::new(
                p("reconnect_min_ms"),
                "must be > 0 and ≤ reconnect_max_ms",
            ));
        }
        if self.max_packet_bytes < 1024 {
            e.push(ValidationError::new(
                p("max_packet_bytes"),
                "must be at least 1024",
            ));
        }
        if let Some(tls) = &self.tls {
            if tls.client_cert_file.is_some() != tls.client_key_file.is_some() {
                e.push(ValidationError::new(
                    p("tls"),
                    "client_cert_file and client_key_file go together",
                ));
            }
        }
        if self.subscriptions.is_empty() {
            e.push(ValidationError::new(
                p("subscriptions"),
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
