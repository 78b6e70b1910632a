//! Command-line interface: the subcommands a factory engineer runs.
//!
//! Only argument definitions live here; each command's work is in `cmd/` (benchmarks: `bench/`).
//! `demo` and `bench` exist only when the binary is built with the Cargo feature of that name
//! (both are default features; the lean production node has neither).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Millwright — an edge analytics node for machines and process plants.
///
/// It reads sensor data from MQTT and Modbus, keeps recent history, detects anomalies, explains
/// them with a small on-device language model, and writes everything to InfluxDB 2.
/// Nothing leaves the site except to the endpoints named in the config file.
#[derive(Debug, Parser)]
#[command(name = "millwright", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log filter, e.g. `info`, `debug`, `millwright_ingest=debug` (env MILLWRIGHT_LOG also works).
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    /// Write logs as JSON lines (for log collectors) instead of plain text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node with a config file (MQTT/Modbus in, detection, InfluxDB out).
    Run {
        /// Path of millwright.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file and report every problem with its place in the file; exits 1 on errors.
    CheckConfig {
        /// Path of millwright.toml.
        file: PathBuf,
    },
    /// Show the readings one MQTT payload (on stdin) gives under the config's subscriptions, or
    /// exactly why it gives none: the commissioning aid for JSON mappings and Sparkplug B.
    CheckPayload(CheckPayloadArgs),
    /// Ask the running node for a maintenance report of an asset (over MQTT) and print it.
    Report(ReportArgs),
    /// Ask the running node a question (over MQTT 5) and print its answer and evidence; exits 1
    /// on an error answer or when no answer comes in time.
    Ask(AskArgs),
    /// Run a self-contained demo: embedded broker, simulated machines, live view. Needs nothing installed.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Measure throughput, latency and memory; prints one JSON line.
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Modbus commissioning tools.
    #[command(subcommand)]
    Modbus(ModbusCommand),
    /// Back-test an asset profile on a historian export: CSV on stdin, `timestamp,anomaly_score` on stdout.
    Detect(DetectArgs),
    /// Print, as JSON, every measurement, tag, field and unit the node writes, and its metrics.
    Schema,
}

/// Options of `millwright report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The node's config file (for the broker and the site).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Asset tag, e.g. `P-101`.
    #[arg(long)]
    pub asset: String,
    /// Seconds to wait for the report.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
}

/// Options of `millwright ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question, e.g. "What was the max bearing temperature on P-101 in the last hour?".
    pub question: String,
    /// The node's config file (for the broker and the site).
    #[arg(long, short)]
    pub config: PathBuf,
    /// The asset the question is about (then "the pump" means this one).
    #[arg(long)]
    pub asset: Option<String>,
    /// Question id; the answer arrives on `<root>/<site>/answers/<id>` (default: a new one).
    #[arg(long)]
    pub id: Option<String>,
    /// Ask as this operator: publish on `<root>/<site>/ask/<operator>` (the broker's ACL
    /// should bind it to the logged-in user); default: plain `ask` (operator `anonymous`).
    #[arg(long)]
    pub operator: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
    /// Print the answer's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `millwright demo`.
#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// Seconds between screen refreshes of the live view.
    #[arg(long, default_value_t = 5)]
    pub refresh_s: u64,
    /// Time-lapse factor of the simulated plant (60: one plant hour per real minute).
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
}

/// Benchmarks.
#[cfg(feature = "bench")]
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// MQTT ingest end to end: publish to a broker, decode, store, sink. Measures readings/s and peak RSS.
    Ingest(BenchIngestArgs),
    /// Anomaly detectors: readings/s through all univariate detectors of a profile on one core,
    /// and explanation latency with the default model.
    Detect(BenchDetectArgs),
    /// Modbus polling: N devices × M registers at a fixed rate over loopback TCP. Measures
    /// registers/s, requests per cycle (on the wire) vs the planner's optimum and one-per-field,
    /// poll-cycle latency and the polling process's CPU.
    Modbus(BenchModbusArgs),
    /// On-device language model: load time, time to first token (60/400-token prompts and after
    /// a cached 300-token system prompt), prompt and decode tokens/s, peak RSS, CPU s per token.
    Model(BenchModelArgs),
    /// Simulated plant day: three machines with normal operating changes, a fault-free day and
    /// one run per injectable fault on simulated time; incidents, diagnosis, first action,
    /// detection delay and false incidents against the trust criteria (issue 10).
    Plant(BenchPlantArgs),
    /// Operator questions: answer latency p50/p95 at 1, 10 and 100 concurrent askers over MQTT
    /// with the real model, decode tokens/s at 1, 4 and 16 concurrent generations, and ingest
    /// readings/s with 100 askers over idle.
    Ask(BenchAskArgs),
    /// Publisher side of `bench ingest`, which runs it in a child process.
    #[command(hide = true)]
    IngestPublisher(BenchPublisherArgs),
    /// Device side of `bench modbus`, which runs it in a child process.
    #[command(hide = true)]
    ModbusServe(BenchModbusServeArgs),
}

/// Options of `millwright bench ask`.
#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchAskArgs {
    /// GGUF model file (default: env MILLWRIGHT_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Folder of the asset profiles.
    #[arg(long, default_value = "pipelines")]
    pub pipelines: PathBuf,
    /// Questions the single asker asks one after the other (for p50/p95 at 1).
    #[arg(long, default_value_t = 10)]
    pub questions: usize,
    /// Seconds ingest is measured per window (idle, with 100 askers, idle again).
    #[arg(long, default_value_t = 5.0)]
    pub ingest_s: f64,
    /// The model's kernel threads (`[model] threads`; default: all cores).
    #[arg(long)]
    pub model_threads: Option<usize>,
    /// The model threads' nice value (`[model] nice`; default: the node's default, 10).
    #[arg(long, default_value_t = crate::config::DEFAULT_MODEL_NICE)]
    pub model_nice: i32,
}

/// Options of `millwright bench plant`.
#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchPlantArgs {
    /// Simulator seeds; every fault runs once per seed.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Fault-free days: one per seed for the first N seeds.
    #[arg(long, default_value_t = 1)]
    pub days: usize,
    /// Simulated seconds between polls of each machine.
    #[arg(long, default_value_t = 2.0)]
    pub poll_s: f64,
    /// A fault counts as detected in time when its incident opens within this many simulated
    /// seconds of its onset.
    #[arg(long, default_value_t = 1800.0)]
    pub deadline_s: f64,
    /// Only this fault kind (e.g. `leak`).
    #[arg(long)]
    pub fault: Option<String>,
    /// Fault-free days only.
    #[arg(long)]
    pub no_faults: bool,
    /// Read the profiles from this folder instead of the built-in copies of `pipelines/`.
    #[arg(long)]
    pub pipelines: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Per-run table on stderr.
    #[arg(long)]
    pub verbose: bool,
}

/// Options of `millwright bench model`.
#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchModelArgs {
    /// GGUF model file (default: env MILLWRIGHT_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Kernel threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// In-memory weight format: `auto` (4/8-bit own kernels; fast, least RAM), `q8_0`
    /// (everything 8-bit), `native` (the file's types) or `f32` (most RAM).
    #[arg(long, default_value = "auto")]
    pub weights: String,
    /// Tokens to generate for the decode measurement.
    #[arg(long, default_value_t = 128)]
    pub decode_tokens: usize,
    /// Most capable kernel set to use, to measure what an older gateway gets: `auto`,
    /// `portable`, `avx2`, `avx512-vnni` or `avx-vnni` (never one the CPU lacks; default: env
    /// MILLWRIGHT_SLM_KERNELS, else auto).
    #[arg(long)]
    pub kernels: Option<String>,
}

/// Options of `millwright bench ingest`.
#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Broker to use as host:port (default: an embedded broker on loopback).
    #[arg(long)]
    pub mqtt: Option<String>,
    /// InfluxDB v2 write endpoint base URL to write into (default: count in a null sink).
    #[arg(long)]
    pub influx_url: Option<String>,
    /// Payload shape: `batch` (JSON array of readings per message) or `single` (one reading per message).
    #[arg(long, default_value = "batch")]
    pub mode: String,
    /// Readings to send in total.
    #[arg(long, default_value_t = 1_000_000)]
    pub readings: u64,
    /// Readings per message in `batch` mode.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Payload format: `json` (the node's schema) or `sparkplug_b` (20 edge nodes, births then
    /// NDATA by alias; birth readings are not counted in `readings`).
    #[arg(long, default_value = "json")]
    pub format: String,
    /// The load generator: `lean` (many QoS 1 publishes per socket write, like a gateway
    /// forwarding a fleet of sensors; it costs the shared cores about 1 µs a message) or
    /// `rumqttc` (rumqttc's client, one socket write per publish, about 6 µs a message).
    #[arg(long, default_value = "lean")]
    pub publisher: String,
    /// With the disk outbox (needs `--influx-url`): also measures the burst into a database
    /// that is down (outbox bytes per reading, peak RSS) and the replay rate after it.
    #[arg(long)]
    pub outbox: bool,
    /// Process id of the database (e.g. VictoriaMetrics on the same machine): its CPU seconds
    /// during the live run are reported as `db_cpu_s`, beside the node's, the publisher's and
    /// the benchmark's own broker's.
    #[arg(long)]
    pub db_pid: Option<u32>,
}

/// Options of `millwright detect`.
///
/// Input: CSV `timestamp,value` (or `timestamp,col1,col2,…`), optional header row; timestamps in
/// RFC 3339 or epoch seconds / milliseconds / microseconds / nanoseconds. Output: one
/// `timestamp,anomaly_score,flag` row per input row, each score from that row and the rows before
/// it. A row that cannot be scored keeps the previous score and is flagged (`bad_columns`,
/// `bad_timestamp`, `bad_value`, `time_backwards`) with `line N: …` on stderr (or stops the run
/// with --strict); a small backward time step is a `clock_correction`, scored in arrival order.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Asset profile: a name in the pipelines folder (e.g. `centrifugal-pump`) or a .toml path.
    #[arg(long)]
    pub profile: String,
    /// Signal(s) of the value column(s), comma-separated, in column order (default: the header row's names).
    #[arg(long)]
    pub signal: Vec<String>,
    /// Folder of the asset profiles.
    #[arg(long, default_value = "pipelines")]
    pub pipelines: PathBuf,
    /// Asset tag used in events.
    #[arg(long, default_value = "asset")]
    pub asset: String,
    /// Stop with exit code 1 at the first bad row instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Flush every output row (for live pipes such as `tail -f`).
    #[arg(long)]
    pub line_buffered: bool,
    /// Also write every anomaly event (opened/updated/closed) as a JSON line to this file.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Rows whose time goes back by up to this many seconds are clock corrections, scored in
    /// arrival order (default: the profile's `defaults.clock_tolerance_s`, 3600).
    #[arg(long)]
    pub clock_tolerance_s: Option<f64>,
}

/// Options of `millwright bench detect`.
#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchDetectArgs {
    /// Asset profile (name in the pipelines folder or a .toml path).
    #[arg(long, default_value = "centrifugal-pump")]
    pub profile: String,
    /// Folder of the asset profiles.
    #[arg(long, default_value = "pipelines")]
    pub pipelines: PathBuf,
    /// Readings to push through the detectors in total.
    #[arg(long, default_value_t = 30_000_000)]
    pub readings: u64,
    /// Model file for the explanation latency (default: env MILLWRIGHT_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Explanations to time.
    #[arg(long, default_value_t = 6)]
    pub explanations: usize,
    /// Skip the explanation latency.
    #[arg(long)]
    pub no_model: bool,
}

/// Modbus tools.
#[derive(Debug, Subcommand)]
pub enum ModbusCommand {
    /// Read raw registers once and show every type × byte/word-order decoding side by side,
    /// ranked by plausibility against the expected range, to pick the right one for the config.
    Probe(ModbusProbeArgs),
}

/// Options of `millwright modbus probe`.
#[derive(Debug, Args)]
pub struct ModbusProbeArgs {
    /// Device or gateway host (Modbus TCP; with --rtu-over-tcp, RTU frames over TCP).
    #[arg(long)]
    pub host: Option<String>,
    /// TCP port.
    #[arg(long, default_value_t = 502)]
    pub port: u16,
    /// Speak RTU framing over the TCP connection (serial device servers).
    #[arg(long)]
    pub rtu_over_tcp: bool,
    /// Serial device for Modbus RTU, e.g. /dev/ttyUSB0 (instead of --host); 8N1.
    #[arg(long)]
    pub serial: Option<String>,
    /// Serial speed in baud (with --serial).
    #[arg(long, default_value_t = 9600)]
    pub baud: u32,
    /// Unit (slave) id.
    #[arg(long, default_value_t = 1)]
    pub unit: u8,
    /// First register, zero-based protocol address (40001 is holding address 0).
    #[arg(long)]
    pub address: u16,
    /// Registers to read (1..=125); the value is decoded from the first register on.
    #[arg(long, default_value_t = 2)]
    pub count: u16,
    /// Register table: `holding` or `input`.
    #[arg(long, default_value = "holding")]
    pub function: String,
    /// Engineering unit symbol of the expected value, e.g. °C (display only).
    #[arg(long)]
    pub unit_symbol: Option<String>,
    /// Lowest plausible value (after --scale).
    #[arg(long, allow_negative_numbers = true)]
    pub min: Option<f64>,
    /// Highest plausible value (after --scale).
    #[arg(long, allow_negative_numbers = true)]
    pub max: Option<f64>,
    /// Multiplier applied to the raw value before the range check (e.g. 0.1 for tenths).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub scale: f64,
    /// Timeout of the read in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
}

/// Options of `millwright bench modbus`.
#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchModbusArgs {
    /// Simulated devices (one TCP server and connection each).
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Contiguous holding registers per device (f32, word-swapped u32 and scaled i16 fields).
    #[arg(long, default_value_t = 50)]
    pub registers: u16,
    /// Poll interval of every device in milliseconds (100 = 10 Hz).
    #[arg(long, default_value_t = 100)]
    pub poll_interval_ms: u64,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2)]
    pub warmup_s: u64,
    /// Devices: `sim` (simulated pumps, motors, compressors; their own ~48-register maps, so
    /// --registers is ignored) or `image` (register images of --registers contiguous registers).
    #[arg(long, default_value = "sim")]
    pub server: String,
}

/// Options of the hidden `millwright bench ingest-publisher` (the child of `bench ingest`).
#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchPublisherArgs {
    /// Broker to publish to as host:port.
    #[arg(long)]
    pub broker: String,
    /// Payload shape: `batch` or `single` (as `bench ingest --mode`).
    #[arg(long, default_value = "batch")]
    pub mode: String,
    /// Readings to send in total.
    #[arg(long)]
    pub readings: u64,
    /// Readings per message in `batch` mode.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Payload format: `json` or `sparkplug_b` (as `bench ingest --format`).
    #[arg(long, default_value = "json")]
    pub format: String,
    /// `lean` (many QoS 1 publishes per socket write, up to 1,000 unacknowledged) or
    /// `rumqttc` (rumqttc's client: one socket write per publish).
    #[arg(long, default_value = "lean")]
    pub publisher: String,
    /// Number of the first reading (JSON): its time is 1,700,000,000,000 ms + this, so rounds
    /// of `scripts/soak.sh` never overwrite each other.
    #[arg(long, default_value_t = 0)]
    pub first: u64,
}

/// Options of the hidden `millwright bench modbus-serve` (the child of `bench modbus`): serves
/// the devices, prints `PORTS p1,p2,…`, answers `count` on stdin with the requests received,
/// exits when stdin closes.
#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchModbusServeArgs {
    /// Devices to serve.
    #[arg(long)]
    pub devices: usize,
    /// Contiguous holding registers per device (`image` devices).
    #[arg(long, default_value_t = 50)]
    pub registers: u16,
    /// Devices: `sim` (simulated machines) or `image` (register images).
    #[arg(long, default_value = "sim")]
    pub server: String,
}

/// Options of `millwright check-payload`.
///
/// Reads one MQTT payload on stdin and shows the readings it gives under the config's
/// subscription for `--topic` (or exactly why it gives none). Exit code 0 with readings, 1 without.
#[derive(Debug, Args)]
pub struct CheckPayloadArgs {
    /// The node's config file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The topic the payload would arrive on, e.g. `tele/plug-7/SENSOR`.
    #[arg(long)]
    pub topic: String,
    /// Sparkplug B: a birth certificate (NBIRTH for node topics, DBIRTH for device topics) to
    /// read first, so that DATA by alias resolves.
    #[arg(long)]
    pub birth: Option<PathBuf>,
}
