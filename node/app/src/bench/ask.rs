//! `millwright bench ask`: operator questions under load, one JSON line.
//!
//! A node in this process (MQTT ingest, the pump profile's analytics, the real model, the ask
//! service) on Mosquitto when installed, else the embedded broker, with an hour of P-101
//! readings. Then:
//! - `p50_ms_N` / `p95_ms_N`: answer latency (question published → answer received) with
//!   N = 1, 10, 100 askers at once, each its own MQTT 5 client;
//! - `decode_tok_s_N`: generated tokens per second of N = 1, 4, 16 concurrent
//!   `ModelHandle::generate` calls on one model (the handle batches what it can);
//! - `ingest_ratio_100`: ingest readings/s (the `bench ingest` publisher, batch mode, in a
//!   child process) while 100 askers ask at their rate limit, over the same without askers.
//!
//! How ingest is compared: three windows of the same length (`--ingest-s`), each after the
//! publisher has run for a moment (connections up, the node's sensors created) and each
//! followed by a pause until the broker's queue has drained into the node: idle, with the 100
//! askers (started a second before, so that the model is busy all through the window), idle
//! again. The ratio is the busy window over the mean of the two idle ones, so that a drift of
//! the shared machine's load during the run does not count for or against the askers. What
//! the askers got during the busy window (`asked_during_ingest`: answers by source and
//! errors by reason) and `model_during_ingest_*` (generations finished, mean tokens and
//! milliseconds) show that the model was working all the time.
//!
//! The model's threads run at `--model-nice` (`[model] nice`, default 10), as in a node.
//! `ask1_*` split one asker's answers: mean prompt tokens computed (the cached prefix not
//! counted), generated tokens, and the model's prompt and decode milliseconds.

use crate::bench::ingest::{spawn_mosquitto, KillOnDrop};
use crate::broker;
use crate::cli::BenchAskArgs;
use crate::config::{AssetConfig, Config, ModelSection};
use anyhow::Context;
use millwright_core::ask::AskPayload;
use millwright_core::{GenParams, Prompt};
use millwright_ingest::mqtt::{MqttConfig, PayloadFormat, SubscriptionConfig};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const QUESTIONS: [&str; 6] = [
    "What was the max bearing temperature on P-101 in the last hour?",
    "What is the current vibration of P-101?",
    "Average flow of P-101 over the last 15 minutes?",
    "Which machines need attention this shift?",
    "minimum discharge pressure on P-101 in the last hour",
    "motor current of P-101 right now",
];

/// Runs the benchmark.
pub async fn run(a: &BenchAskArgs) -> anyhow::Result<ExitCode> {
    let model = a
        .model
        .clone()
        .or_else(|| std::env::var_os("MILLWRIGHT_MODEL").map(std::path::PathBuf::from))
        .unwrap_or_else(|| "models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    if !model.exists() {
        anyhow::bail!("model file {} missing (`make model`)", model.display());
    }
    let (kind, port, ask_port, _guard) = match spawn_mosquitto()? {
        Some((port, child)) => ("mosquitto", port, port, Some(KillOnDrop(child))),
        None => {
            let (addr, v5) = broker::start_embedded_v5(broker::free_port()?)?;
            ("embedded-rumqttd (in process)", addr.port(), v5, None)
        }
    };
    let cfg = bench_config(port, &model, &a.pipelines, a.model_threads, a.model_nice)?;
    let base = std::env::current_dir()?;
    let profiles = crate::analytics::load_profiles(&cfg, &base)
        .map_err(|e| anyhow::anyhow!("profiles: {}", e.join("; ")))?;
    let status = Arc::new(crate::analytics::AnalyticsStatus::default());
    let budgets = crate::memory::Budgets::new(crate::memory::MemoryCaps::of(&cfg));
    let (tap, inbox) =
        crate::analytics::channel_with(status.clone(), budgets.analytics_tap.clone());
    let node = crate::node::Node::start_with(
        &cfg,
        crate::node::Hooks {
            time_lapse: None,
            tap: Some(tap),
            budgets: Some(budgets),
            ..crate::node::Hooks::default()
        },
    )?;
    // The ask service must reach the embedded broker's MQTT 5 listener (with Mosquitto it is
    // the same port; with rumqttd the node's v4 publisher then fails to connect, which only
    // costs it its alerts).
    let mut ask_cfg = cfg.clone();
    if let Some(m) = ask_cfg.mqtt.as_mut() {
        m.port = ask_port;
    }
    crate::cmd::run::start_analytics(&ask_cfg, &base, profiles, &node, inbox, &status, None)?;
    wait_connected(&node).await?;
    let t0 = Instant::now();
    while status
        .ask
        .get()
        .is_none_or(|s| s.connected.load(Ordering::Relaxed) == 0)
    {
        if t0.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("the ask service did not connect to the broker");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    seed(port).await?;
    let t0 = Instant::now();
    while node.readings.load(Ordering::Relaxed) < SEED_READINGS {
        if t0.elapsed() > Duration::from_secs(30) {
            anyhow::bail!(
                "the seed readings did not arrive ({} of {SEED_READINGS})",
                node.readings.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the model load and warm up with one question.
    let _ = latencies(ask_port, 9000, 1, 1).await?;

    let prio = millwright_slm::priority::status();
    let mut out = serde_json::json!({
        "bench": "ask",
        "broker": kind,
        "model_threads": a.model_threads,
        "model_nice": prio.nice.unwrap_or(0),
        "model_threads_lowered": prio.applied,
        "model_priority_error": prio.error,
    });
    for (n, per) in [(1usize, a.questions.max(1)), (10, 2), (100, 1)] {
        tracing::info!(askers = n, "measuring answer latency");
        let before = ModelCounts::of(&status.model);
        let (mut l, errors) = latencies(ask_port, n * 10, n, per).await?;
        if n == 1 {
            ModelCounts::of(&status.model).since(&before, &mut out, "ask1");
        }
        l.sort_by(f64::total_cmp);
        out[format!("p50_ms_{n}")] = pct(&l, 0.5).into();
        out[format!("p95_ms_{n}")] = pct(&l, 0.95).into();
        out[format!("errors_{n}")] = errors.into();
    }
    let ask = status.ask.get().cloned();
    if let Some(s) = &ask {
        use millwright_core::ask::AnswerSource as S;
        out["answers_model"] = s.answers(S::Model).into();
        out["answers_template"] = s.answers(S::Template).into();
        out["model_timeouts"] = s.model_timeouts.load(Ordering::Relaxed).into();
    }
    // Ingest without, with, and again without 100 askers (see the module doc).
    tracing::info!("measuring ingest with and without 100 askers");
    let window = Duration::from_secs_f64(a.ingest_s.clamp(1.0, 120.0));
    let idle_before = ingest_rate(&node, port, window).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let askers: Vec<_> = (0..100)
        .map(|k| tokio::spawn(keep_asking(ask_port, k, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked_before = ask.as_deref().map(Asked::of);
    let model_before = ModelCounts::of(&status.model);
    let busy = ingest_rate(&node, port, window).await?;
    if let (Some(s), Some(b)) = (ask.as_deref(), asked_before) {
        out["asked_during_ingest"] = Asked::of(s).since(&b);
    }
    // The model's work in the busy window (answers finish late, so this is the proof it ran).
    ModelCounts::of(&status.model).since(&model_before, &mut out, "model_during_ingest");
    stop.store(true, Ordering::Relaxed);
    for t in askers {
        let _ = t.await;
    }
    // The questions still open finish before the second idle window.
    let t0 = Instant::now();
    while ask
        .as_deref()
        .is_some_and(|s| s.open.load(Ordering::Relaxed) > 0)
        && t0.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_after = ingest_rate(&node, port, window).await?;
    let idle = (idle_before + idle_after) / 2.0;
    out["ingest_s"] = window.as_secs_f64().into();
    out["ingest_readings_s_idle"] = idle.into();
    out["ingest_readings_s_idle_before"] = idle_before.into();
    out["ingest_readings_s_idle_after"] = idle_after.into();
    out["ingest_readings_s_100"] = busy.into();
    out["ingest_ratio_100"] = (if idle > 0.0 { busy / idle } else { 0.0 }).into();
    drop(ask);
    for n in [1usize, 4, 16] {
        tracing::info!(sequences = n, "measuring decode throughput");
        out[format!("decode_tok_s_{n}")] = decode_tok_s(&model, n).await?.into();
    }
    out["loadavg"] = crate::procinfo::loadavg().into();
    println!("{out}");
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

const SEED_READINGS: u64 = 360 * 6;

/// The model's counters at one moment (to split a phase's answers).
struct ModelCounts {
    generations: u64,
    prompt_tokens: u64,
    generated_tokens: u64,
    prompt_us: u64,
    decode_us: u64,
}

impl ModelCounts {
    fn of(m: &crate::metrics::model::ModelStats) -> Self {
        let ld = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
        Self {
            generations: ld(&m.generations),
            prompt_tokens: ld(&m.prompt_tokens),
            generated_tokens: ld(&m.generated_tokens),
            prompt_us: ld(&m.prompt_us),
            decode_us: ld(&m.decode_us),
        }
    }

    /// Per generation since `before`, as `<key>_…` fields of `out`.
    fn since(&self, before: &Self, out: &mut serde_json::Value, key: &str) {
        let n = self.generations.saturating_sub(before.generations);
        out[format!("{key}_generations")] = n.into();
        if n == 0 {
            return;
        }
        let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n as f64;
        out[format!("{key}_prompt_tokens")] = per(self.prompt_tokens, before.prompt_tokens).into();
        out[format!("{key}_generated_tokens")] =
            per(self.generated_tokens, before.generated_tokens).into();
        out[format!("{key}_prompt_ms")] = (per(self.prompt_us, before.prompt_us) / 1e3).into();
        out[format!("{key}_decode_ms")] = (per(self.decode_us, before.decode_us) / 1e3).into();
    }
}

/// What the ask service answered so far: per source, and errors per reason.
struct Asked(Vec<(&'static str, u64)>);

impl Asked {
    fn of(s: &crate::ask::AskStatus) -> Self {
        let mut v: Vec<(&'static str, u64)> = crate::ask::SOURCES
            .iter()
            .map(|x| (crate::ask::source_str(*x), s.answers(*x)))
            .collect();
        v.extend(
            crate::ask::Reason::ALL
                .iter()
                .map(|r| (r.as_str(), s.rejected(*r))),
        );
        v.push(("questions", s.questions.load(Ordering::Relaxed)));
        Self(v)
    }

    fn since(&self, before: &Self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        for ((k, now), (_, then)) in self.0.iter().zip(&before.0) {
            if now > then {
                o.insert((*k).into(), (now - then).into());
            }
        }
        o.into()
    }
}

fn bench_config(
    port: u16,
    model: &std::path::Path,
    pipelines: &std::path::Path,
    threads: Option<usize>,
    nice: i32,
) -> anyhow::Result<Config> {
    let mut cfg = Config::for_site("bench");
    let mut mqtt = MqttConfig::new("127.0.0.1", port);
    mqtt.client_id = format!("millwright-bench-ask-{}", std::process::id());
    let mut sub = SubscriptionConfig::new("bench/{asset}", PayloadFormat::Json);
    sub.qos = 1;
    mqtt.subscriptions.push(sub);
    cfg.mqtt = Some(mqtt);
    cfg.node.status_interval_s = 0;
    cfg.assets.push(AssetConfig {
        name: "P-101".into(),
        profile: pipelines
            .join("centrifugal-pump.toml")
            .display()
            .to_string(),
    });
    cfg.model = Some(ModelSection {
        files: vec![model.display().to_string()],
        threads,
        weights: "auto".into(),
        nice,
    });
    // Many askers at once: latency is measured, not refused; every operator keeps the default
    // rate limit (each latency phase asks as new operators, within their burst).
    cfg.ask.max_open = 256;
    cfg.checked()
        .map_err(|e| anyhow::anyhow!("bench config: {e}"))
}

async fn wait_connected(node: &crate::node::Node) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while !node
        .mqtt
        .as_ref()
        .is_some_and(|m| m.connected.load(Ordering::Relaxed))
    {
        if t0.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("the node did not connect to the broker");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// An hour of P-101 readings, one every 10 s, on `bench/P-101`.
async fn seed(port: u16) -> anyhow::Result<()> {
    let mut o = rumqttc::MqttOptions::new("millwright-bench-ask-seed", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (c, mut el) = rumqttc::AsyncClient::new(o, 1000);
    let now = crate::time_ns();
    let mut sent = 0;
    for chunk in 0..6 {
        let rows: Vec<serde_json::Value> = (chunk * 60..chunk * 60 + 60)
            .map(|i: i64| {
                let f = i as f64;
                serde_json::json!({
                    "asset": "P-101",
                    "ts_ns": now - (360 - i) * 10_000_000_000,
                    "fields": {
                        "vibration_rms_mm_s": 1.8 + 0.05 * (f % 7.0),
                        "bearing_temp_c": 58.0 + 0.1 * (f % 5.0),
                        "suction_pressure_bar": 1.5,
                        "discharge_pressure_bar": 6.0 + 0.02 * (f % 6.0),
                        "flow_m3_h": 120.0 + 0.5 * (f % 8.0),
                        "motor_current_a": 45.0 + 0.1 * (f % 9.0),
                    }
                })
            })
            .collect();
        c.publish(
            "bench/P-101",
            rumqttc::QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&rows)?,
        )
        .await?;
    }
    let acked = async {
        while sent < 6 {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => sent += 1,
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("seed publisher: {e}")),
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), acked)
        .await
        .context("the broker did not acknowledge the seed readings")?
}

/// `n` askers at once, each asking `per` questions one after the other on its own MQTT 5
/// connection; the latencies in ms and the error answers.
async fn latencies(
    port: u16,
    first: usize,
    n: usize,
    per: usize,
) -> anyhow::Result<(Vec<f64>, u64)> {
    let tasks: Vec<_> = (first..first + n)
        .map(|k| tokio::spawn(asker(port, k, per, None)))
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    Ok((all, errors))
}

async fn keep_asking(
    port: u16,
    k: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Vec<f64>, u64)> {
    asker(port, 2000 + k, usize::MAX, Some(stop)).await
}

/// One operator (`op-<k>`): connects, then per question subscribes to its answer topic, publishes the
/// question and waits for the answer (timing from the publication).
async fn asker(
    port: u16,
    k: usize,
    per: usize,
    stop: Option<Arc<AtomicBool>>,
) -> anyhow::Result<(Vec<f64>, u64)> {
    let pid = std::process::id();
    let mut o = MqttOptions::new(format!("bench-asker-{pid}-{k}"), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60));
    let (c, mut el) = AsyncClient::new(o, 64);
    let (mut out, mut errors) = (Vec::new(), 0u64);
    let mut i = 0usize;
    while i < per && !stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
        let id = format!("b{pid}-{k}-{i}");
        let topic = format!("millwright/bench/answers/{id}");
        let q = AskPayload {
            id: id.clone(),
            question: QUESTIONS
                .get((k + i) % QUESTIONS.len())
                .copied()
                .unwrap_or("What is the current vibration of P-101?")
                .to_string(),
            asset: None,
        };
        c.subscribe(topic.clone(), QoS::AtLeastOnce).await?;
        let mut t0: Option<Instant> = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = match tokio::time::timeout(left, el.poll()).await {
                Ok(Ok(ev)) => ev,
                // A connection lost under load: rumqttc reconnects on the next poll; the
                // question is asked again once subscribed.
                Ok(Err(e)) => {
                    tracing::debug!(asker = k, error = %e, "asker's connection");
                    t0 = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    c.subscribe(topic.clone(), QoS::AtLeastOnce).await?;
                    continue;
                }
                Err(_) => anyhow::bail!("asker {k}: no answer within 120 s"),
            };
            match ev {
                Event::Incoming(Packet::SubAck(_)) if t0.is_none() => {
                    t0 = Some(Instant::now());
                    c.publish(
                        format!("millwright/bench/ask/op-{k}"),
                        QoS::AtLeastOnce,
                        false,
                        serde_json::to_vec(&q)?,
                    )
                    .await?;
                }
                Event::Incoming(Packet::Publish(p)) if *p.topic == *topic.as_bytes() => {
                    let ms = t0.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
                    let a: serde_json::Value = serde_json::from_slice(&p.payload)?;
                    if a["source"] == "error" {
                        errors += 1;
                        tracing::debug!(asker = k, error = %a["error"], text = %a["answer"], "error answer");
                        // A well-behaved client waits as told before asking again.
                        if let (Some(_), Some(s)) = (&stop, a["retry_after_s"].as_u64()) {
                            tokio::time::sleep(Duration::from_secs(s.min(60))).await;
                        }
                    } else {
                        out.push(ms);
                    }
                    break;
                }
                _ => {}
            }
        }
        let _ = c.unsubscribe(topic).await;
        i += 1;
    }
    let _ = c.disconnect().await;
    Ok((out, errors))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// Readings/s through the node from the `bench ingest` publisher (batch mode, 100 a message,
/// as fast as the broker takes them) over `window`, which starts half a second after the
/// first reading (connections up, the node's sensors created). Then the publisher stops and
/// what the broker still queued for the node drains before this returns, so that the next
/// window starts from an empty queue.
async fn ingest_rate(node: &crate::node::Node, port: u16, window: Duration) -> anyhow::Result<f64> {
    let read = || node.readings.load(Ordering::Relaxed);
    let start = read();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["bench", "ingest-publisher", "--broker"])
        .arg(format!("127.0.0.1:{port}"))
        // More than any node takes in the window: the publisher is stopped after it.
        .args([
            "--mode",
            "batch",
            "--batch",
            "100",
            "--readings",
            "1000000000",
        ])
        .kill_on_drop(true)
        .spawn()
        .context("starting the publisher process")?;
    let t0 = Instant::now();
    while read() == start {
        if t0.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("no readings from the publisher within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (from, at) = (read(), Instant::now());
    tokio::time::sleep(window).await;
    let (to, secs) = (read(), at.elapsed().as_secs_f64());
    let _ = child.kill().await;
    // Drained: no reading for half a second (at most a minute).
    let (mut last, t0) = (read(), Instant::now());
    while t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read();
        if now == last {
            break;
        }
        last = now;
    }
    Ok(to.saturating_sub(from) as f64 / secs)
}

/// Generated tokens per second of `n` concurrent generations on one model.
async fn decode_tok_s(model: &std::path::Path, n: usize) -> anyhow::Result<f64> {
    let path = model.to_path_buf();
    let h = millwright_slm::ModelHandle::spawn_with(
        move || millwright_slm::load_best(&[path], &millwright_slm::EngineOptions::default()),
        n.max(1),
    )?;
    let params = GenParams {
        max_tokens: 64,
        ..GenParams::default()
    };
    let prompt = |i: usize| {
        Prompt::new(
            "You are a maintenance assistant.",
            format!(
                "Describe, step by step, how to inspect pump P-{} for bearing wear.",
                100 + i
            ),
        )
    };
    // Load and warm up.
    h.generate(prompt(0), params.clone()).await?;
    let t0 = Instant::now();
    let jobs: Vec<_> = (0..n)
        .map(|i| {
            let (h, p, g) = (h.clone(), prompt(i), params.clone());
            tokio::spawn(async move { h.generate(p, g).await })
        })
        .collect();
    let mut tokens = 0usize;
    for j in jobs {
        tokens += j.await??.generated_tokens;
    }
    Ok(tokens as f64 / t0.elapsed().as_secs_f64())
}
