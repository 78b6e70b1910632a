//! Millwright MQTT connection options, shared by every MQTT client of the node: the ingest
//! subscriber (`millwright-ingest`) and the publishers of alerts, reports and status.
//!
//! - [`ConnectOptions`]: the connection part of a config section (broker, client id,
//!   credentials, TLS, keep-alive, protocol version, packet limit, reconnect back-off), its
//!   pure [`validate`](ConnectOptions::validate), and the builders of rumqttc's client options
//!   for MQTT 3.1.1 ([`v4_options`](ConnectOptions::v4_options)) and MQTT 5
//!   ([`v5_options`](ConnectOptions::v5_options)), which read the TLS files.
//! - [`MqttProtocol`] and [`TlsConfig`]: config types of that part (`protocol = "5"`,
//!   `[mqtt.tls]`), so every section that names a broker spells them the same way.
//! - [`Backoff`]: the reconnect delays (exponential, capped).
//! - [`install_crypto_provider`]: the process-wide rustls provider TLS connections need.
//! - [`ClientOptions`]: the built rumqttc options behind a `Debug` that shows no password and
//!   no key material (rumqttc's own `Debug` prints the password); hand them to rumqttc with
//!   [`into_inner`](ClientOptions::into_inner) at the one place the client is made.
//!
//! The shape of config sections belongs to the crates that own them (ingest's `[mqtt]`); they
//! hand their connection part over as a [`ConnectOptions`]. Session and subscription choices
//! (clean session, inflight window, session expiry, last will, topics) stay with the client that
//! makes them. No network I/O here; [`check_egress`] asks the node's egress check (which may
//! resolve the broker's name) before each connect.

use millwright_core::{Secret, ValidationError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

/// TLS to the broker (`[mqtt.tls]`). Certificates and keys are PEM files.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
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

/// How to reach and log in to a broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Broker host name or IP address.
    pub host: String,
    /// Broker TCP port.
    pub port: u16,
    /// Client id; keep it stable so the broker can keep the session across reconnects.
    pub client_id: String,
    /// User name, if the broker requires one.
    pub username: Option<String>,
    /// Password (never logged); only sent with a user name.
    pub password: Option<Secret>,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<TlsConfig>,
    /// Keep-alive interval in seconds (5–65535).
    pub keep_alive_s: u64,
    /// Protocol version.
    pub protocol: MqttProtocol,
    /// Largest MQTT packet sent or accepted, in bytes.
    pub max_packet_bytes: usize,
    /// First reconnect delay in ms; doubles per failed attempt up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay in ms.
    pub reconnect_max_ms: u64,
}

/// Why client options could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A TLS file could not be read.
    #[error("mqtt.tls: cannot read {path}: {source}")]
    TlsFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ConnectOptions {
    /// The same connection under another client id (a second client of the node on the same
    /// broker must not take over the first one's session).
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Every problem in these options, paths prefixed with `prefix` (e.g. `mqtt`).
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
        e
    }

    /// MQTT 3.1.1 client options: address, client id, keep-alive, packet limit, credentials
    /// and TLS (files read now). Session settings are left at rumqttc's defaults.
    pub fn v4_options(&self) -> Result<ClientOptions<rumqttc::MqttOptions>, ConnectError> {
        let mut opts =
            rumqttc::MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        opts.set_keep_alive(Duration::from_secs(self.keep_alive_s))
            .set_max_packet_size(self.max_packet_bytes, self.max_packet_bytes);
        if let Some(u) = &self.username {
            opts.set_credentials(u.clone(), self.password_text());
        }
        if let Some(t) = self.load_tls()? {
            opts.set_transport(rumqttc::Transport::tls_with_config(t));
        }
        Ok(ClientOptions(opts))
    }

    /// MQTT 5 client options, the same settings as [`v4_options`](Self::v4_options).
    pub fn v5_options(&self) -> Result<ClientOptions<rumqttc::v5::MqttOptions>, ConnectError> {
        let mut opts =
            rumqttc::v5::MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        let max_packet = u32::try_from(self.max_packet_bytes).unwrap_or(u32::MAX);
        // rumqttc's MQTT 5 client refuses (panics on) keep-alives under 5 s; validation
        // rejects them, this only keeps an unvalidated value from reaching it.
        opts.set_keep_alive(Duration::from_secs(self.keep_alive_s.max(5)))
            .set_max_packet_size(Some(max_packet));
        if let Some(u) = &self.username {
            opts.set_credentials(u.clone(), self.password_text());
        }
        if let Some(t) = self.load_tls()? {
            opts.set_transport(rumqttc::Transport::tls_with_config(t));
        }
        Ok(ClientOptions(opts))
    }

    fn password_text(&self) -> String {
        self.password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default()
    }

    /// Reads the TLS files (and installs the crypto provider); `None` without TLS.
    pub fn load_tls(&self) -> Result<Option<rumqttc::TlsConfiguration>, ConnectError> {
        let Some(t) = &self.tls else { return Ok(None) };
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| ConnectError::TlsFile {
                path: p.display().to_string(),
                source,
            })
        };
        let ca = read(&t.ca_file)?;
        let client_auth = match (&t.client_cert_file, &t.client_key_file) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        install_crypto_provider();
        Ok(Some(rumqttc::TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        }))
    }
}

/// Built rumqttc client options (`rumqttc::MqttOptions` or `rumqttc::v5::MqttOptions`) whose
/// `Debug` shows the broker, client id, user name and transport but never the password or key
/// material. Derefs to the options for further settings (session, inflight, last will).
#[derive(Clone)]
pub struct ClientOptions<T>(T);

impl<T> ClientOptions<T> {
    /// The rumqttc options, for `AsyncClient::new`; do not log them (rumqttc's `Debug` prints
    /// the password).
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for ClientOptions<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for ClientOptions<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

fn transport_name(t: &rumqttc::Transport) -> &'static str {
    match t {
        rumqttc::Transport::Tcp => "tcp",
        rumqttc::Transport::Tls(_) => "tls",
        _ => "other",
    }
}

fn fmt_options(
    f: &mut std::fmt::Formatter<'_>,
    (host, port): (String, u16),
    client_id: &str,
    username: Option<&str>,
    transport: &rumqttc::Transport,
    keep_alive: Duration,
) -> std::fmt::Result {
    f.debug_struct("ClientOptions")
        .field("broker", &format!("{host}:{port}"))
        .field("client_id", &client_id)
        .field("username", &username)
        .field(
            "password",
            &username.map(|_| millwright_core::secret::REDACTED),
        )
        .field("transport", &transport_name(transport))
        .field("keep_alive", &keep_alive)
        .finish()
}

impl std::fmt::Debug for ClientOptions<rumqttc::MqttOptions> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.0;
        let user = o.credentials().map(|l| l.username);
        fmt_options(
            f,
            o.broker_address(),
            &o.client_id(),
            user.as_deref(),
            &o.transport(),
            o.keep_alive(),
        )
    }
}

impl std::fmt::Debug for ClientOptions<rumqttc::v5::MqttOptions> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.0;
        let user = o.credentials().map(|l| l.username);
        fmt_options(
            f,
            o.broker_address(),
            &o.client_id(),
            user.as_deref(),
            &o.transport(),
            o.keep_alive(),
        )
    }
}

/// What to fix for a connection error, from its text (rumqttc's errors name the protocol's
/// reason, e.g. ``return code: `NotAuthorized` ``, but not the config field to look at);
/// `None` when there is nothing more to say than the error itself.
pub fn connect_error_hint(error: &str) -> Option<&'static str> {
    const HINTS: [(&[&str], &str); 6] = [
        (
            &["BadUserNamePassword", "NotAuthorized", "BadUserNameOrPassword"],
            "the broker refused the login: check mqtt.username and mqtt.password (or password_file)",
        ),
        (
            &["UnknownIssuer", "BadSignature"],
            "the broker's certificate is not signed by a CA in mqtt.tls.ca_file",
        ),
        (
            &["NotValidForName", "certificate not valid for name"],
            "the broker's certificate does not name mqtt.host",
        ),
        (
            &["Expired", "NotValidYet"],
            "the broker's certificate is expired or not yet valid (check the clock too)",
        ),
        (
            &["CertificateRequired", "HandshakeFailure", "BadCertificate", "UnknownCA"],
            "the broker wants a client certificate it accepts: check mqtt.tls.client_cert_file and client_key_file",
        ),
        (
            &["InvalidDnsName", "invalid dns name"],
            "mqtt.host is not a valid name for TLS",
        ),
    ];
    HINTS
        .iter()
        .find(|(keys, _)| keys.iter().any(|k| error.contains(k)))
        .map(|(_, hint)| *hint)
}

/// The node's egress check of the broker, asked right before every (re)connect
/// (`millwright_core::egress`): `Err` names the host and the refused address (or the failed
/// lookup); `Ok` holds the addresses the check allowed (none without an installed check).
/// Blocking (it may resolve the name): call it in `spawn_blocking`. Give the client
/// [`connect_host`] of them, so that it connects to what was checked.
pub fn check_egress(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    millwright_core::egress::resolve_checked("mqtt.host", host, port).map(Option::unwrap_or_default)
}

/// [`check_egress`] off the async runtime.
pub async fn check_egress_async(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let h = host.to_string();
    match tokio::task::spawn_blocking(move || check_egress(&h, port)).await {
        Ok(r) => r,
        Err(e) => Err(format!("mqtt.host {host}: egress check failed: {e}")),
    }
}

/// The broker host to give rumqttc after the egress check: over plain TCP a checked address
/// (rumqttc would otherwise resolve the name again, and a DNS answer changed in between would
/// not be checked) — the first one, the next one on the next attempt (`attempt`: connection
/// attempts since the last success; a name like `localhost` may give `::1` first to a broker
/// listening on 127.0.0.1 only) — over TLS the configured name (the server's certificate is
/// verified against it; a certificate for an off-site name is what an attacker would need).
pub fn connect_host(name: &str, checked: &[SocketAddr], attempt: usize, tls: bool) -> String {
    let pick = checked.get(attempt.checked_rem(checked.len()).unwrap_or(0));
    match pick {
        Some(a) if !tls => match a.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            // rumqttc joins host and port as `host:port`.
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        },
        _ => name.to_string(),
    }
}

/// `o` with the broker host `host` (MQTT 3.1.1; rumqttc has no setter for it): every setting
/// the node uses is carried over (the outgoing packet limit is taken equal to the incoming
/// one, as [`ConnectOptions::v4_options`] sets them).
pub fn v4_with_host(o: &rumqttc::MqttOptions, host: &str) -> rumqttc::MqttOptions {
    let (_, port) = o.broker_address();
    let mut n = rumqttc::MqttOptions::new(o.client_id(), host, port);
    n.set_transport(o.transport())
        .set_keep_alive(o.keep_alive())
        .set_clean_session(o.clean_session())
        .set_max_packet_size(o.max_packet_size(), o.max_packet_size())
        .set_request_channel_capacity(o.request_channel_capacity())
        .set_pending_throttle(o.pending_throttle())
        .set_inflight(o.inflight())
        .set_manual_acks(o.manual_acks());
    if let Some(l) = o.credentials() {
        n.set_credentials(l.username, l.password);
    }
    if let Some(w) = o.last_will() {
        n.set_last_will(w);
    }
    n
}

/// Installs the process-wide TLS crypto provider (ring) once; TLS connections need it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reconnect delays: `reconnect_min_ms`, doubling per failed attempt up to `reconnect_max_ms`;
/// [`reset`](Self::reset) after a successful connection.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    /// The delays of `opts` (a zero minimum counts as 1 ms; the maximum is at least the minimum).
    pub fn new(opts: &ConnectOptions) -> Self {
        let min = Duration::from_millis(opts.reconnect_min_ms.max(1));
        Self {
            min,
            max: Duration::from_millis(opts.reconnect_max_ms.max(opts.reconnect_min_ms.max(1))),
            cur: min,
        }
    }
    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.cur = self.min;
    }
    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.cur;
        self.cur = (self.cur * 2).min(self.max);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ConnectOptions {
        ConnectOptions {
            host: "broker.local".into(),
            port: 1883,
            client_id: "node-1".into(),
            username: None,
            password: None,
            tls: None,
            keep_alive_s: 30,
            protocol: MqttProtocol::V311,
            max_packet_bytes: 1 << 20,
            reconnect_min_ms: 250,
            reconnect_max_ms: 30_000,
        }
    }

    #[test]
    fn the_client_gets_the_checked_address_over_plain_tcp_and_the_name_over_tls() {
        let v4: SocketAddr = "10.1.2.3:1883".parse().unwrap_or_else(|_| unreachable!());
        let v6: SocketAddr = "[fd00::7]:1883".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            connect_host("broker.local", &[v4, v6], 0, false),
            "10.1.2.3"
        );
        assert_eq!(
            connect_host("broker.local", &[v4, v6], 1, false),
            "[fd00::7]"
        );
        assert_eq!(
            connect_host("broker.local", &[v4, v6], 2, false),
            "10.1.2.3"
        );
        assert_eq!(connect_host("broker.local", &[v4], 0, true), "broker.local");
        assert_eq!(connect_host("broker.local", &[], 3, false), "broker.local");
    }

    #[test]
    fn a_new_host_keeps_every_other_setting() {
        let mut c = opts();
        c.username = Some("u".into());
        c.password = Some(Secret::new("p"));
        let mut o = c
            .v4_options()
            .map(|o| o.into_inner())
            .unwrap_or_else(|_| unreachable!());
        o.set_clean_session(false)
            .set_inflight(77)
            .set_manual_acks(true)
            .set_request_channel_capacity(33)
            .set_pending_throttle(Duration::from_millis(3))
            .set_last_will(rumqttc::LastWill::new(
                "t/status",
                "offline",
                rumqttc::QoS::AtLeastOnce,
                true,
            ));
        let n = v4_with_host(&o, "10.1.2.3");
        assert_eq!(n.broker_address(), ("10.1.2.3".to_string(), 1883));
        // rumqttc's Debug lists every setting but the transport (plain TCP on both).
        let same = format!("{o:?}").replace("broker.local", "10.1.2.3");
        assert_eq!(format!("{n:?}"), same);
        assert!(matches!(n.transport(), rumqttc::Transport::Tcp));
    }

    fn paths(o: &ConnectOptions) -> Vec<String> {
        o.validate("mqtt").into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn valid_options_have_no_problems() {
        assert!(opts().validate("mqtt").is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let o = ConnectOptions {
            host: "mqtt://broker".into(),
            port: 0,
            client_id: String::new(),
            password: Some(Secret::new("pw")),
            keep_alive_s: 2,
            reconnect_min_ms: 0,
            max_packet_bytes: 10,
            tls: Some(TlsConfig {
                ca_file: "ca.pem".into(),
                client_cert_file: Some("c.pem".into()),
                client_key_file: None,
            }),
            ..opts()
        };
        assert_eq!(
            paths(&o),
            [
                "mqtt.host",
                "mqtt.port",
                "mqtt.client_id",
                "mqtt.keep_alive_s",
                "mqtt.password",
                "mqtt.reconnect_min_ms",
                "mqtt.max_packet_bytes",
                "mqtt.tls",
            ]
        );
        for host in ["", "  ", "a/b", "a b"] {
            let o = ConnectOptions {
                host: host.into(),
                ..opts()
            };
            assert_eq!(paths(&o), ["mqtt.host"], "{host:?}");
        }
    }

    #[test]
    fn builders_carry_address_login_and_limits() {
        let o = ConnectOptions {
            username: Some("edge".into()),
            password: Some(Secret::new("hunter2")),
            ..opts()
        }
        .with_client_id("node-1-out");
        let v4 = o.v4_options().unwrap();
        assert_eq!(v4.broker_address(), ("broker.local".to_string(), 1883));
        assert_eq!(v4.client_id(), "node-1-out");
        assert_eq!(v4.keep_alive(), Duration::from_secs(30));
        assert_eq!(v4.max_packet_size(), 1 << 20);
        let login = v4.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("edge", "hunter2")
        );
        let v5 = o.v5_options().unwrap();
        assert_eq!(v5.broker_address(), ("broker.local".to_string(), 1883));
        assert_eq!(v5.client_id(), "node-1-out");
        assert_eq!(v5.keep_alive(), Duration::from_secs(30));
        assert_eq!(v5.max_packet_size(), Some(1 << 20));
        assert!(v5.credentials().is_some());
        assert!(opts().v4_options().unwrap().credentials().is_none());
    }

    #[test]
    fn debug_of_built_options_shows_no_password_or_key() {
        let dir = std::env::temp_dir().join(format!("millwright-mqtt-dbg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in [
            ("ca.pem", "CA-PEM-TEXT"),
            ("c.pem", "CLIENT-CERT"),
            ("k.pem", "PRIVATE-KEY-BYTES"),
        ] {
            std::fs::write(dir.join(name), body).unwrap();
        }
        let o = ConnectOptions {
            username: Some("edge".into()),
            password: Some(Secret::new("hunter2")),
            tls: Some(TlsConfig {
                ca_file: dir.join("ca.pem"),
                client_cert_file: Some(dir.join("c.pem")),
                client_key_file: Some(dir.join("k.pem")),
            }),
            ..opts()
        };
        // rumqttc's own Debug prints the password: that is why the options are wrapped.
        assert!(format!("{:?}", *o.v4_options().unwrap()).contains("hunter2"));
        let v4 = format!("{:?}", o.v4_options().unwrap());
        let v5 = format!("{:?}", o.v5_options().unwrap());
        let conn = format!("{o:?}");
        for text in [&v4, &v5, &conn] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("PRIVATE-KEY"), "{text}");
            assert!(!text.contains(&format!("{:?}", b"PRIVATE")[1..8]), "{text}");
        }
        for text in [&v4, &v5] {
            assert!(
                text.contains("broker.local:1883") && text.contains("edge"),
                "{text}"
            );
            assert!(
                text.contains("tls") && text.contains("**redacted**"),
                "{text}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_files_are_read_when_building() {
        let dir = std::env::temp_dir().join(format!("millwright-mqtt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, b"-----BEGIN CERTIFICATE-----\n").unwrap();
        let mut o = opts();
        o.tls = Some(TlsConfig {
            ca_file: ca,
            client_cert_file: None,
            client_key_file: None,
        });
        assert!(matches!(
            o.v4_options().unwrap().transport(),
            rumqttc::Transport::Tls(_)
        ));
        assert!(matches!(
            o.v5_options().unwrap().transport(),
            rumqttc::Transport::Tls(_)
        ));
        o.tls = Some(TlsConfig {
            ca_file: dir.join("missing.pem"),
            client_cert_file: None,
            client_key_file: None,
        });
        let e = o.v4_options().unwrap_err().to_string();
        assert!(
            e.starts_with("mqtt.tls: cannot read") && e.contains("missing.pem"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn connect_errors_get_a_hint_naming_the_setting() {
        let hint = |e: &str| connect_error_hint(e).unwrap_or("");
        assert!(hint("Connection refused, return code: `NotAuthorized`").contains("mqtt.password"));
        assert!(hint("TLS: I/O: invalid peer certificate: UnknownIssuer").contains("ca_file"));
        assert!(hint("IO: received fatal alert: CertificateRequired").contains("client_cert_file"));
        assert_eq!(
            connect_error_hint("I/O: Connection refused (os error 111)"),
            None
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(&ConnectOptions {
            reconnect_min_ms: 100,
            reconnect_max_ms: 350,
            ..opts()
        });
        let ms: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn config_spellings() {
        #[derive(Deserialize)]
        struct S {
            protocol: MqttProtocol,
        }
        for (text, want) in [
            ("\"3.1.1\"", MqttProtocol::V311),
            ("\"v311\"", MqttProtocol::V311),
            ("\"5\"", MqttProtocol::V5),
            ("\"v5\"", MqttProtocol::V5),
        ] {
            let s: S = toml::from_str(&format!("protocol = {text}")).unwrap();
            assert_eq!(s.protocol, want, "{text}");
        }
        assert!(toml::from_str::<TlsConfig>("ca_file = \"a\"\ncafile = \"b\"").is_err());
    }
}
