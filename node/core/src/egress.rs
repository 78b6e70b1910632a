//! The no-egress policy's address classes and the connect hook every client of the node asks
//! before it opens a socket.
//!
//! [`classify`] sorts an address into loopback, private, link-local, shared (CGNAT) or public.
//! [`ConnectCheck`] is what a client calls right before each connect (MQTT reconnects, Modbus
//! TCP reconnects, every new InfluxDB HTTP connection): it resolves the host and returns the
//! addresses the client may use, or why not. The running node installs one process-wide
//! ([`install`]; `millwright-app`'s `egress::EgressGuard`, which also counts refusals for
//! `/health` and `/metrics`). Nothing here resolves names or touches the network: without an
//! installed check [`resolve_checked`] answers `Ok(None)` and the client resolves on its own.

use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

/// The kind of network an address is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrClass {
    /// 127.0.0.0/8, ::1 (and the unspecified address, which Linux connects to locally).
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) or IPv6 unique local (fc00::/7).
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// Shared address space (CGNAT), 100.64.0.0/10.
    Shared,
    /// Anything else (multicast and broadcast included): off site.
    Public,
}

/// The class of `ip` (IPv4-mapped IPv6 addresses as their IPv4 address).
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(a),
        },
    }
}

fn classify_v4(a: Ipv4Addr) -> AddrClass {
    let o = a.octets();
    if a.is_loopback() || a.is_unspecified() {
        AddrClass::Loopback
    } else if a.is_private() {
        AddrClass::Private
    } else if a.is_link_local() {
        AddrClass::LinkLocal
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        AddrClass::Shared
    } else {
        AddrClass::Public
    }
}

fn classify_v6(a: Ipv6Addr) -> AddrClass {
    let s = a.segments();
    if a.is_loopback() || a.is_unspecified() {
        AddrClass::Loopback
    } else if (s[0] & 0xfe00) == 0xfc00 {
        AddrClass::Private
    } else if (s[0] & 0xffc0) == 0xfe80 {
        AddrClass::LinkLocal
    } else {
        AddrClass::Public
    }
}

/// The first address of `addrs` outside the site's ranges, if any.
pub fn first_public(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs
        .iter()
        .copied()
        .find(|a| classify(a.ip()) == AddrClass::Public)
}

/// Asked by a client right before it connects.
pub trait ConnectCheck: Send + Sync {
    /// Resolves `host:port` (named by the config field `field`, e.g. `mqtt.host`) and returns
    /// the addresses the client may connect to; `Err` names the host and why (the refused
    /// address, or the failed lookup). Blocking (it may ask the system resolver).
    fn resolve_checked(
        &self,
        field: &str,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, String>;
}

static GATE: RwLock<Option<Arc<dyn ConnectCheck>>> = RwLock::new(None);

/// Installs the process-wide connect check (the node does at start; a later call replaces it).
pub fn install(check: Arc<dyn ConnectCheck>) {
    if let Ok(mut g) = GATE.write() {
        *g = Some(check);
    }
}

/// The installed connect check, if any.
pub fn installed() -> Option<Arc<dyn ConnectCheck>> {
    GATE.read().ok().and_then(|g| g.clone())
}

/// Asks the installed check about `host:port` (blocking: call it off the async runtime or
/// in `spawn_blocking`). `Ok(None)`: no check installed, the client resolves on its own.
pub fn resolve_checked(
    field: &str,
    host: &str,
    port: u16,
) -> Result<Option<Vec<SocketAddr>>, String> {
    match installed() {
        Some(c) => c.resolve_checked(field, host, port).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_classes() {
        for (a, c) in [
            ("127.0.0.1", AddrClass::Loopback),
            ("127.8.9.10", AddrClass::Loopback),
            ("0.0.0.0", AddrClass::Loopback),
            ("::", AddrClass::Loopback),
            ("::1", AddrClass::Loopback),
            ("::ffff:127.0.0.1", AddrClass::Loopback),
            ("10.1.2.3", AddrClass::Private),
            ("172.16.0.1", AddrClass::Private),
            ("172.31.255.255", AddrClass::Private),
            ("192.168.7.7", AddrClass::Private),
            ("fd12:3456::1", AddrClass::Private),
            ("fc00::1", AddrClass::Private),
            ("169.254.1.1", AddrClass::LinkLocal),
            ("fe80::1", AddrClass::LinkLocal),
            ("febf::1", AddrClass::LinkLocal),
            ("100.64.0.1", AddrClass::Shared),
            ("100.127.255.254", AddrClass::Shared),
            ("::ffff:192.168.1.1", AddrClass::Private),
            ("::ffff:169.254.0.1", AddrClass::LinkLocal),
            ("::ffff:100.64.0.1", AddrClass::Shared),
            // Off site: public unicast, multicast, broadcast, documentation ranges.
            ("8.8.8.8", AddrClass::Public),
            ("172.32.0.1", AddrClass::Public),
            ("172.15.255.255", AddrClass::Public),
            ("100.128.0.1", AddrClass::Public),
            ("100.63.255.255", AddrClass::Public),
            ("192.169.0.1", AddrClass::Public),
            ("11.0.0.1", AddrClass::Public),
            ("224.0.0.1", AddrClass::Public),
            ("239.255.255.250", AddrClass::Public),
            ("255.255.255.255", AddrClass::Public),
            ("2001:4860:4860::8888", AddrClass::Public),
            ("ff02::1", AddrClass::Public),
            ("fec0::1", AddrClass::Public),
            ("::ffff:8.8.8.8", AddrClass::Public),
            ("::ffff:224.0.0.1", AddrClass::Public),
        ] {
            assert_eq!(classify(ip(a)), c, "{a}");
        }
    }

    #[test]
    fn first_public_finds_the_off_site_address_among_on_site_ones() {
        let a = |s: &str| SocketAddr::new(ip(s), 1883);
        assert_eq!(first_public(&[a("10.0.0.1"), a("::1")]), None);
        assert_eq!(
            first_public(&[a("10.0.0.1"), a("::ffff:8.8.4.4"), a("8.8.8.8")]),
            Some(a("::ffff:8.8.4.4"))
        );
    }
}
