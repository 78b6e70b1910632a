//! The deployment files under `deploy/` (no container engine here, so no image is built):
//! the compose file is well-formed YAML whose services, ports, volumes and environment agree
//! with the node's config (`deploy/docker/millwright.toml`, which passes `check-config`),
//! Mosquitto's config and the Grafana provisioning; the Dockerfile is multi-stage with a
//! non-root final image; the systemd unit is hardened and passes `systemd-analyze verify`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_e2e::millwright_bin;
use std::path::{Path, PathBuf};
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    let docs = YamlLoader::load_from_str(&read(rel))
        .unwrap_or_else(|e| panic!("{rel} is not well-formed YAML: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one document");
    docs.into_iter().next().unwrap()
}

fn node_toml() -> toml::Value {
    read("deploy/docker/millwright.toml")
        .parse()
        .expect("millwright.toml")
}

/// `${NAME:-default}` → `default`; anything else as is.
fn default_of(v: &str) -> &str {
    match v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(inner) => inner.split_once(":-").map(|(_, d)| d).unwrap_or(""),
        None => v,
    }
}

fn env<'a>(svc: &'a Yaml, key: &str) -> &'a str {
    let v = svc["environment"][key]
        .as_str()
        .unwrap_or_else(|| panic!("environment {key} missing"));
    default_of(v)
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| v.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn compose_agrees_with_the_node_config_mosquitto_and_the_provisioning() {
    let c = yaml("deploy/docker-compose.yml");
    let cfg = node_toml();
    let svcs = c["services"].as_hash().expect("services");
    let names: Vec<&str> = svcs.keys().map(|k| k.as_str().unwrap()).collect();
    for s in [
        "mosquitto",
        "influxdb",
        "grafana",
        "millwright",
        "simulator",
    ] {
        assert!(names.contains(&s), "service {s} missing: {names:?}");
    }
    let (mq, idb, gf, mw, sim) = (
        &c["services"]["mosquitto"],
        &c["services"]["influxdb"],
        &c["services"]["grafana"],
        &c["services"]["millwright"],
        &c["services"]["simulator"],
    );
    // Every named volume a service mounts is declared; every bind mount exists in the repo.
    let declared: Vec<&str> = c["volumes"]
        .as_hash()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    for (name, svc) in svcs {
        for v in strings(&svc["volumes"]) {
            let src = v.split(':').next().unwrap();
            if src.starts_with('.') {
                // models/ is made by `make model`; everything else is in the repository.
                if src != "../models" {
                    assert!(
                        root().join("deploy").join(src).exists(),
                        "{name:?}: bind mount {src} does not exist"
                    );
                }
            } else {
                assert!(
                    declared.contains(&src),
                    "{name:?}: volume {src} not declared"
                );
            }
        }
    }
    // MQTT: the node's broker is the mosquitto service, on the port Mosquitto listens on, with
    // the user the password file is written for.
    let mqtt = &cfg["mqtt"];
    assert_eq!(mqtt["host"].as_str(), Some("mosquitto"));
    let conf = read("deploy/docker/mosquitto.conf");
    let port = mqtt["port"].as_integer().unwrap();
    assert!(
        conf.contains(&format!("listener {port}")),
        "mosquitto listens on {port}"
    );
    assert!(conf.contains("allow_anonymous false") && conf.contains("password_file"));
    assert!(strings(&mq["ports"])
        .iter()
        .any(|p| p.ends_with(&format!(":{port}"))));
    assert_eq!(env(mq, "MQTT_USERNAME"), mqtt["username"].as_str().unwrap());
    // Credentials are Docker secrets, read by the node with password_file / token_file.
    let mqtt_secret = secret_of(mqtt, "password");
    for svc in [mw, mq] {
        assert!(uses_secret(svc, &mqtt_secret), "{mqtt_secret} not given");
    }
    assert!(
        strings(&mq["command"])
            .concat()
            .contains(&format!("/run/secrets/{mqtt_secret}")),
        "Mosquitto's password file is written from the secret"
    );
    let pw_file = conf
        .lines()
        .find_map(|l| l.strip_prefix("password_file "))
        .unwrap();
    assert!(
        strings(&mq["command"]).concat().contains(pw_file),
        "the password file Mosquitto reads is the one written at start"
    );
    // InfluxDB 2: initialised with the org, bucket and token the node writes with.
    let ic = &cfg["influxdb"];
    assert_eq!(ic["url"].as_str(), Some("http://influxdb:8086"));
    assert!(strings(&idb["ports"]).iter().any(|p| p.ends_with(":8086")));
    assert_eq!(env(idb, "DOCKER_INFLUXDB_INIT_MODE"), "setup");
    assert_eq!(
        env(idb, "DOCKER_INFLUXDB_INIT_ORG"),
        ic["org"].as_str().unwrap()
    );
    assert_eq!(
        env(idb, "DOCKER_INFLUXDB_INIT_BUCKET"),
        ic["bucket"].as_str().unwrap()
    );
    let token_secret = secret_of(ic, "token");
    assert_eq!(
        env(idb, "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE"),
        format!("/run/secrets/{token_secret}")
    );
    for svc in [mw, idb, gf] {
        assert!(uses_secret(svc, &token_secret), "{token_secret} not given");
    }
    // Grafana: its data source environment matches, and the provisioning is mounted where
    // Grafana reads it, with the dashboards where the providers point.
    assert_eq!(env(gf, "INFLUXDB_URL"), ic["url"].as_str().unwrap());
    assert_eq!(env(gf, "INFLUXDB_ORG"), ic["org"].as_str().unwrap());
    assert_eq!(env(gf, "INFLUXDB_BUCKET"), ic["bucket"].as_str().unwrap());
    assert!(
        strings(&gf["command"]).concat().contains(&format!(
            "INFLUXDB_TOKEN=\"$$(cat /run/secrets/{token_secret})\""
        )),
        "Grafana's INFLUXDB_TOKEN comes from the secret"
    );
    let ds = read("dashboards/provisioning/datasources/millwright.yaml");
    for var in [
        "INFLUXDB_URL",
        "INFLUXDB_ORG",
        "INFLUXDB_BUCKET",
        "INFLUXDB_TOKEN",
        "VICTORIAMETRICS_URL",
    ] {
        assert!(
            ds.contains(&format!("${{{var}}}")),
            "datasources use ${var}"
        );
        if var != "INFLUXDB_TOKEN" {
            env(gf, var);
        }
    }
    let gv = strings(&gf["volumes"]);
    let mounted = |src: &str, dst: &str| gv.iter().any(|v| v.starts_with(&format!("{src}:{dst}")));
    assert!(mounted(
        "../dashboards/provisioning/datasources",
        "/etc/grafana/provisioning/datasources"
    ));
    assert!(mounted(
        "../dashboards/provisioning/dashboards",
        "/etc/grafana/provisioning/dashboards"
    ));
    let providers = yaml("dashboards/provisioning/dashboards/millwright.yaml");
    let providers = providers["providers"].as_vec().unwrap();
    assert_eq!(providers.len(), 2);
    for p in providers {
        let path = p["options"]["path"].as_str().unwrap();
        let folder = path.rsplit('/').next().unwrap();
        assert!(
            mounted(&format!("../dashboards/{folder}"), path),
            "provider path {path} is not mounted from dashboards/{folder}"
        );
        assert!(root().join("dashboards").join(folder).is_dir());
    }
    // The node: its config is mounted where its command reads it, /metrics is published on
    // the port it binds, and the simulator serves the Modbus device it polls.
    let cmd = strings(&mw["command"]);
    let cfg_path = cmd.iter().skip_while(|a| *a != "--config").nth(1).unwrap();
    assert!(strings(&mw["volumes"])
        .iter()
        .any(|v| v == &format!("./docker/millwright.toml:{cfg_path}:ro")));
    let listen = cfg["node"]["metrics_listen"].as_str().unwrap();
    let mport = listen.rsplit(':').next().unwrap();
    assert!(strings(&mw["ports"])
        .iter()
        .any(|p| p.ends_with(&format!(":{mport}"))));
    let dev = &cfg["modbus"]["devices"][0];
    assert_eq!(dev["host"].as_str(), Some("simulator"));
    let sim_cmd = strings(&sim["command"]).join(" ");
    assert!(
        sim_cmd.contains(&format!(":{}", dev["port"].as_integer().unwrap())),
        "{sim_cmd}"
    );
    assert!(
        sim_cmd.contains(&format!(":{}@", dev["asset"].as_str().unwrap())),
        "{sim_cmd}"
    );
    assert_eq!(strings(&sim["profiles"]), vec!["sim".to_string()]);
    // Build targets the compose file names exist in the Dockerfile.
    let df = read("deploy/Dockerfile");
    for svc in [mw, sim] {
        let t = svc["build"]["target"].as_str().unwrap();
        assert!(
            df.contains(&format!(" AS {t}\n")),
            "Dockerfile has no stage {t}"
        );
        assert_eq!(
            svc["build"]["dockerfile"].as_str(),
            Some("deploy/Dockerfile")
        );
    }
    // The model the config names is the one the volume provides.
    let model = cfg["model"]["files"][0].as_str().unwrap();
    assert!(model.starts_with("/var/lib/millwright/models/"));
    assert!(strings(&mw["volumes"]).contains(&"../models:/var/lib/millwright/models:ro".into()));
}

/// `<key>_file` of a config section: `/run/secrets/<name>`; returns the name. The plain key
/// must not be set.
fn secret_of(section: &toml::Value, key: &str) -> String {
    assert!(section.get(key).is_none(), "{key} in the config file");
    let f = section[format!("{key}_file").as_str()].as_str().unwrap();
    f.strip_prefix("/run/secrets/")
        .unwrap_or_else(|| panic!("{key}_file {f} is not a Docker secret"))
        .to_string()
}

fn uses_secret(svc: &Yaml, name: &str) -> bool {
    strings(&svc["secrets"]).iter().any(|s| s == name)
}

/// Runs deploy/make-secrets.sh into a fresh directory; returns it.
fn made_secrets() -> PathBuf {
    let dir = std::env::temp_dir().join(millwright_e2e::unique("mw-secrets-"));
    let out = Command::new("sh")
        .arg(root().join("deploy/make-secrets.sh"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn compose_credentials_are_file_secrets_that_make_secrets_writes() {
    let c = yaml("deploy/docker-compose.yml");
    let declared = c["secrets"].as_hash().expect("top-level secrets");
    let dir = made_secrets();
    let mut values = Vec::new();
    for (name, def) in declared {
        let name = name.as_str().unwrap();
        // File-based, under deploy/secrets/ (git-ignored), written by the script.
        assert_eq!(
            def["file"].as_str(),
            Some(format!("./secrets/{name}").as_str()),
            "{name}"
        );
        let v = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(v.len() >= 32 && !v.contains(char::is_whitespace), "{name}");
        values.push(v);
    }
    values.sort();
    values.dedup();
    assert_eq!(
        values.len(),
        declared.len(),
        "every secret is its own value"
    );
    // A second run keeps the values (a running site keeps its credentials).
    let before = std::fs::read_to_string(dir.join("mqtt_password")).unwrap();
    let again = Command::new("sh")
        .arg(root().join("deploy/make-secrets.sh"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(again.success());
    assert_eq!(
        std::fs::read_to_string(dir.join("mqtt_password")).unwrap(),
        before
    );
    assert!(read(".gitignore").lines().any(|l| l == "/deploy/secrets/"));
    // Every secret a service uses is declared; no secret is an environment value.
    for (svc_name, svc) in c["services"].as_hash().unwrap() {
        for s in strings(&svc["secrets"]) {
            assert!(
                declared.contains_key(&Yaml::String(s.clone())),
                "{svc_name:?}: secret {s} not declared"
            );
        }
        if let Some(env) = svc["environment"].as_hash() {
            for k in env.keys() {
                let k = k.as_str().unwrap();
                let secretish = ["PASSWORD", "TOKEN"].iter().any(|w| k.contains(w));
                assert!(
                    !secretish || k.ends_with("_FILE"),
                    "{svc_name:?}: {k} holds a secret in the environment"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn compose_node_config_passes_check_config() {
    let secrets = made_secrets();
    // The container's absolute paths, mapped to this repository's files.
    let text = read("deploy/docker/millwright.toml")
        .replace(
            "/etc/millwright/pipelines/",
            &format!("{}/pipelines/", root().display()),
        )
        .replace(
            "/var/lib/millwright/models/",
            &format!("{}/models/", root().display()),
        )
        .replace("/run/secrets/", &format!("{}/", secrets.display()));
    let dir = std::env::temp_dir().join(millwright_e2e::unique("mw-deploy-"));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("millwright.toml");
    std::fs::write(&f, text).unwrap();
    let out = Command::new(millwright_bin())
        .arg("check-config")
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dockerfile_is_multi_stage_small_and_non_root() {
    let df = read("deploy/Dockerfile");
    let froms: Vec<&str> = df.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 3, "{froms:?}");
    assert!(
        froms.iter().any(|f| f.contains("distroless")),
        "small final image"
    );
    assert!(
        df.contains("--no-default-features"),
        "the lean production node"
    );
    assert!(
        df.contains("ARG MODEL_FILE"),
        "model baked in by a build argument"
    );
    let last_user = df.lines().rfind(|l| l.starts_with("USER ")).unwrap();
    assert!(
        !last_user.contains("root") && !last_user.contains(" 0"),
        "{last_user}"
    );
    assert!(root().join("deploy/Dockerfile.dockerignore").exists());
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = read("deploy/systemd/millwright.service");
    for d in [
        "User=millwright",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=",
        "StateDirectory=millwright",
        "LoadCredential=millwright.toml:",
        "Restart=on-failure",
        "ExecStart=/usr/local/bin/millwright run --config %d/millwright.toml",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(d)), "unit lacks {d}");
    }
    // No watchdog: the node does not send sd_notify.
    assert!(!unit
        .lines()
        .any(|l| l.starts_with("WatchdogSec=") || l == "Type=notify"));
    let sysusers = read("deploy/systemd/millwright.sysusers");
    assert!(sysusers.lines().any(|l| l.starts_with("u millwright ")));
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!(
            "SKIPPED systemd-analyze verify: systemd-analyze is not installed \
             (make deps installs Debian's `systemd` package)"
        );
        return;
    };
    // Verify the unit as shipped, with the binary path pointing at the built binary (verify
    // checks that ExecStart's program exists).
    let dir = std::env::temp_dir().join(millwright_e2e::unique("mw-unit-"));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("millwright.service");
    std::fs::write(
        &f,
        unit.replace(
            "/usr/local/bin/millwright",
            millwright_bin().to_str().unwrap(),
        ),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
    // A broken unit is caught: the check can fail.
    std::fs::write(
        &f,
        unit.replace("[Service]", "[Service]\nProtectSystem=bogus"),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "systemd-analyze verify did not notice a bad value"
    );
}
