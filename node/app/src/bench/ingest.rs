//! `millwright bench ingest`: MQTT ingest throughput end to end and the node's peak memory.
//!
//! A publisher child process (this binary, hidden `bench ingest-publisher`) sends `--readings`
//! readings to the broker with QoS 1; the node in this process subscribes, decodes, stores and
//! hands them to the sink (InfluxDB when `--influx-url` is given, else a counting null sink).
//! The clock runs from the first reading received to the last reading accepted by the sink.
//! Peak RSS is this process's VmHWM: node only — publisher and broker run in other processes
//! unless the embedded broker is used (then it is included and `broker` says so).
//!
//! `--format sparkplug_b`: the publisher is [`SPB_NODES`] Sparkplug B edge nodes, each sending
//! an NBIRTH of [`SPB_METRICS`] Double metrics, then NDATA by alias (seq in order); the node
//! decodes them through the same Sparkplug B codec as in production. Birth readings (and the
//! `device_online` ones) are waited for but not counted in `readings`.
//!
//! `--outbox` (with `--influx-url`): the node writes through the disk outbox (acks after
//! storage). Before the live run, the same burst goes into a database that is down (outbox
//! bytes per reading, peak RSS), then a node without MQTT replays that outbox into the real
//! database (replay rate); `outbox_phases` in the JSON line.

use crate::broker;
use crate::cli::{BenchIngestArgs, BenchPublisherArgs};
use crate::config::Config;
use crate::node::Node;
use crate::procinfo;
use anyhow::Context;
use millwright_ingest::mqtt::{MqttConfig, PayloadFormat, SubscriptionConfig};
use millwright_sinks::{InfluxConfig, OutboxConfig};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Runs the benchmark.
pub async fn run(a: &BenchIngestArgs) -> anyhow::Result<ExitCode> {
    if !matches!(a.mode.as_str(), "batch" | "single") {
        anyhow::bail!("--mode must be `batch` or `single`, not `{}`", a.mode);
    }
    let spb = match a.format.as_str() {
        "json" => false,
        "sparkplug_b" => true,
        f => anyhow::bail!("--format must be `json` or `sparkplug_b`, not `{f}`"),
    };
    let (broker_kind, host, port, _guard) = match &a.mqtt {
        Some(hp) => {
            let (h, p) = hp.rsplit_once(':').context("--mqtt must be host:port")?;
            (
                "external",
                h.to_string(),
                p.parse::<u16>().context("--mqtt port")?,
                None,
            )
        }
        None => match spawn_mosquitto()? {
            Some((port, child)) => (
                "mosquitto",
                "127.0.0.1".to_string(),
                port,
                Some(KillOnDrop(child)),
            ),
            None => {
                let port = broker::free_port()?;
                broker::start_embedded(port)?;
                (
                    "embedded-rumqttd (in process)",
                    "127.0.0.1".to_string(),
                    port,
                    None,
                )
            }
        },
    };
    let total = a.readings;
    // Sparkplug births: one `device_online` and one reading per metric, per edge node.
    let births = if spb {
        SPB_NODES * (SPB_METRICS + 1)
    } else {
        0
    };
    let mut outbox_figures = serde_json::Value::Null;
    let outbox_dir = a.outbox.then(|| {
        std::env::temp_dir().join(format!("millwright-bench-outbox-{}", std::process::id()))
    });
    if let (Some(dir), Some(url)) = (&outbox_dir, &a.influx_url) {
        outbox_figures = outbox_phases(a, &host, port, url, dir, spb, total + births).await?;
    } else if a.outbox {
        anyhow::bail!("--outbox needs --influx-url");
    }
    let mut cfg = bench_config(&host, port, a.influx_url.as_deref(), a.readings, spb)
        .map_err(|p| anyhow::anyhow!("bench config: {p}"))?;
    if let (Some(i), Some(dir)) = (&mut cfg.influxdb, &outbox_dir) {
        i.outbox = Some(OutboxConfig::in_dir(dir.join("live")));
    }
    let node = Node::start(&cfg)?;
    let broker_pid = _guard.as_ref().map(|g| g.0.id());
    let other_cpu = |pid: Option<u32>| pid.and_then(procinfo::cpu_seconds_of);
    let (broker_cpu0, db_cpu0) = (other_cpu(broker_pid), other_cpu(a.db_pid));
    let (mut child, cpu0) = start_publisher(a, &node, &host, port).await?;
    let publisher_pid = child.id();
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut max_outbox = (0u64, 0u64);
    let done = loop {
        let got = node.readings.load(Ordering::Relaxed);
        if first.is_none() && got > 0 {
            first = Some(Instant::now());
        }
        let sunk = match &node.influx {
            Some(s) => {
                let b = s.outbox_bytes.load(Ordering::Relaxed);
                if b > max_outbox.0 {
                    max_outbox = (b, s.backlog_points.load(Ordering::Relaxed));
                }
                s.written_points.load(Ordering::Relaxed)
                    + s.dropped_points.load(Ordering::Relaxed)
                    + s.rejected_points.load(Ordering::Relaxed)
            }
            None => got,
        };
        if sunk >= total + births {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let elapsed = first.map(|f| f.elapsed()).unwrap_or_default().as_secs_f64();
    let cpu = procinfo::cpu_seconds().unwrap_or(0.0) - cpu0;
    // The other processes' CPU over the same run (the publisher is a zombie until waited for).
    let since = |now: Option<f64>, then: Option<f64>| Some(now? - then.unwrap_or(0.0));
    let publisher_cpu = other_cpu(publisher_pid);
    let broker_cpu = since(other_cpu(broker_pid), broker_cpu0);
    let db_cpu = since(other_cpu(a.db_pid), db_cpu0);
    let _ = child.wait().await;
    let rejected = node.mqtt.as_ref().map(|m| m.rejected()).unwrap_or(0);
    let out = serde_json::json!({
        "bench": "ingest",
        "mode": a.mode,
        "format": a.format,
        "readings": total,
        "readings_per_message": if a.mode == "batch" { a.batch } else { 1 },
        "complete": done,
        "elapsed_s": elapsed,
        "readings_per_s": if elapsed > 0.0 { total as f64 / elapsed } else { 0.0 },
        "messages_per_s": if elapsed > 0.0 { total as f64 / elapsed / if a.mode == "batch" { a.batch as f64 } else { 1.0 } } else { 0.0 },
        "peak_rss_mb": procinfo::peak_rss_mb(),
        "node_cpu_s": cpu,
        "node_cpu_us_per_reading": if total > 0 { cpu * 1e6 / total as f64 } else { 0.0 },
        "publisher_cpu_s": publisher_cpu,
        "broker_cpu_s": broker_cpu,
        "db_cpu_s": db_cpu,
        "db_cpu_us_per_reading": db_cpu.map(|c| if total > 0 { c * 1e6 / total as f64 } else { 0.0 }),
        "rejected": rejected,
        "sink": if a.influx_url.is_some() { "influxdb-v2-write" } else { "null" },
        "sink_written": node.influx.as_ref().map(|s| s.written_points.load(Ordering::Relaxed)),
        "sink_dropped": node.influx.as_ref().map(|s| s.dropped_points.load(Ordering::Relaxed)),
        "sink_rejected": node.influx.as_ref().map(|s| s.rejected_points.load(Ordering::Relaxed)),
        "sink_requests": node.influx.as_ref().map(|s| s.write_requests.load(Ordering::Relaxed)),
        "outbox": a.outbox,
        "outbox_peak_points": a.outbox.then_some(max_outbox.1),
        "outbox_peak_bytes": a.outbox.then_some(max_outbox.0),
        "outbox_phases": outbox_figures,
        "broker": broker_kind,
        "loadavg": procinfo::loadavg(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|k| k.trim().to_string()),
    });
    println!("{out}");
    node.shutdown().await;
    if let Some(d) = &outbox_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Waits for the node's subscription, then starts the publisher child process; returns it and
/// this process's CPU seconds at that moment.
async fn start_publisher(
    a: &BenchIngestArgs,
    node: &Node,
    host: &str,
    port: u16,
) -> anyhow::Result<(tokio::process::Child, f64)> {
    let t0 = Instant::now();
    while !node
        .mqtt
        .as_ref()
        .is_some_and(|m| m.connected.load(Ordering::Relaxed))
    {
        if t0.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("could not connect to the broker at {host}:{port}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    tracing::info!("subscribed; starting the publisher");
    let exe = std::env::current_exe()?;
    let child = tokio::process::Command::new(exe)
        .args([
            "bench",
            "ingest-publisher",
            "--broker",
            &format!("{host}:{port}"),
            "--mode",
            &a.mode,
            "--readings",
            &a.readings.to_string(),
            "--batch",
            &a.batch.to_string(),
            "--format",
            &a.format,
            "--publisher",
            &a.publisher,
        ])
        .kill_on_drop(true)
        .spawn()
        .context("starting the publisher process")?;
    Ok((child, procinfo::cpu_seconds().unwrap_or(0.0)))
}

/// `--outbox`, before the live run: (1) the burst into a database that is down (nothing
/// listens at the URL) until every reading is in the outbox — outbox bytes per reading and the
/// node's peak RSS; (2) a node without MQTT on the same outbox and the real database, replay
/// unthrottled — the replay rate.
async fn outbox_phases(
    a: &BenchIngestArgs,
    host: &str,
    port: u16,
    url: &str,
    dir: &std::path::Path,
    spb: bool,
    expect: u64,
) -> anyhow::Result<serde_json::Value> {
    let down_url = format!("http://127.0.0.1:{}", broker::free_port()?);
    let mut cfg = bench_config(host, port, Some(&down_url), a.readings, spb)
        .map_err(|p| anyhow::anyhow!("bench config: {p}"))?;
    cfg.node.shutdown_drain_s = 0;
    // Its own MQTT session: the live run's node must not inherit (and count) the messages this
    // node had stored but not yet acknowledged when it stopped.
    if let Some(m) = &mut cfg.mqtt {
        m.client_id = format!("millwright-bench-down-{}", std::process::id());
    }
    let mut oc = OutboxConfig::in_dir(dir.join("down"));
    oc.replay_points_per_s = 0;
    if let Some(i) = &mut cfg.influxdb {
        i.outbox = Some(oc.clone());
        i.retry_min_ms = 1000;
        i.retry_max_ms = 1000;
    }
    let node = Node::start(&cfg)?;
    let (mut child, cpu0) = start_publisher(a, &node, host, port).await?;
    let st = node.influx.clone().context("no influx writer")?;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(600);
    while st.backlog_points.load(Ordering::Relaxed) < expect && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let down_s = t0.elapsed().as_secs_f64();
    let down_cpu = procinfo::cpu_seconds().unwrap_or(0.0) - cpu0;
    let _ = child.wait().await;
    let points = st.backlog_points.load(Ordering::Relaxed);
    let bytes = st.outbox_bytes.load(Ordering::Relaxed);
    let disk = st.outbox_disk_bytes.load(Ordering::Relaxed);
    let rss_down = procinfo::peak_rss_mb();
    node.shutdown().await;

    // Replay into the real database (the node's only input a topic nobody publishes on).
    let mut cfg = bench_config(host, port, Some(url), a.readings, spb)
        .map_err(|p| anyhow::anyhow!("bench config: {p}"))?;
    if let Some(m) = &mut cfg.mqtt {
        m.client_id = format!("millwright-bench-replay-{}", std::process::id());
        for s in &mut m.subscriptions {
            s.topic = "bench-replay-idle/{asset}".into();
        }
    }
    if let Some(i) = &mut cfg.influxdb {
        i.outbox = Some(oc);
    }
    let db_cpu0 = a.db_pid.and_then(procinfo::cpu_seconds_of);
    let t0 = Instant::now();
    let node = Node::start(&cfg)?;
    let st = node.influx.clone().context("no influx writer")?;
    let recovered = st.outbox_recovered_points.load(Ordering::Relaxed);
    while st.backlog_points.load(Ordering::Relaxed) > 0 && t0.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let replay_s = t0.elapsed().as_secs_f64();
    let replayed = st.written_points.load(Ordering::Relaxed);
    let replay_db_cpu = a
        .db_pid
        .and_then(procinfo::cpu_seconds_of)
        .map(|c| c - db_cpu0.unwrap_or(0.0));
    node.shutdown().await;
    Ok(serde_json::json!({
        "db_down_points_in_outbox": points,
        "db_down_complete": points >= expect,
        "db_down_s": down_s,
        "db_down_readings_per_s": if down_s > 0.0 { points as f64 / down_s } else { 0.0 },
        "db_down_cpu_us_per_reading": if points > 0 { down_cpu * 1e6 / points as f64 } else { 0.0 },
        "outbox_bytes_per_reading": if points > 0 { bytes as f64 / points as f64 } else { 0.0 },
        "outbox_disk_bytes": disk,
        "peak_rss_mb_db_down": rss_down,
        "replay_recovered_points": recovered,
        "replay_written_points": replayed,
        "replay_s": replay_s,
        "replay_db_cpu_s": replay_db_cpu,
        "replay_readings_per_s": if replay_s > 0.0 { replayed as f64 / replay_s } else { 0.0 },
    }))
}

/// The node's config: the broker at `host:port` (clean session, `bench/{asset}` in JSON at
/// QoS 1), a small store, no status lines, InfluxDB at `influx_url` if given.
fn bench_config(
    host: &str,
    port: u16,
    influx_url: Option<&str>,
    readings: u64,
    sparkplug: bool,
) -> Result<Config, String> {
    let mut cfg = Config::for_site("bench");
    let mut mqtt = MqttConfig::new(host, port);
    mqtt.client_id = format!("millwright-bench-{}", std::process::id());
    mqtt.clean_session = false;
    let mut sub = if sparkplug {
        SubscriptionConfig::new("spBv1.0/bench/#", PayloadFormat::SparkplugB)
    } else {
        SubscriptionConfig::new("bench/{asset}", PayloadFormat::Json)
    };
    sub.qos = 1;
    mqtt.subscriptions.push(sub);
    cfg.mqtt = Some(mqtt);
    cfg.store.window_s = 60;
    cfg.store.max_points_per_sensor = 1000;
    cfg.node.status_interval_s = 0;
    cfg.influxdb = influx_url.map(|u| {
        let mut i = InfluxConfig::new(u, "bench", "bench", "");
        i.batch_size = 10_000;
        i.max_backlog_points = usize::try_from(readings.max(10_000)).unwrap_or(usize::MAX);
        i
    });
    cfg.checked()
}

/// Stops the benchmark's own broker when the benchmark ends, however it ends.
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn spawn_mosquitto() -> anyhow::Result<Option<(u16, std::process::Child)>> {
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(bin) = bin else { return Ok(None) };
    let port = broker::free_port()?;
    let dir = std::env::temp_dir().join(format!("millwright-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages 1000\n"),
    )?;
    let child = std::process::Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting mosquitto")?;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(Some((port, child)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    anyhow::bail!("mosquitto did not start on port {port}")
}

/// Sparkplug B edge nodes of the publisher.
pub const SPB_NODES: u64 = 20;
/// Metrics per edge node (aliases `0..SPB_METRICS`).
pub const SPB_METRICS: u64 = 10;

/// An NBIRTH (`data == None`) or an NDATA of `n` metrics from reading `first` on (in code: the benchmark's publisher, not the e2e tests' independent one).
fn spb_payload(seq: u64, ts0: u64, data: Option<(u64, usize)>) -> Vec<u8> {
    use millwright_ingest::mqtt::codec::sparkplug::proto::{Metric, MetricValue, Payload};
    let metric = |name: Option<String>, k: u64, ts: u64| Metric {
        name,
        alias: Some(k % SPB_METRICS),
        timestamp: Some(ts),
        datatype: Some(10),
        value: Some(MetricValue::DoubleValue((k % 1000) as f64 + 0.25)),
        ..Default::default()
    };
    let metrics = match data {
        None => (0..SPB_METRICS)
            .map(|k| metric(Some(format!("s{k}")), k, ts0))
            .collect(),
        Some((first, n)) => (0..n as u64)
            .map(|i| metric(None, first + i, ts0 + first + i))
            .collect(),
    };
    millwright_ingest::mqtt::codec::sparkplug::encode(&Payload {
        timestamp: Some(ts0),
        metrics,
        seq: Some(seq % 256),
        ..Default::default()
    })
}

/// Publisher side (the child process, `bench ingest-publisher`): sends the readings as fast as
/// the broker takes them (QoS 1).
pub async fn publish(a: &BenchPublisherArgs) -> anyhow::Result<()> {
    let (h, p) = a
        .broker
        .rsplit_once(':')
        .context("--broker must be host:port")?;
    let port: u16 = p.parse().context("--broker port")?;
    let per_msg = if a.mode == "batch" { a.batch.max(1) } else { 1 };
    let total = a.readings;
    let spb = a.format == "sparkplug_b";
    let msgs = total.div_ceil(per_msg as u64) + if spb { SPB_NODES } else { 0 };
    let first = i64::try_from(a.first).unwrap_or(0);
    let items = messages(total, per_msg, spb, first);
    let id = format!("millwright-bench-pub-{}", std::process::id());
    match a.publisher.as_str() {
        // One thread: the writer and the PUBACK reader never wake each other across cores.
        "lean" => {
            let h = h.to_string();
            tokio::task::spawn_blocking(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(publish_lean(&h, port, &id, items, msgs))
            })
            .await?
        }
        "rumqttc" => publish_rumqttc(h, port, &id, items, msgs).await,
        other => anyhow::bail!("--publisher {other}: expected lean or rumqttc"),
    }
}

/// The benchmark's messages, (topic, payload), in order.
type Messages = Box<dyn Iterator<Item = (String, Vec<u8>)> + Send>;

/// The benchmark's messages in order.
fn messages(total: u64, per_msg: usize, spb: bool, first: i64) -> Messages {
    use std::fmt::Write;
    let ts0: i64 = 1_700_000_000_000 + first;
    let data = total.div_ceil(per_msg as u64);
    if spb {
        let births = (0..SPB_NODES).map(move |node| {
            (
                format!("spBv1.0/bench/NBIRTH/A{node}"),
                spb_payload(0, ts0 as u64, None),
            )
        });
        let mut seq = vec![0u64; SPB_NODES as usize];
        let mut sent = 0u64;
        let ndata = (0..data).map(move |m| {
            let node = m % SPB_NODES;
            let n = per_msg.min(total.saturating_sub(sent) as usize);
            let s = seq.get_mut(node as usize).map_or(0, |s| {
                *s += 1;
                *s
            });
            let p = spb_payload(s, ts0 as u64, Some((sent, n)));
            sent += n as u64;
            (format!("spBv1.0/bench/NDATA/A{node}"), p)
        });
        return Box::new(births.chain(ndata));
    }
    let mut sent = 0u64;
    Box::new((0..data).map(move |m| {
        let n = per_msg.min(total.saturating_sub(sent) as usize);
        let mut payload = String::with_capacity(n * 64);
        if per_msg == 1 {
            let _ = write!(
                payload,
                r#"{{"signal":"s{}","value":{}.5,"ts_ms":{}}}"#,
                m % 10,
                m % 1000,
                ts0 + m as i64
            );
        } else {
            payload.push('[');
            for i in 0..n {
                let k = sent + i as u64;
                let _ = write!(
                    payload,
                    r#"{}{{"signal":"s{}","value":{}.25,"ts_ms":{}}}"#,
                    if i > 0 { "," } else { "" },
                    k % 10,
                    k % 1000,
                    ts0 + k as i64
                );
            }
            payload.push(']');
        }
        sent += n as u64;
        (format!("bench/A{}", m % 20), payload.into_bytes())
    }))
}

/// Unacknowledged publishes the lean publisher allows (as `set_inflight(1000)` with rumqttc).
const LEAN_WINDOW: usize = 1000;
/// The lean publisher writes once this much is encoded, or when its window is full.
const LEAN_WRITE_BYTES: usize = 16 << 10;

/// The lean load generator: MQTT 3.1.1 over plain TCP, encoded with rumqttc's own packet
/// codec; QoS 1 publishes are written back to back, many per socket write (up to
/// [`LEAN_WINDOW`] unacknowledged), and a reader task counts the PUBACKs. rumqttc's client
/// writes and flushes each publish on its own, which made the generator the largest consumer
/// of the two cores the benchmark shares with the broker, the node and the database.
async fn publish_lean(
    host: &str,
    port: u16,
    id: &str,
    items: Messages,
    msgs: u64,
) -> anyhow::Result<()> {
    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};
    use rumqttc::mqttbytes::QoS;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MAX: usize = 1 << 24;
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut out = BytesMut::with_capacity(LEAN_WRITE_BYTES * 2);
    let mut connect = Connect::new(id);
    connect.keep_alive = 0;
    connect.clean_session = true;
    Packet::Connect(connect)
        .write(&mut out, MAX)
        .map_err(|e| anyhow::anyhow!("encoding CONNECT: {e:?}"))?;
    wr.write_all(&out).await?;
    out.clear();
    // Reads one packet (CONNACK first, then PUBACKs).
    let mut inb = BytesMut::with_capacity(64 << 10);
    async fn next(
        rd: &mut tokio::net::tcp::OwnedReadHalf,
        inb: &mut BytesMut,
    ) -> anyhow::Result<Packet> {
        loop {
            match Packet::read(inb, MAX) {
                Ok(p) => return Ok(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                    if rd.read_buf(inb).await? == 0 {
                        anyhow::bail!("the broker closed the connection");
                    }
                }
                Err(e) => anyhow::bail!("reading from the broker: {e:?}"),
            }
        }
    }
    match next(&mut rd, &mut inb).await? {
        Packet::ConnAck(a) if a.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success => {}
        other => anyhow::bail!("the broker refused the connection: {other:?}"),
    }
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(LEAN_WINDOW));
    let w2 = window.clone();
    let reader = tokio::spawn(async move {
        let mut acked = 0u64;
        while acked < msgs {
            if let Packet::PubAck(_) = next(&mut rd, &mut inb).await? {
                acked += 1;
                w2.add_permits(1);
            }
        }
        anyhow::Ok(())
    });
    let mut pkid: u16 = 0;
    for (topic, payload) in items {
        let permit = match window.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                // The window is full: what is encoded goes out, then wait for PUBACKs.
                if !out.is_empty() {
                    wr.write_all(&out).await?;
                    out.clear();
                }
                window.acquire().await?
            }
        };
        permit.forget();
        pkid = pkid.checked_add(1).unwrap_or(1);
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload);
        p.pkid = pkid;
        Packet::Publish(p)
            .write(&mut out, MAX)
            .map_err(|e| anyhow::anyhow!("encoding PUBLISH: {e:?}"))?;
        if out.len() >= LEAN_WRITE_BYTES {
            wr.write_all(&out).await?;
            out.clear();
        }
    }
    if !out.is_empty() {
        wr.write_all(&out).await?;
        out.clear();
    }
    reader.await??;
    Packet::Disconnect
        .write(&mut out, MAX)
        .map_err(|e| anyhow::anyhow!("encoding DISCONNECT: {e:?}"))?;
    wr.write_all(&out).await?;
    wr.shutdown().await?;
    Ok(())
}

/// The load generator through rumqttc's client (one socket write per publish).
async fn publish_rumqttc(
    host: &str,
    port: u16,
    id: &str,
    items: Messages,
    msgs: u64,
) -> anyhow::Result<()> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
    let mut opts = MqttOptions::new(id, host, port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut el) = AsyncClient::new(opts, 10_000);
    let sender = tokio::spawn(async move {
        for (topic, payload) in items {
            if client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                break;
            }
        }
        client
    });
    // Drive the event loop until the broker has acknowledged every message, then disconnect:
    // dropping the connection earlier would lose publishes still in rumqttc's write buffer.
    let mut acked = 0u64;
    while acked < msgs {
        match el.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => {
                eprintln!("publisher: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let Ok(client) = sender.await {
        let _ = client.try_disconnect();
        for _ in 0..10 {
            if matches!(
                el.poll().await,
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)
            ) {
                break;
            }
        }
    }
    Ok(())
}
