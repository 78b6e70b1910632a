//! The `[influxdb]` section: endpoint, TLS files (custom CA, client certificate), batching,
//! compression, retry and backlog bounds, their validation, and the warnings a valid config can
//! still deserve (a token sent over plain `http` to another host).
//!
//! Plain data and checks only; nothing here reads the TLS files (`http.rs` does, when the
//! writer starts) and nothing here sends anything.

use millwright_core::{Secret, ValidationError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// InfluxDB 2 connection and batching (`[influxdb]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086` (https for TLS).
    pub url: String,
    /// Organisation name.
    pub org: String,
    /// Bucket to write into.
    pub bucket: String,
    /// API token (never logged). Empty for servers without auth.
    #[serde(default)]
    pub token: Secret,
    /// Points per write request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest time a point waits before its batch is written, in ms.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Compress request bodies with gzip.
    #[serde(default = "default_true")]
    pub gzip: bool,
    /// gzip level, 1 (fastest) to 9 (smallest). The default, 1, was chosen by measurement:
    /// line protocol of readings compresses about 8:1 at level 1, and higher levels cost the
    /// node several times the CPU for a few percent fewer bytes (see `http.rs`).
    #[serde(default = "default_gzip_level")]
    pub gzip_level: u32,
    /// PEM file with the CA certificate(s) that signed the database's certificate (`https`
    /// only). When set, only these CAs are trusted, not the built-in web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM file with the client certificate (chain) for mutual TLS (`https` only; with
    /// `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM file with the private key of `client_cert_file` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Timeout of one write request, in ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// First retry delay after a failed write, in ms (doubles up to `retry_max_ms`).
    #[serde(default = "default_retry_min_ms")]
    pub retry_min_ms: u64,
    /// Longest retry delay, in ms.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Most points held in memory while the database is unreachable.
    #[serde(default = "default_max_backlog_points")]
    pub max_backlog_points: usize,
    /// The durable disk outbox (`[influxdb.outbox]`); without it the backlog is memory only
    /// and MQTT messages are acknowledged on receipt.
    #[serde(default)]
    pub outbox: Option<super::outbox::OutboxConfig>,
}

fn default_batch_size() -> usize {
    5_000
}
fn default_flush_interval_ms() -> u64 {
    1_000
}
fn default_true() -> bool {
    true
}
fn default_gzip_level() -> u32 {
    1
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_retry_min_ms() -> u64 {
    500
}
fn default_retry_max_ms() -> u64 {
    30_000
}
fn default_max_backlog_points() -> usize {
    1_000_000
}

impl InfluxConfig {
    /// A config with defaults for everything but the endpoint.
    pub fn new(url: &str, org: &str, bucket: &str, token: &str) -> Self {
        Self {
            url: url.into(),
            org: org.into(),
            bucket: bucket.into(),
            token: Secret::new(token),
            batch_size: default_batch_size(),
            flush_interval_ms: default_flush_interval_ms(),
            gzip: true,
            gzip_level: default_gzip_level(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            timeout_ms: default_timeout_ms(),
            retry_min_ms: default_retry_min_ms(),
            retry_max_ms: default_retry_max_ms(),
            max_backlog_points: default_max_backlog_points(),
            outbox: None,
        }
    }

    /// Every problem in this section.
    pub fn validate(&self, prefix: &str) -> Vec<ValidationError> {
        let mut e = Vec::new();
        let p = |k: &str| format!("{prefix}.{k}");
        match url::Url::parse(&self.url) {
            Err(err) => e.push(ValidationError::new(
                p("url"),
                format!("`{}` is not a URL: {err}", self.url),
            )),
            Ok(u) => {
                if !matches!(u.scheme(), "http" | "https") {
                    e.push(ValidationError::new(
                        p("url"),
                        format!("scheme `{}` is not http or https", u.scheme()),
                    ));
                }
                if u.host_str().is_none_or(str::is_empty) {
                    e.push(ValidationError::new(p("url"), "has no host"));
                }
            }
        }
        let https = self.url.starts_with("https:");
        for (k, f) in [
            ("ca_file", &self.ca_file),
            ("client_cert_file", &self.client_cert_file),
            ("client_key_file", &self.client_key_file),
        ] {
            if let Some(f) = f {
                if !https {
                    e.push(ValidationError::new(
                        p(k),
                        "is for https only, but the url is not https",
                    ));
                }
                if f.as_os_str().is_empty() {
                    e.push(ValidationError::new(p(k), "is empty"));
                }
            }
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            e.push(ValidationError::new(
                p("client_cert_file"),
                "client_cert_file and client_key_file go together",
            ));
        }
        if !(1..=9).contains(&self.gzip_level) {
            e.push(ValidationError::new(p("gzip_level"), "must be 1–9"));
        }
        if self.org.trim().is_empty() {
            e.push(ValidationError::new(p("org"), "is empty"));
        }
        if self.bucket.trim().is_empty() {
            e.push(ValidationError::new(p("bucket"), "is empty"));
        }
        if !(1..=1_000_000).contains(&self.batch_size) {
            e.push(ValidationError::new(p("batch_size"), "must be 1–1000000"));
        }
        if self.flush_interval_ms == 0 {
            e.push(ValidationError::new(p("flush_interval_ms"), "must be > 0"));
        }
        if self.timeout_ms == 0 {
            e.push(ValidationError::new(p("timeout_ms"), "must be > 0"));
        }
        if self.retry_min_ms == 0 || self.retry_min_ms > self.retry_max_ms {
            e.push(ValidationError::new(
                p("retry_min_ms"),
                "must be > 0 and ≤ retry_max_ms",
            ));
        }
        if self.max_backlog_points < self.batch_size {
            e.push(ValidationError::new(
                p("max_backlog_points"),
                "must be ≥ batch_size",
            ));
        }
        if let Some(o) = &self.outbox {
            e.extend(o.validate(&p("outbox")));
        }
        e
    }

    /// What a valid config still deserves a warning for: a token sent over plain `http` to a
    /// host that is not loopback (anyone on the way can read it). Said once when the writer
    /// starts and by `check-config`.
    pub fn warnings(&self, prefix: &str) -> Vec<String> {
        let mut w = Vec::new();
        if self.token.expose().is_empty() {
            return w;
        }
        if let Ok(u) = url::Url::parse(&self.url) {
            if u.scheme() == "http" && !is_loopback(&u) {
                w.push(format!(
                    "{prefix}.url: the token goes over plain http to {}; anyone on the network path can read it (use https)",
                    u.host_str().unwrap_or("?")
                ));
            }
        }
        w
    }
}

/// True when the URL's host is a loopback address or `localhost`.
fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn keys(c: &InfluxConfig) -> Vec<String> {
        c.validate("influxdb")
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn tls_files_need_https_and_cert_and_key_go_together() {
        let mut c = InfluxConfig::new("https://db.site:8086", "o", "b", "t");
        c.ca_file = Some("ca.pem".into());
        assert!(keys(&c).is_empty(), "{:?}", keys(&c));
        c.client_cert_file = Some("c.pem".into());
        let e = keys(&c);
        assert!(
            e.len() == 1 && e[0].contains("influxdb.client_cert_file") && e[0].contains("together"),
            "{e:?}"
        );
        c.client_key_file = Some("k.pem".into());
        assert!(keys(&c).is_empty());
        c.url = "http://db.site:8086".into();
        let e = keys(&c);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e.iter().all(|m| m.contains("https only")), "{e:?}");
        c.url = "https://db.site".into();
        c.gzip_level = 0;
        assert!(keys(&c)[0].contains("influxdb.gzip_level"));
    }

    #[test]
    fn a_token_over_plain_http_to_another_host_is_warned_about() {
        let w =
            |url: &str, token: &str| InfluxConfig::new(url, "o", "b", token).warnings("influxdb");
        let remote = w("http://10.0.0.5:8086", "secret-token");
        assert_eq!(remote.len(), 1);
        assert!(
            remote[0].contains("influxdb.url") && remote[0].contains("10.0.0.5"),
            "{remote:?}"
        );
        assert!(
            !remote[0].contains("secret-token"),
            "never the token itself"
        );
        assert_eq!(w("http://db.plant.example:8086", "t").len(), 1);
        for quiet in [
            w("http://127.0.0.1:8086", "t"),
            w("http://127.8.0.1:8086", "t"),
            w("http://[::1]:8086", "t"),
            w("http://localhost:8086", "t"),
            w("https://10.0.0.5:8086", "t"),
            w("http://10.0.0.5:8086", ""),
        ] {
            assert!(quiet.is_empty(), "{quiet:?}");
        }
    }

    #[test]
    fn the_new_keys_parse_and_unknown_ones_do_not() {
        let c: InfluxConfig = serde_json::from_str(
            r#"{"url":"https://db:8086","org":"o","bucket":"b","ca_file":"/etc/ca.pem",
                "client_cert_file":"c.pem","client_key_file":"k.pem","gzip_level":6}"#,
        )
        .unwrap();
        assert_eq!(
            c.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(c.gzip_level, 6);
        assert!(serde_json::from_str::<InfluxConfig>(
            r#"{"url":"https://db:8086","org":"o","bucket":"b","cafile":"x"}"#
        )
        .is_err());
    }
}
