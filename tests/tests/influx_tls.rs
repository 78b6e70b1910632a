//! InfluxDB writes over TLS with a site's own CA: the test makes a CA and a server certificate
//! for `localhost` (rcgen), starts its OWN VictoriaMetrics with `-tls` on a free port
//! (`victoria-metrics` must be installed; the test fails without it), and checks that
//! - the node (`millwright run`, readings from the real Mosquitto) writes readings over https
//!   with `[influxdb] ca_file`, values compared in the database;
//! - the writer with a different CA refuses the server: counted as a TLS error, reported
//!   (`last_error`, `config_error`), the data kept in the backlog;
//! - `check-config` warns when a token would go over plain http to a non-loopback host.
//!
//! Reading the database back goes through `curl --cacert` (HTTPS only on that port).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{Reading, SensorId, Unit};
use millwright_e2e::*;
use millwright_sinks::influx::ErrorKind;
use millwright_sinks::{InfluxConfig, InfluxWriter};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A CA (certificate PEM, and the means to sign).
struct Ca {
    pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        cert,
        key,
    }
}

/// A server certificate for `localhost` and 127.0.0.1 signed by `ca`: (cert PEM, key PEM).
fn server_cert(ca: &Ca) -> (String, String) {
    let mut p =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// VictoriaMetrics with `-tls` on a free loopback port, killed (and its data removed) on drop.
struct TlsVictoria {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl TlsVictoria {
    fn start(dir: &Path, cert: &Path, key: &Path) -> Self {
        let bin = [
            "/usr/bin/victoria-metrics",
            "/usr/local/bin/victoria-metrics",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join("victoria-metrics"))
                    .find(|p| p.exists())
            })
        })
        .expect("victoria-metrics is not installed (not on PATH): run `make deps`");
        let port = free_port();
        let data = dir.join("vm-data");
        let child = Command::new(bin)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", data.display()))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .arg("-tls")
            .arg(format!("-tlsCertFile={}", cert.display()))
            .arg(format!("-tlsKeyFile={}", key.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting victoria-metrics");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "victoria-metrics -tls did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port,
            child,
            dir: data,
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// `(timestamp ms, value)` of every point matching `selector`, read over https with the CA.
    fn export(&self, ca_file: &Path, selector: &str) -> Vec<(i64, f64)> {
        let curl = |path: &str| {
            let out = Command::new("curl")
                .args(["-sS", "--fail", "--cacert"])
                .arg(ca_file)
                .arg("-G")
                .arg(format!("{}{path}", self.url()))
                .args(["--data-urlencode", &format!("match[]={selector}")])
                .args(["--data-urlencode", "start=0"])
                .output()
                .expect("curl is needed to read the TLS-only database back (apt-get install curl)");
            assert!(
                out.status.success(),
                "curl {path}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let _ = curl("/internal/force_flush");
        let mut points = Vec::new();
        for l in curl("/api/v1/export")
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let s: VmSeries = serde_json::from_str(l).unwrap();
            points.extend(s.timestamps_ms.into_iter().zip(s.values));
        }
        points.sort_by_key(|p| p.0);
        points
    }
}

impl Drop for TlsVictoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes the site CA, a server certificate signed by it and an unrelated CA into `dir`;
/// returns (site CA file, other CA file, server cert file, server key file).
fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let site = ca("millwright test site CA");
    let other = ca("some other CA");
    let (cert, key) = server_cert(&site);
    let files = [
        ("site-ca.pem", site.pem.as_str()),
        ("other-ca.pem", other.pem.as_str()),
        ("server.pem", cert.as_str()),
        ("server-key.pem", key.as_str()),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    (
        dir.join("site-ca.pem"),
        dir.join("other-ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_writes_over_https_with_the_site_ca_and_a_wrong_ca_fails_loudly() {
    const N: usize = 200;
    let dir = temp_dir("mw-influx-tls-");
    let (site_ca, other_ca, cert, key) = pki(&dir);
    let vm = TlsVictoria::start(&dir, &cert, &key);

    // 1. The writer with a CA that did not sign the server's certificate: refused, counted,
    //    reported, and the data kept.
    let mut bad = InfluxConfig::new(&vm.url(), "e2e", "e2e", "");
    bad.ca_file = Some(other_ca.clone());
    bad.flush_interval_ms = 20;
    bad.retry_min_ms = 50;
    bad.retry_max_ms = 200;
    let (w, task) = InfluxWriter::spawn(bad, "e2e".into()).unwrap();
    let run = unique("tlsbad");
    let readings: Vec<Reading> = (0..10)
        .map(|i| {
            Reading::new(
                SensorId::new(format!("{run}-A"), "temp_c"),
                1_700_000_000_000_000_000 + i * 1_000_000_000,
                i as f64,
                Unit::new("degC"),
            )
        })
        .collect();
    w.write(readings).await.unwrap();
    let st = w.status.clone();
    let t0 = Instant::now();
    while st.errors.requests(ErrorKind::Tls) < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no TLS failure counted; last error: {:?}",
            st.last_error.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        st.errors.config_error.load(Ordering::Relaxed),
        "reported as a config error"
    );
    let last = st.last_error.lock().unwrap().clone().unwrap();
    assert!(last.to_lowercase().contains("certificate"), "{last}");
    assert_eq!(st.written_points.load(Ordering::Relaxed), 0);
    assert_eq!(
        st.backlog_points.load(Ordering::Relaxed),
        10,
        "the data is kept"
    );
    assert_eq!(st.dropped_points.load(Ordering::Relaxed), 0);
    w.close(Duration::from_millis(50)).await.unwrap();
    task.await.unwrap();
    assert!(
        vm.export(&site_ca, &format!(r#"{{asset="{run}-A"}}"#))
            .is_empty(),
        "nothing got through with the wrong CA"
    );

    // 2. The node, readings from the real Mosquitto, InfluxDB over https with the site CA.
    let broker = mqtt_broker();
    let run = unique("tls");
    let asset = format!("{run}-P");
    let mport = free_port();
    let cfg = dir.join("millwright.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[site]
name = "e2e"
[mqtt]
host = "{host}"
port = {port}
client_id = "{cid}"
[[mqtt.subscriptions]]
topic = "{run}/{{asset}}/{{signal}}"
format = "json"
unit = "bar"
[influxdb]
url = "{url}"
org = "e2e"
bucket = "e2e"
token = "tls-test-token"
ca_file = "{ca}"
flush_interval_ms = 100
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 0
metrics_interval_s = 0
"#,
            host = broker.host,
            port = broker.port,
            cid = unique("node-"),
            url = vm.url(),
            ca = site_ca.display(),
        ),
    )
    .unwrap();
    let log = dir.join("node.log");
    let _node = run_checked_node(&cfg, &log);
    let base = format!("http://127.0.0.1:{mport}");
    let b = base.clone();
    tokio::task::spawn_blocking(move || wait_subscribed(&b, Duration::from_secs(30)))
        .await
        .unwrap();
    let mut o = MqttOptions::new(unique("pub-"), broker.host.clone(), broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 1000);
    let pump = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) => return,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let t0_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 600_000;
    let value = |i: usize| (i as f64) * 0.5 - 3.0;
    for i in 0..N {
        c.publish(
            format!("{run}/{asset}/pressure_bar"),
            QoS::AtLeastOnce,
            false,
            format!(r#"{{"value":{:?},"ts_ms":{}}}"#, value(i), t0_ms + i as i64),
        )
        .await
        .unwrap();
    }
    let selector = format!(r#"{{asset="{asset}"}}"#);
    let t0 = Instant::now();
    let points = loop {
        let p = vm.export(&site_ca, &selector);
        if p.len() >= N || t0.elapsed() > Duration::from_secs(30) {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    pump.abort();
    let want: Vec<(i64, f64)> = (0..N).map(|i| (t0_ms + i as i64, value(i))).collect();
    assert_eq!(
        points,
        want,
        "every reading over https, values compared; node log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_warns_when_a_token_goes_over_plain_http_to_another_host() {
    let dir = temp_dir("mw-influx-warn-");
    let write = |name: &str, url: &str| {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!(
                "[site]\nname = \"e2e\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = 1883\n[[mqtt.subscriptions]]\ntopic = \"x/{{asset}}/{{signal}}\"\nformat = \"json\"\n[influxdb]\nurl = \"{url}\"\norg = \"o\"\nbucket = \"b\"\ntoken = \"never-printed-token\"\n"
            ),
        )
        .unwrap();
        let out = Command::new(millwright_bin())
            .arg("check-config")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("never-printed-token"), "{text}");
        text
    };
    let remote = write("remote.toml", "http://10.20.30.40:8086");
    assert!(
        remote.contains("warning")
            && remote.contains("plain http")
            && remote.contains("10.20.30.40"),
        "{remote}"
    );
    let local = write("local.toml", "http://127.0.0.1:8086");
    assert!(!local.contains("plain http"), "{local}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate for a client (`clientAuth`) signed by `ca`: (cert PEM, key PEM).
fn client_cert(ca: &Ca, name: &str) -> (String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// socat as a TLS terminator that requires a client certificate signed by `client_ca`
/// (`verify=1`), in front of the plain-http test VictoriaMetrics — the way a site puts mutual
/// TLS in front of InfluxDB 2, which itself does not ask for client certificates.
struct MutualTlsProxy {
    port: u16,
    child: Child,
}

impl MutualTlsProxy {
    fn start(server_pem: &Path, client_ca: &Path, upstream: &str) -> Self {
        let port = free_port();
        let up = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},cafile={},verify=1",
                server_pem.display(),
                client_ca.display()
            ))
            .arg(format!("TCP:{up}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is needed for the mutual-TLS test (make deps installs it)");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "socat did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }
}

impl Drop for MutualTlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_presents_its_client_certificate_where_the_server_requires_one() {
    let vm_url = victoria();
    let dir = temp_dir("mw-influx-mtls-");
    let (site_ca, _other_ca, cert, key) = pki(&dir);
    // socat's `cert=` takes the certificate and its key in one PEM file.
    let server_pem = dir.join("server-with-key.pem");
    std::fs::write(
        &server_pem,
        format!(
            "{}{}",
            std::fs::read_to_string(&cert).unwrap(),
            std::fs::read_to_string(&key).unwrap()
        ),
    )
    .unwrap();
    // Client certificates of the site's client CA, and one of a CA the server does not trust.
    let client_ca = ca("millwright test client CA");
    let stranger_ca = ca("a CA the database does not trust");
    std::fs::write(dir.join("client-ca.pem"), &client_ca.pem).unwrap();
    let (ccert, ckey) = client_cert(&client_ca, "plant-1-node");
    let (scert, skey) = client_cert(&stranger_ca, "plant-1-node");
    for (name, text) in [
        ("client.pem", &ccert),
        ("client-key.pem", &ckey),
        ("stranger.pem", &scert),
        ("stranger-key.pem", &skey),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let proxy = MutualTlsProxy::start(&server_pem, &dir.join("client-ca.pem"), &vm_url);
    let url = format!("https://localhost:{}", proxy.port);

    let batch = |run: &str| -> Vec<Reading> {
        (0..20)
            .map(|i| {
                Reading::new(
                    SensorId::new(format!("{run}-A"), "temp_c"),
                    1_700_000_000_000_000_000 + i * 1_000_000_000,
                    i as f64 * 1.5,
                    Unit::new("degC"),
                )
            })
            .collect()
    };
    let writer = |cert: Option<(&str, &str)>| {
        let mut c = InfluxConfig::new(&url, "e2e", "e2e", "");
        c.ca_file = Some(site_ca.clone());
        if let Some((crt, k)) = cert {
            c.client_cert_file = Some(dir.join(crt));
            c.client_key_file = Some(dir.join(k));
        }
        c.flush_interval_ms = 20;
        c.retry_min_ms = 50;
        c.retry_max_ms = 200;
        InfluxWriter::spawn(c, "e2e".into()).unwrap()
    };

    // No client certificate, then one from a CA the server does not trust: the handshake
    // fails, counted as a TLS error and reported; the data waits in the backlog.
    for cert in [None, Some(("stranger.pem", "stranger-key.pem"))] {
        let (w, task) = writer(cert);
        let run = unique("mtlsbad");
        w.write(batch(&run)).await.unwrap();
        let st = w.status.clone();
        let t0 = Instant::now();
        // TLS 1.3: a client without an acceptable certificate learns of it from the server's
        // alert after its side of the handshake; either way it is a TLS failure.
        while st.errors.requests(ErrorKind::Tls) < 2 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{cert:?}: no failure counted; last error: {:?}",
                st.last_error.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(st.written_points.load(Ordering::Relaxed), 0, "{cert:?}");
        assert_eq!(
            st.backlog_points.load(Ordering::Relaxed),
            20,
            "{cert:?}: kept"
        );
        let last = st.last_error.lock().unwrap().clone().unwrap_or_default();
        let hint = match cert {
            None => "requires a client certificate",
            Some(_) => "refused the client certificate",
        };
        assert!(last.contains(hint), "{cert:?}: {last}");
        assert!(
            st.errors.config_error.load(Ordering::Relaxed),
            "{cert:?}: reported as a config error"
        );
        w.close(Duration::from_millis(50)).await.unwrap();
        task.await.unwrap();
        assert!(
            vm_export(&vm_url, &format!(r#"{{asset="{run}-A"}}"#)).is_empty(),
            "{cert:?}: nothing got through"
        );
    }

    // With the site's client certificate: written, values compared in the database.
    let (w, task) = writer(Some(("client.pem", "client-key.pem")));
    let run = unique("mtls");
    w.write(batch(&run)).await.unwrap();
    let series = vm_wait_for(
        &vm_url,
        &format!(r#"{{asset="{run}-A"}}"#),
        20,
        Duration::from_secs(20),
    );
    let mut got: Vec<(i64, f64)> = series
        .into_iter()
        .flat_map(|s| s.timestamps_ms.into_iter().zip(s.values))
        .collect();
    got.sort_by_key(|p| p.0);
    let want: Vec<(i64, f64)> = (0..20)
        .map(|i| (1_700_000_000_000 + i * 1000, i as f64 * 1.5))
        .collect();
    assert_eq!(got, want, "every point through mutual TLS");
    assert_eq!(w.status.errors.requests(ErrorKind::Tls), 0);
    w.close(Duration::from_secs(5)).await.unwrap();
    task.await.unwrap();
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}
