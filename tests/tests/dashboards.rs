//! The Grafana dashboards under `dashboards/`: generated from one description
//! (`dashboards/spec.rs` next to this file), valid for the Grafana schema version they
//! declare, every Flux query naming only what `millwright schema` describes, and every PromQL
//! query answering with data from the real VictoriaMetrics after a real ingest (simulated pump
//! over Modbus + MQTT readings with an anomaly, the real model explaining it).
//!
//! Regenerate after changing the description or the schema:
//! `MILLWRIGHT_BLESS=1 cargo test -p millwright-e2e --test dashboards` (or `make dashboards`).
//!
//! Over 600 lines: the four checks share the loading of the committed files and the
//! extraction of queries, so they stay in one test binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "dashboards/spec.rs"]
mod spec;

use millwright_e2e::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// This worktree's root (from this file's own crate, never a prebuilt library's path).
fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn dir() -> PathBuf {
    root().join("dashboards")
}

/// Every committed dashboard: (path under dashboards/, parsed JSON).
fn committed() -> Vec<(String, Value)> {
    spec::generate()
        .into_iter()
        .map(|(p, _)| {
            let text = std::fs::read_to_string(dir().join(&p))
                .unwrap_or_else(|e| panic!("dashboards/{p}: {e}"));
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("dashboards/{p} is not valid JSON: {e}"));
            (p, v)
        })
        .collect()
}

#[test]
fn committed_dashboards_equal_the_generated_ones() {
    let bless = std::env::var_os("MILLWRIGHT_BLESS").is_some();
    let mut drift = Vec::new();
    for (p, text) in spec::generate() {
        let path = dir().join(&p);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            drift.push(p);
        }
    }
    assert!(
        drift.is_empty(),
        "dashboards differ from their description: {drift:?}; regenerate with \
         `MILLWRIGHT_BLESS=1 cargo test -p millwright-e2e --test dashboards`"
    );
    // Nothing else hand-kept next to them.
    for f in [spec::Flavour::Flux, spec::Flavour::Prom] {
        let on_disk = std::fs::read_dir(dir().join(f.dir())).unwrap().count();
        assert_eq!(
            on_disk,
            4,
            "dashboards/{} holds exactly the four dashboards",
            f.dir()
        );
    }
}

fn str_of<'a>(v: &'a Value, key: &str, what: &str) -> &'a str {
    v[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("{what}: `{key}` must be a non-empty string"))
}

/// Data source uids the provisioning declares.
fn provisioned_datasources() -> BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(dir().join("provisioning/datasources/millwright.yaml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("datasources YAML");
    let mut out = BTreeMap::new();
    for ds in docs[0]["datasources"].as_vec().expect("datasources list") {
        out.insert(
            ds["uid"].as_str().unwrap().to_string(),
            ds["type"].as_str().unwrap().to_string(),
        );
    }
    out
}

#[test]
fn every_dashboard_has_the_shape_of_its_schema_version() {
    let ds = provisioned_datasources();
    let viz: BTreeSet<&str> = ["timeseries", "stat", "table", "bargauge", "gauge", "text"].into();
    let mut uids = BTreeSet::new();
    for (p, d) in committed() {
        // Grafana's dashboard JSON model, schemaVersion 39 (Grafana 10.4 / 11).
        assert_eq!(d["schemaVersion"], spec::SCHEMA_VERSION, "{p}");
        assert!(
            uids.insert(str_of(&d, "uid", &p).to_string()),
            "{p}: uid twice"
        );
        assert!(str_of(&d, "uid", &p).len() <= 40, "{p}: uid longer than 40");
        str_of(&d, "title", &p);
        assert!(
            d["time"]["from"].is_string() && d["time"]["to"].is_string(),
            "{p}: time"
        );
        assert!(d["templating"]["list"].is_array(), "{p}: templating.list");
        assert!(d["annotations"]["list"].is_array(), "{p}: annotations.list");
        let panels = d["panels"]
            .as_array()
            .unwrap_or_else(|| panic!("{p}: panels"));
        assert!(!panels.is_empty(), "{p}: no panels");
        let vars: BTreeSet<String> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let what = format!("{p}: variable");
                assert!(
                    ["query", "constant", "custom"].contains(&str_of(v, "type", &what)),
                    "{what}"
                );
                str_of(v, "query", &what);
                str_of(v, "name", &what).to_string()
            })
            .collect();
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for panel in panels {
            let what = format!("{p}: panel {}", panel["title"]);
            assert!(
                ids.insert(panel["id"].as_u64().expect("panel id")),
                "{what}: id"
            );
            assert!(viz.contains(str_of(panel, "type", &what)), "{what}: type");
            str_of(panel, "title", &what);
            let unit = &panel["fieldConfig"]["defaults"]["unit"];
            assert!(unit.as_str().is_some_and(|u| !u.is_empty()), "{what}: unit");
            let g = &panel["gridPos"];
            let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| g[k].as_u64().expect("gridPos"));
            assert!(w >= 1 && h >= 1 && x + w <= 24, "{what}: gridPos {g}");
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(cells.insert((cx, cy)), "{what}: overlaps another panel");
                }
            }
            let pds = &panel["datasource"];
            let uid = str_of(pds, "uid", &what);
            assert_eq!(
                ds.get(uid).map(String::as_str),
                pds["type"].as_str(),
                "{what}: data source {pds} is not provisioned"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{what}: no targets");
            let mut refs = BTreeSet::new();
            for t in targets {
                assert!(
                    refs.insert(str_of(t, "refId", &what).to_string()),
                    "{what}: refId"
                );
                let q = t["query"].as_str().or(t["expr"].as_str()).unwrap_or("");
                assert!(!q.is_empty(), "{what}: empty query");
                // Every dashboard variable a query uses is defined.
                for (i, _) in q.match_indices('$') {
                    let name: String = q[i + 1..]
                        .trim_start_matches('{')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    assert!(
                        name.starts_with("__") || vars.contains(&name),
                        "{what}: ${name} is not a variable of the dashboard"
                    );
                }
            }
        }
    }
}

/// What `millwright schema` says: measurement → (tags, fields); plus the node's signals.
struct Described {
    measurements: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    node_signals: BTreeSet<String>,
}

fn described() -> Described {
    let out = Command::new(millwright_bin())
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success(), "millwright schema failed");
    let v: Value = serde_json::from_slice(&out.stdout).expect("millwright schema prints JSON");
    let names = |a: &Value| -> BTreeSet<String> {
        a.as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    Described {
        measurements: v["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_string(),
                    (names(&m["tags"]), names(&m["fields"])),
                )
            })
            .collect(),
        node_signals: v["node_signals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
    }
}

/// Every quoted string following `prefix` in `q`.
fn quoted_after(q: &str, prefix: &str) -> Vec<String> {
    q.match_indices(prefix)
        .filter_map(|(i, _)| {
            let rest = &q[i + prefix.len()..];
            rest.split('"').next().map(str::to_string)
        })
        .collect()
}

/// Column names in every `columns: [...]` list.
fn columns(q: &str) -> Vec<String> {
    q.match_indices("columns: [")
        .flat_map(|(i, _)| {
            let rest = &q[i + "columns: [".len()..];
            let list = rest.split(']').next().unwrap_or("");
            list.split(',')
                .map(|c| c.trim().trim_matches('"').to_string())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `r.<name>` references (tags or pivoted fields), without `r._…` system columns.
fn record_refs(q: &str) -> Vec<String> {
    q.match_indices("r.")
        .filter(|(i, _)| {
            *i == 0 || !q.as_bytes()[i - 1].is_ascii_alphanumeric() && q.as_bytes()[i - 1] != b'_'
        })
        .map(|(i, _)| {
            q[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty() && !n.starts_with('_'))
        .collect()
}

fn flux_queries(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.extend(t["query"].as_str().map(str::to_string));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            out.push(v["query"].as_str().unwrap().to_string());
        }
    }
    for a in d["annotations"]["list"].as_array().unwrap() {
        out.extend(a["target"]["query"].as_str().map(str::to_string));
    }
    out
}

/// Problems of one Flux query against the schema (empty: fine).
fn check_flux(q: &str, s: &Described) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ms: Vec<String> = quoted_after(q, "r._measurement == \"");
    for m in &mut ms {
        if s.node_signals.contains(m.as_str()) {
            *m = "{signal}".into();
        } else if !s.measurements.contains_key(m.as_str()) {
            problems.push(format!("measurement `{m}` is not in `millwright schema`"));
        }
    }
    if ms.is_empty() {
        ms.push("{signal}".into()); // no measurement named: readings
    }
    let (mut tags, mut fields) = (BTreeSet::new(), BTreeSet::new());
    for m in &ms {
        if let Some((t, f)) = s.measurements.get(m) {
            tags.extend(t.iter().cloned());
            fields.extend(f.iter().cloned());
        }
    }
    for f in quoted_after(q, "r._field == \"") {
        if !fields.contains(&f) {
            problems.push(format!(
                "field `{f}` is not a field of {ms:?} in the schema"
            ));
        }
    }
    let pivoted = q.contains("pivot(");
    let mut names: Vec<String> = record_refs(q);
    names.extend(quoted_after(q, "tag: \""));
    names.extend(
        columns(q)
            .into_iter()
            .filter(|c| !c.starts_with('_') && c != "time" && c != "timeEnd"),
    );
    for n in names {
        let ok = tags.contains(&n) || (pivoted && fields.contains(&n));
        if !ok {
            problems.push(format!("`{n}` is not a tag of {ms:?} in the schema"));
        }
    }
    problems
}

#[test]
fn every_flux_query_names_only_what_millwright_schema_describes() {
    let s = described();
    let mut n = 0;
    let mut problems = Vec::new();
    for (p, d) in committed()
        .into_iter()
        .filter(|(p, _)| p.starts_with(spec::Flavour::Flux.dir()))
    {
        for q in flux_queries(&d) {
            n += 1;
            for e in check_flux(&q, &s) {
                problems.push(format!("{p}: {e}\n{q}"));
            }
        }
    }
    assert!(n >= 30, "only {n} Flux queries found");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // The check can fail: a renamed field or a tag the schema lacks is caught.
    let bad = "from(bucket: \"b\")\n |> filter(fn: (r) => r._measurement == \"millwright_report\" and r._field == \"anomaly_count\" and r.line == \"x\")";
    assert_eq!(check_flux(bad, &s).len(), 2, "{:?}", check_flux(bad, &s));
}

// ---- PromQL against the real VictoriaMetrics ---------------------------------------------

/// Every PromQL expression of the Prometheus flavour: (where, expression).
fn promql_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (p, d) in committed()
        .into_iter()
        .filter(|(p, _)| p.starts_with(spec::Flavour::Prom.dir()))
    {
        for panel in d["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().unwrap() {
                let e = t["expr"].as_str().expect("PromQL target has expr");
                out.push((format!("{p}: {}", panel["title"]), e.to_string()));
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" {
                out.push((
                    format!("{p}: ${}", v["name"]),
                    v["query"].as_str().unwrap().into(),
                ));
            }
        }
        for a in d["annotations"]["list"].as_array().unwrap() {
            if let Some(e) = a["expr"].as_str() {
                out.push((format!("{p}: annotation {}", a["name"]), e.to_string()));
            }
        }
    }
    out
}

/// Runs one dashboard expression (Grafana variables filled in: the time range is the last hour,
/// intervals one minute) against VictoriaMetrics; returns the label sets of the answer.
fn run_promql(vm: &str, expr: &str, site: &str, asset: &str) -> Vec<BTreeMap<String, String>> {
    let e = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$site", site)
        .replace("$asset", asset);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if let Some(args) = e
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (sel, label) = args.rsplit_once(',').unwrap();
        let v: Value = ureq::get(&format!("{vm}/api/v1/label/{}/values", label.trim()))
            .query("match[]", sel.trim())
            .query("start", &(now - 3600).to_string())
            .call()
            .unwrap_or_else(|err| panic!("{e}: {err}"))
            .into_json()
            .unwrap();
        return v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| BTreeMap::from([(label.trim().to_string(), x.as_str().unwrap().into())]))
            .collect();
    }
    // As Grafana runs a time-series panel: a range query over the last hour.
    let v: Value = match ureq::get(&format!("{vm}/api/v1/query_range"))
        .query("query", &e)
        .query("start", &(now - 3600).to_string())
        // VictoriaMetrics aligns the steps to the step: end a step later so `now` is covered.
        .query("end", &(now + 60).to_string())
        .query("step", "60")
        .query("nocache", "1")
        .call()
    {
        Ok(r) => r.into_json().unwrap(),
        Err(ureq::Error::Status(code, r)) => {
            panic!("{e}: HTTP {code}: {}", r.into_string().unwrap_or_default())
        }
        Err(err) => panic!("{e}: {err}"),
    };
    assert_eq!(v["status"], "success", "{e}: {v}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .collect()
}

fn node_config(
    site: &str,
    mqtt_port: u16,
    vm: &str,
    mport: u16,
    sim: std::net::SocketAddr,
    run: &str,
    assets: &[&str],
) -> String {
    let profile = root().join("pipelines/centrifugal-pump.toml");
    let mut cfg = format!(
        r#"
[site]
name = "{site}"
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "{cid}"
[[mqtt.subscriptions]]
topic = "{run}/{{asset}}"
format = "json"
qos = 1
[influxdb]
url = "{vm}"
org = "e2e"
bucket = "e2e"
flush_interval_ms = 200
[node]
metrics_listen = "127.0.0.1:{mport}"
status_interval_s = 0
report_interval_s = 10
metrics_interval_s = 1
[[modbus.devices]]
name = "{run}-pump"
asset = "{sim_asset}"
transport = "tcp"
host = "127.0.0.1"
port = {sim_port}
unit_id = 1
poll_interval_ms = 500
timeout_ms = 300
[[modbus.devices.fields]]
signal = "vibration_rms_mm_s"
function = "input"
address = 9
type = "u16"
scale = 0.01
unit = "mm/s"
[[modbus.devices.fields]]
signal = "bearing_temp_c"
function = "input"
address = 14
type = "i16"
scale = 0.01
unit = "°C"
[model]
files = ["{model}"]
threads = 1
"#,
        cid = unique("node-"),
        sim_asset = assets[1],
        sim_port = sim.port(),
        model = model_path().display(),
    );
    for a in assets {
        cfg += &format!(
            "[[assets]]\nname = \"{a}\"\nprofile = \"{}\"\n",
            profile.display()
        );
    }
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_promql_query_returns_data_after_a_real_ingest() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let broker = mqtt_broker();
    let vm = victoria();
    let run = unique("db");
    let (site, asset, sim_asset) = (run.clone(), format!("{run}-P"), format!("{run}-S"));
    let sim = millwright_sim::MachineServer::start(
        "127.0.0.1:0".parse().unwrap(),
        millwright_sim::MachineConfig::new(millwright_sim::MachineKind::Pump, &sim_asset, 1),
    )
    .await
    .unwrap();
    let mport = free_port();
    let dir = std::env::temp_dir().join(unique("mw-dash-"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("millwright.toml");
    std::fs::write(
        &cfg,
        node_config(
            &site,
            broker.port,
            &vm,
            mport,
            sim.local_addr(),
            &run,
            &[&asset, &sim_asset],
        ),
    )
    .unwrap();
    let _node = KillOnDrop(
        Command::new(millwright_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .stderr(std::fs::File::create(dir.join("node.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let metrics = format!("http://127.0.0.1:{mport}");
    let log = dir.join("node.log");
    let wait = move |name: &str, at_least: f64, secs: u64| {
        let t0 = Instant::now();
        while node_metric(&metrics, name, "").unwrap_or(0.0) < at_least {
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "{name} stayed below {at_least} for {secs} s (log: {})",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let b = format!("http://127.0.0.1:{mport}");
    tokio::task::spawn_blocking(move || wait_subscribed(&b, Duration::from_secs(30)))
        .await
        .unwrap();
    // 400 s of normal bearing temperature, then a step of +15 °C, at 1 Hz, ending now.
    let mut o = MqttOptions::new(unique("pub-"), "127.0.0.1", broker.port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (c, mut el) = AsyncClient::new(o, 1000);
    let acks = tokio::spawn(async move {
        let mut n = 0;
        while n < 460 {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => n += 1,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for i in 0..460i64 {
        let v = if i < 400 { 60.0 } else { 75.0 } + ((i as f64) * 1.7).sin() * 0.3;
        let ts = now_ms - (460 - i) * 1000;
        c.publish(
            format!("{run}/{asset}"),
            QoS::AtLeastOnce,
            false,
            format!(r#"{{"ts_ms":{ts},"fields":{{"bearing_temp_c":{v:.3}}},"units":{{"bearing_temp_c":"°C"}}}}"#),
        )
        .await
        .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(60), acks)
        .await
        .unwrap()
        .unwrap();
    // The anomaly is detected and explained by the real model; reports come every 10 s.
    tokio::task::spawn_blocking(move || {
        wait("millwright_anomalies_total", 1.0, 60);
        wait("millwright_reports_total", 2.0, 60);
        wait("millwright_modbus_cycles_total", 5.0, 30);
        wait("millwright_model_generations_total", 1.0, 240);
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let queries = promql_queries();
    assert!(queries.len() >= 30, "only {} PromQL queries", queries.len());
    let ours = [asset.as_str(), sim_asset.as_str()];
    let mut empty = Vec::new();
    for (what, expr) in &queries {
        let t0 = Instant::now();
        let ok = loop {
            let _ = ureq::get(&format!("{vm}/internal/force_flush")).call();
            let rows = run_promql(&vm, expr, &site, &asset);
            // Rows keyed by asset must include this run's assets (anomalies carry no site tag).
            let mine = rows.iter().any(|r| {
                r.get("asset").is_none_or(|a| ours.contains(&a.as_str()))
                    && r.get("site").is_none_or(|s| *s == site)
            });
            if mine {
                break true;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        if !ok {
            empty.push(format!("{what}\n  {expr}"));
        }
    }
    sim.stop().await;
    assert!(
        empty.is_empty(),
        "{} of {} PromQL queries returned no data of this run:\n{}",
        empty.len(),
        queries.len(),
        empty.join("\n")
    );
}
