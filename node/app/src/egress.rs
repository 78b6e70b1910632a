//! No off-site egress: the node connects only to the endpoints its config names (MQTT broker,
//! InfluxDB, Modbus TCP devices), and unless `[node] allow_public_endpoints = true` each of
//! them must resolve to a loopback, private (RFC 1918, fc00::/7), link-local or shared
//! (CGNAT, 100.64.0.0/10) address.
//!
//! Checked by `check-config` ([`check_config`]), when the node starts its clients
//! ([`EgressGuard::check_all`], which resolves again: DNS may have changed; a refusal there
//! stops the start), before every connect and reconnect of every client (the guard is the
//! process-wide `millwright_core::egress::ConnectCheck`: the MQTT source, publisher and ask
//! service check the broker before each connect attempt; Modbus TCP connects only to the
//! addresses the check returned; the InfluxDB HTTP client resolves every new connection
//! through it), and every [`WATCH_EVERY`] while it runs ([`EgressGuard::watch`]). A refusal
//! after start is not fatal: the client opens no socket, reports the error (its connection
//! state, `/health`) and retries after its back-off. Every refusal is logged, counted
//! (`millwright_egress_refused_total`) and kept for `/health` and the status payload
//! ([`EgressPolicy`]). No packet goes out before the check: literal IP addresses need no
//! lookup, and names are resolved by the system resolver only. The node opens no other socket
//! (no telemetry, no update check, no NTP; the model is a local file); `tests/tests/egress.rs`
//! proves it in a network namespace.
//!
//! Left open: rumqttc and an IP-literal InfluxDB URL are given the host itself, so the MQTT
//! client resolves the broker's name again right after the check (TLS needs the name); a DNS
//! answer that changes within those milliseconds is caught at the next reconnect.

use crate::config::Config;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a running node resolves its host-name endpoints again.
pub const WATCH_EVERY: Duration = Duration::from_secs(60);

pub use millwright_core::egress::{classify, AddrClass};

/// An endpoint the config names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Config path of the field that names it (`mqtt.host`, `influxdb.url`,
    /// `modbus.devices[0].host`).
    pub field: String,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{} ([{}]:{})", self.field, self.host, self.port)
        } else {
            write!(f, "{} ({}:{})", self.field, self.host, self.port)
        }
    }
}

/// Every endpoint `cfg` names: the MQTT broker, the InfluxDB URL's host and the Modbus TCP
/// devices (serial devices have none).
pub fn endpoints(cfg: &Config) -> Vec<Endpoint> {
    let mut out = Vec::new();
    if let Some(m) = &cfg.mqtt {
        out.push(Endpoint {
            field: "mqtt.host".into(),
            host: m.host.clone(),
            port: m.port,
        });
    }
    if let Some(i) = &cfg.influxdb {
        if let Ok(u) = url::Url::parse(&i.url) {
            let host = match u.host() {
                Some(url::Host::Ipv6(a)) => Some(a.to_string()),
                Some(h) => Some(h.to_string()),
                None => None,
            };
            if let (Some(host), Some(port)) = (host, u.port_or_known_default()) {
                out.push(Endpoint {
                    field: "influxdb.url".into(),
                    host,
                    port,
                });
            }
        }
    }
    if let Some(m) = &cfg.modbus {
        for (n, d) in m.devices.iter().enumerate() {
            if let Some(host) = &d.host {
                out.push(Endpoint {
                    field: format!("modbus.devices[{n}].host"),
                    host: host.clone(),
                    port: d.port.unwrap_or(502),
                });
            }
        }
    }
    out
}

/// Resolves a host and port to addresses.
pub type Resolver = dyn Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>> + Send + Sync;

/// The system resolver (no lookup for a literal IP address).
pub fn system_resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok((host, port).to_socket_addrs()?.collect())
}

/// Why an endpoint was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every address is on site.
    Allowed(Vec<SocketAddr>),
    /// An address is off site.
    Refused(String),
    /// The name did not resolve now (the client will fail to connect on its own).
    Unresolved(String),
}

/// The verdict on `ep`: every address it resolves to must be on site (the client may use any
/// of them).
pub fn judge(ep: &Endpoint, resolve: &Resolver) -> Verdict {
    let addrs = match resolve(&ep.host, ep.port) {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return Verdict::Unresolved(format!("{ep}: resolves to no address")),
        Err(e) => return Verdict::Unresolved(format!("{ep}: cannot be resolved now: {e}")),
    };
    match addrs.iter().find(|a| classify(a.ip()) == AddrClass::Public) {
        Some(a) => Verdict::Refused(format!(
            "{ep} resolves to {}, a public address; the node connects only to loopback, private, \
             link-local and CGNAT addresses unless `[node] allow_public_endpoints = true`",
            a.ip()
        )),
        None => Verdict::Allowed(addrs),
    }
}

/// `check-config`'s egress check: (problems as (field, message), warnings). Empty when public
/// endpoints are allowed.
pub fn check_config(cfg: &Config, resolve: &Resolver) -> (Vec<(String, String)>, Vec<String>) {
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    if cfg.node.allow_public_endpoints {
        return (problems, warnings);
    }
    for ep in endpoints(cfg) {
        match judge(&ep, resolve) {
            Verdict::Allowed(_) => {}
            Verdict::Refused(why) => problems.push((ep.field.clone(), why)),
            Verdict::Unresolved(why) => {
                warnings.push(format!("{why} (checked again when the node connects)"))
            }
        }
    }
    (problems, warnings)
}

/// The egress policy as `/health` and the status payload report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EgressPolicy {
    /// `[node] allow_public_endpoints`.
    pub allow_public_endpoints: bool,
    /// The endpoints the node may connect to (`field (host:port)`).
    pub endpoints: Vec<String>,
    /// Endpoints refused since start (at start or by the watch).
    pub refused_total: u64,
    /// The last refusal, if any.
    pub last_refusal: Option<String>,
}

/// The running node's egress guard: its endpoints, the policy, and the refusals counted.
pub struct EgressGuard {
    allow_public: bool,
    endpoints: Vec<Endpoint>,
    refused: AtomicU64,
    last_refusal: Mutex<Option<String>>,
    resolve: Arc<Resolver>,
}

impl EgressGuard {
    /// The guard of `cfg` with the system resolver.
    pub fn new(cfg: &Config) -> Self {
        Self::with_resolver(cfg, Arc::new(system_resolve))
    }

    /// The guard of `cfg` with another resolver (tests).
    pub fn with_resolver(cfg: &Config, resolve: Arc<Resolver>) -> Self {
        Self {
            allow_public: cfg.node.allow_public_endpoints,
            endpoints: endpoints(cfg),
            refused: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
            resolve,
        }
    }

    /// Endpoints refused so far.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether public endpoints are allowed.
    pub fn allow_public(&self) -> bool {
        self.allow_public
    }

    /// The policy summary for `/health` and the status payload.
    pub fn summary(&self) -> EgressPolicy {
        EgressPolicy {
            allow_public_endpoints: self.allow_public,
            endpoints: self.endpoints.iter().map(ToString::to_string).collect(),
            refused_total: self.refused_total(),
            last_refusal: self.last_refusal.lock().ok().and_then(|g| g.clone()),
        }
    }

    fn refuse(&self, why: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.last_refusal.lock() {
            *g = Some(why.to_string());
        }
        tracing::error!(reason = %why, "egress refused");
    }

    /// Checks one endpoint now; a refusal is logged and counted.
    pub fn check(&self, ep: &Endpoint) -> Result<(), String> {
        if self.allow_public {
            return Ok(());
        }
        match judge(ep, &*self.resolve) {
            Verdict::Allowed(_) => Ok(()),
            Verdict::Refused(why) => {
                self.refuse(&why);
                Err(why)
            }
            Verdict::Unresolved(why) => {
                tracing::warn!(reason = %why, "endpoint not resolvable now; its client retries");
                Ok(())
            }
        }
    }

    /// Checks every endpoint before the clients start; the first refusal is the error (every
    /// one is logged and counted).
    pub fn check_all(&self) -> Result<(), String> {
        let mut first = None;
        for ep in &self.endpoints {
            if let Err(why) = self.check(ep) {
                first.get_or_insert(why);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Resolves the host-name endpoints again every `every` (literal addresses cannot change)
    /// until the task is aborted; each refusal is logged and counted (once per round).
    pub async fn watch(self: Arc<Self>, every: Duration) {
        if self.allow_public {
            return;
        }
        let names: Vec<Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.host.parse::<IpAddr>().is_err())
            .cloned()
            .collect();
        if names.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick.tick().await;
        loop {
            tick.tick().await;
            let me = self.clone();
            let eps = names.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for ep in &eps {
                    let _ = me.check(ep);
                }
            })
            .await;
        }
    }
}

impl millwright_core::egress::ConnectCheck for EgressGuard {
    /// Resolves and judges `host:port` now: the addresses on success; a refusal (counted and
    /// kept for `/health`) names the field, host and the public address; a failed lookup
    /// names the host.
    fn resolve_checked(
        &self,
        field: &str,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, String> {
        let ep = Endpoint {
            field: field.to_string(),
            host: host.to_string(),
            port,
        };
        if self.allow_public {
            return match (self.resolve)(host, port) {
                Ok(a) if !a.is_empty() => Ok(a),
                Ok(_) => Err(format!("{ep}: resolves to no address")),
                Err(e) => Err(format!("{ep}: cannot be resolved: {e}")),
            };
        }
        match judge(&ep, &*self.resolve) {
            Verdict::Allowed(a) => Ok(a),
            Verdict::Refused(why) => {
                self.refuse(&why);
                Err(why)
            }
            Verdict::Unresolved(why) => Err(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_classes() {
        for (a, c) in [
            ("127.0.0.1", AddrClass::Loopback),
            ("127.8.9.10", AddrClass::Loopback),
            ("::1", AddrClass::Loopback),
            ("10.1.2.3", AddrClass::Private),
            ("172.16.0.1", AddrClass::Private),
            ("172.31.255.255", AddrClass::Private),
            ("192.168.7.7", AddrClass::Private),
            ("fd12:3456::1", AddrClass::Private),
            ("fc00::1", AddrClass::Private),
            ("169.254.1.1", AddrClass::LinkLocal),
            ("fe80::1", AddrClass::LinkLocal),
            ("100.64.0.1", AddrClass::Shared),
            ("100.127.255.254", AddrClass::Shared),
            ("::ffff:192.168.1.1", AddrClass::Private),
            ("8.8.8.8", AddrClass::Public),
            ("172.32.0.1", AddrClass::Public),
            ("100.128.0.1", AddrClass::Public),
            ("192.169.0.1", AddrClass::Public),
            ("2001:4860:4860::8888", AddrClass::Public),
            ("::ffff:8.8.8.8", AddrClass::Public),
        ] {
            assert_eq!(classify(ip(a)), c, "{a}");
        }
    }

    const CFG: &str = r#"
[site]
name = "s"
[mqtt]
host = "broker.example"
port = 8883
[[mqtt.subscriptions]]
topic = "p/{asset}/{signal}"
[influxdb]
url = "https://[fd00::5]:8086"
org = "o"
bucket = "b"
[[modbus.devices]]
name = "P-1"
asset = "P-1"
host = "8.8.8.8"
[[modbus.devices.fields]]
signal = "t"
function = "input"
address = 0
type = "u16"
unit = "C"
"#;

    fn fake(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        match host {
            "broker.example" => Ok(vec![SocketAddr::new(ip("93.184.215.14"), port)]),
            "broker.site" => Ok(vec![SocketAddr::new(ip("10.0.0.5"), port)]),
            _ => system_resolve(host, port),
        }
    }

    #[test]
    fn endpoints_of_a_config() {
        let cfg = Config::parse(CFG).unwrap();
        let eps: Vec<String> = endpoints(&cfg).iter().map(ToString::to_string).collect();
        assert_eq!(
            eps,
            [
                "mqtt.host (broker.example:8883)",
                "influxdb.url ([fd00::5]:8086)",
                "modbus.devices[0].host (8.8.8.8:502)"
            ]
        );
    }

    #[test]
    fn public_endpoints_are_problems_naming_the_field() {
        let cfg = Config::parse(CFG).unwrap();
        let (problems, warnings) = check_config(&cfg, &fake);
        assert!(warnings.is_empty(), "{warnings:?}");
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["mqtt.host", "modbus.devices[0].host"]);
        assert!(problems[0].1.contains("93.184.215.14"), "{problems:?}");
        assert!(problems[1].1.contains("8.8.8.8"), "{problems:?}");

        let allowed = Config::parse(&CFG.replace(
            "[site]\n",
            "[node]\nallow_public_endpoints = true\n[site]\n",
        ))
        .unwrap();
        assert_eq!(check_config(&allowed, &fake), (vec![], vec![]));
    }

    #[test]
    fn the_guard_refuses_counts_and_reports() {
        let cfg = Config::parse(&CFG.replace("8.8.8.8", "192.168.1.20")).unwrap();
        let guard = EgressGuard::with_resolver(&cfg, Arc::new(fake));
        let e = guard.check_all().unwrap_err();
        assert!(e.starts_with("mqtt.host (broker.example:8883) resolves to 93.184.215.14"));
        assert_eq!(guard.refused_total(), 1);
        let s = guard.summary();
        assert!(!s.allow_public_endpoints);
        assert_eq!(s.endpoints.len(), 3);
        assert_eq!(s.last_refusal.as_deref(), Some(e.as_str()));

        // The same name resolving on site passes; an unresolvable one is left to the client.
        let ok = Config::parse(
            &CFG.replace("broker.example", "broker.site")
                .replace("8.8.8.8", "192.168.1.20"),
        )
        .unwrap();
        let guard = EgressGuard::with_resolver(&ok, Arc::new(fake));
        guard.check_all().unwrap();
        let unresolved = Endpoint {
            field: "mqtt.host".into(),
            host: "no-such-host.invalid".into(),
            port: 1883,
        };
        assert!(matches!(judge(&unresolved, &fake), Verdict::Unresolved(_)));
        assert_eq!(guard.refused_total(), 0);
    }

    #[test]
    fn every_connect_is_judged_by_the_guard() {
        use millwright_core::egress::ConnectCheck;
        let cfg = Config::parse(&CFG.replace("8.8.8.8", "192.168.1.20")).unwrap();
        let guard = EgressGuard::with_resolver(&cfg, Arc::new(fake));
        let ok = guard
            .resolve_checked("mqtt.host", "broker.site", 1883)
            .unwrap();
        assert_eq!(ok, [SocketAddr::new(ip("10.0.0.5"), 1883)]);
        for (host, addr) in [
            ("broker.example", "93.184.215.14"),
            ("8.8.8.8", "8.8.8.8"),
            ("224.0.0.251", "224.0.0.251"),
            ("::ffff:1.1.1.1", "::ffff:1.1.1.1"),
        ] {
            let e = guard.resolve_checked("mqtt.host", host, 1883).unwrap_err();
            assert!(
                e.contains(host) && e.contains(&format!("resolves to {addr}")),
                "{e}"
            );
        }
        assert_eq!(guard.refused_total(), 4);
        assert!(guard
            .summary()
            .last_refusal
            .unwrap()
            .contains("::ffff:1.1.1.1"));
        // A lookup that fails is an error naming the host, not a refusal.
        let e = guard
            .resolve_checked("modbus.devices[].host", "no-such-host.invalid", 502)
            .unwrap_err();
        assert!(e.contains("no-such-host.invalid"), "{e}");
        assert_eq!(guard.refused_total(), 4);
        // Allowed public endpoints are only resolved.
        let open = Config::parse(&CFG.replace(
            "[site]\n",
            "[node]\nallow_public_endpoints = true\n[site]\n",
        ))
        .unwrap();
        let guard = EgressGuard::with_resolver(&open, Arc::new(fake));
        assert!(guard.resolve_checked("mqtt.host", "8.8.8.8", 1883).is_ok());
    }
}
