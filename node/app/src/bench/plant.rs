//! `millwright bench plant`: the simulated plant day. Three machines (pump P-101, motor M-201,
//! compressor C-301) run the real sensor firmware in the simulator with normal operating changes
//! (load and demand steps, a stop and restart, setpoint changes, a 20–32 °C ambient cycle); the
//! analytics library (`millwright_analytics::Analytics`) watches them in process on simulated
//! time. One fault-free day, and one run per fault kind the simulator can inject on each
//! machine, over several seeds. Prints one JSON line (the evaluation in `plant/eval.rs`);
//! `--verbose` adds a per-run table on stderr.
//!
//! The readings are what the node's Modbus poller makes of the simulated device: the sim's
//! register map restricted to the profile's signals (as `millwright demo` configures it),
//! decoded with ingest's `decode`; a device that stops answering (`no_response`) yields bad
//! readings on the poller's back-off schedule. Explanations use the template (no model).
//! Nothing here sleeps or opens a socket; the node's commands must not use it.

mod eval;

use crate::cli::BenchPlantArgs;
use millwright_analytics::{Analytics, Options, Output};
use millwright_core::schema::DEVICE_ONLINE_SIGNAL;
use millwright_core::{Quality, Reading, SensorId, Unit};
use millwright_ingest::modbus::decode::{decode, FieldType, RegisterOrder};
use millwright_profile::Profile;
use millwright_sim::machine::SimMachine;
use millwright_sim::{
    AmbientCycle, Fault, FaultKind, Function, MachineConfig, MachineKind, OperatingEvent,
    OperatingKind, RegisterValueType, WordOrder,
};
use millwright_store::{Store, StoreConfig};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub use eval::RunResult;

/// Simulated start of every run: 2026-01-05 00:00:00 UTC (a Monday), ns.
pub const T0_NS: i64 = 1_767_571_200 * 1_000_000_000;
/// A day, s.
pub const DAY_S: f64 = 86_400.0;
/// Fault onset: this long after the start plus a per-seed offset (after learning and the
/// first operating changes).
const ONSET_S: f64 = 2.0 * 3600.0;
/// A fault run lasts until this long after the onset.
const AFTER_ONSET_S: f64 = 3.0 * 3600.0;
/// The poller's longest back-off while a device does not answer, s.
const BACKOFF_MAX_S: f64 = 30.0;

/// `make demo` as `millwright demo` runs it (cmd/demo.rs): readings every 200 ms at 60× are
/// 12 plant seconds apart; baselines learn from 60 readings; machine seeds 7, 8, 9; no
/// operating events, a constant 25 °C, no dropout ticks (time-lapse); bearing wear on P-101
/// from 60 × 12 s + 120 s = 840 s over 1800 s; `DEMO_SECONDS` = 90 real s = 5400 plant s.
pub mod demo {
    /// Plant seconds between readings.
    pub const POLL_S: f64 = 12.0;
    /// Readings each baseline learns from.
    pub const LEARN_N: u32 = 60;
    /// Seed of the first machine (the others follow).
    pub const SEED: u64 = 7;
    /// Bearing-wear onset on P-101, plant s.
    pub const ONSET_S: f64 = 840.0;
    /// Its ramp, s.
    pub const RAMP_S: f64 = 1800.0;
    /// Length of `make demo`, plant s.
    pub const DURATION_S: f64 = 5400.0;
}

/// A machine of the simulated plant and its asset profile.
pub struct PlantMachine {
    /// Simulated machine kind.
    pub kind: MachineKind,
    /// Asset tag.
    pub asset: &'static str,
    /// Profile name.
    pub profile: &'static str,
    profile_toml: &'static str,
}

/// The plant: the same three machines and profiles as `millwright demo`.
pub const MACHINES: [PlantMachine; 3] = [
    PlantMachine {
        kind: MachineKind::Pump,
        asset: "P-101",
        profile: "centrifugal-pump",
        profile_toml: include_str!("../../../../pipelines/centrifugal-pump.toml"),
    },
    PlantMachine {
        kind: MachineKind::Motor,
        asset: "M-201",
        profile: "electric-motor",
        profile_toml: include_str!("../../../../pipelines/electric-motor.toml"),
    },
    PlantMachine {
        kind: MachineKind::Compressor,
        asset: "C-301",
        profile: "air-compressor",
        profile_toml: include_str!("../../../../pipelines/air-compressor.toml"),
    },
];

/// Every fault kind the simulator can inject.
pub const FAULTS: [FaultKind; 7] = [
    FaultKind::BearingWear,
    FaultKind::Cavitation,
    FaultKind::Overheating,
    FaultKind::StuckSensor,
    FaultKind::Dropout,
    FaultKind::Leak,
    FaultKind::NoResponse,
];

/// The failure mode of the profile a fault should be diagnosed as.
pub fn expected_mode(f: FaultKind) -> &'static str {
    match f {
        FaultKind::StuckSensor | FaultKind::Dropout | FaultKind::NoResponse => "sensor_fault",
        other => other.as_str(),
    }
}

/// Whether `fault` has an effect on a machine of `kind` that its profile can name: the
/// simulator models it there and the profile has the failure mode.
pub fn applies(kind: MachineKind, fault: FaultKind, profile: &Profile) -> bool {
    let modelled = match fault {
        FaultKind::Leak => kind != MachineKind::Motor,
        // Motor and compressor get broadband vibration only; their profiles have no mode.
        FaultKind::Cavitation => kind == MachineKind::Pump,
        _ => true,
    };
    modelled
        && profile
            .failure_modes
            .iter()
            .any(|m| m.id == expected_mode(fault))
}

/// Ramp of each fault from onset to full severity, s.
fn ramp_s(f: FaultKind) -> f64 {
    match f {
        FaultKind::BearingWear | FaultKind::Overheating => 1800.0,
        FaultKind::Cavitation => 300.0,
        FaultKind::Dropout => 600.0,
        FaultKind::Leak => 120.0,
        FaultKind::StuckSensor | FaultKind::NoResponse => 0.0,
    }
}

fn ev(h: f64, kind: OperatingKind) -> OperatingEvent {
    OperatingEvent {
        at_s: h * 3600.0,
        kind,
    }
}

/// The day's normal operating changes of a machine (hours after midnight): load/demand steps,
/// one stop and restart, setpoint changes.
pub fn day_events(kind: MachineKind) -> Vec<OperatingEvent> {
    use OperatingKind as K;
    match kind {
        MachineKind::Pump => vec![
            ev(1.0, K::Load { to: 0.65 }),
            ev(3.5, K::FlowSetpoint { m3_h: 150.0 }),
            ev(7.0, K::Load { to: 0.9 }),
            ev(10.0, K::Stop),
            ev(10.75, K::Start),
            ev(14.0, K::FlowSetpoint { m3_h: 110.0 }),
            ev(18.0, K::Load { to: 0.85 }),
            ev(22.0, K::Load { to: 0.7 }),
        ],
        MachineKind::Motor => vec![
            ev(1.5, K::Load { to: 0.55 }),
            ev(4.0, K::SpeedSetpoint { rpm: 1200.0 }),
            ev(6.0, K::Load { to: 0.85 }),
            ev(12.0, K::Stop),
            ev(12.5, K::Start),
            ev(13.0, K::SpeedSetpoint { rpm: 1500.0 }),
            ev(16.0, K::Load { to: 0.6 }),
            ev(20.0, K::Load { to: 0.9 }),
        ],
        MachineKind::Compressor => vec![
            ev(1.25, K::Load { to: 0.45 }),
            ev(
                3.0,
                K::PressureBand {
                    cut_in_bar: 7.0,
                    cut_out_bar: 8.0,
                },
            ),
            ev(9.0, K::Load { to: 0.75 }),
            ev(11.0, K::Stop),
            ev(11.67, K::Start),
            ev(15.0, K::Load { to: 0.55 }),
            ev(
                19.0,
                K::PressureBand {
                    cut_in_bar: 6.5,
                    cut_out_bar: 7.5,
                },
            ),
        ],
    }
}

/// One run: a machine, an optional fault, a seed, a length.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Index into [`MACHINES`].
    pub machine: usize,
    /// Injected fault (None: the fault-free day).
    pub fault: Option<Fault>,
    /// Simulator seed.
    pub seed: u64,
    /// Simulated length, s.
    pub duration_s: f64,
    /// The `make demo` scenario ([`demo`]) instead of the plant day's operation.
    pub demo: bool,
}

/// One input field: where the sim's register map puts a signal of the profile.
struct Field {
    sensor: SensorId,
    unit: Unit,
    holding: bool,
    address: usize,
    ty: FieldType,
    order: RegisterOrder,
    scale: f64,
}

/// The fields the node would poll: the machine's register map restricted to the profile's
/// signals (status bit fields are not readings).
fn fields(m: &PlantMachine, profile: &Profile) -> Vec<Field> {
    millwright_sim::register_map(m.kind)
        .iter()
        .filter(|d| profile.signal(d.signal).is_some())
        .filter_map(|d| {
            let ty = match d.data_type {
                RegisterValueType::U16 => FieldType::U16,
                RegisterValueType::I16 => FieldType::I16,
                RegisterValueType::U32 => FieldType::U32,
                RegisterValueType::I32 => FieldType::I32,
                RegisterValueType::F32 => FieldType::F32,
                RegisterValueType::Bits16 => return None,
            };
            Some(Field {
                sensor: SensorId::new(m.asset, d.signal),
                unit: Unit::new(d.unit),
                holding: d.function == Function::Holding,
                address: usize::from(d.address),
                ty,
                order: match d.word_order {
                    WordOrder::Abcd => RegisterOrder::ABCD,
                    WordOrder::Cdab => RegisterOrder::CDAB,
                },
                scale: d.scale,
            })
        })
        .collect()
}

/// Decodes the fields from the machine's registers as the poller does (good when finite).
fn read(m: &SimMachine, fields: &[Field], ts_ns: i64, out: &mut Vec<Reading>) {
    let (input, holding) = (m.input_registers(), m.holding_registers());
    for f in fields {
        let words: &[u16] = if f.holding { &holding } else { &input };
        let v = words
            .get(f.address..)
            .and_then(|w| decode(w, f.ty, f.order).ok())
            .and_then(|v| v.to_f64(f.scale, 0.0));
        out.push(Reading {
            sensor: f.sensor.clone(),
            ts_ns,
            value: v.unwrap_or(f64::NAN),
            unit: f.unit.clone(),
            quality: if v.is_some() {
                Quality::Good
            } else {
                Quality::Bad
            },
        });
    }
}

/// What the poller emits for a device that does not answer: every field bad.
fn bad(fields: &[Field], ts_ns: i64, out: &mut Vec<Reading>) {
    out.extend(fields.iter().map(|f| Reading {
        sensor: f.sensor.clone(),
        ts_ns,
        value: f64::NAN,
        unit: f.unit.clone(),
        quality: Quality::Bad,
    }));
}

fn online(asset: &str, ts_ns: i64, up: bool) -> Reading {
    Reading {
        sensor: SensorId::new(asset, DEVICE_ONLINE_SIGNAL),
        ts_ns,
        value: if up { 1.0 } else { 0.0 },
        unit: Unit::new(""),
        quality: Quality::Good,
    }
}

/// The profile text of a machine: embedded, or `<dir>/<profile>.toml` when a folder is given.
fn profile_text(m: &PlantMachine, dir: Option<&std::path::Path>) -> anyhow::Result<String> {
    match dir {
        Some(d) => {
            let p = d.join(format!("{}.toml", m.profile));
            std::fs::read_to_string(&p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
        }
        None => Ok(m.profile_toml.to_string()),
    }
}

/// The profile of a machine.
fn load_profile(m: &PlantMachine, dir: Option<&std::path::Path>) -> anyhow::Result<Profile> {
    Profile::from_toml_str(&profile_text(m, dir)?, m.profile).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The profile as `millwright demo` changes it: baselines learn from [`demo::LEARN_N`]
/// readings (the same text replacement).
fn demo_profile(m: &PlantMachine, dir: Option<&std::path::Path>) -> anyhow::Result<Profile> {
    let text =
        profile_text(m, dir)?.replace("learn_n = 300", &format!("learn_n = {}", demo::LEARN_N));
    Profile::from_toml_str(&text, m.profile).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs one machine on simulated time, feeding the analytics as the node does (store first,
/// then a batch and a tick per poll, the template explaining every request at once).
pub fn run_one(spec: &RunSpec, profile: &Profile, poll_s: f64) -> RunResult {
    let started = Instant::now();
    let pm = &MACHINES[spec.machine % MACHINES.len()];
    let mut cfg = MachineConfig::new(pm.kind, pm.asset, 1);
    cfg.seed = spec.seed;
    let (poll_s, tick) = if spec.demo {
        (demo::POLL_S, false)
    } else {
        cfg.events = day_events(pm.kind);
        cfg.ambient = Some(AmbientCycle::plant_day());
        (poll_s, true)
    };
    let no_response = spec
        .fault
        .filter(|f| f.kind == FaultKind::NoResponse)
        .map(|f| f.onset_s);
    cfg.faults
        .extend(spec.fault.filter(|f| f.kind != FaultKind::NoResponse));
    let mut machine = SimMachine::new(&cfg);
    let fields = fields(pm, profile);
    let mut store = Store::new(StoreConfig {
        window_s: 6 * 3600,
        ..StoreConfig::default()
    });
    let mut analytics = Analytics::new(
        Options::new("plant"),
        vec![(pm.asset.to_string(), profile.clone())],
    );
    let mut incidents = Vec::new();
    let (mut out, mut more, mut batch) = (Vec::new(), Vec::new(), Vec::new());
    let (mut next_try_s, mut backoff_s) = (0.0, poll_s);
    let mut was_online = false;
    let mut t = poll_s;
    let mut steps = 0u64;
    while t <= spec.duration_s {
        let ts_ns = T0_NS + (t * 1e9) as i64;
        machine.step_to(t);
        steps += 1;
        batch.clear();
        let answering = no_response.is_none_or(|onset| t < onset);
        if answering {
            if !was_online {
                batch.push(online(pm.asset, ts_ns, true));
            }
            was_online = true;
            read(&machine, &fields, ts_ns, &mut batch);
        } else if t >= next_try_s {
            // Timed out: the cycle's fields are bad, the device goes offline, back-off doubles.
            if was_online {
                batch.push(online(pm.asset, ts_ns, false));
                was_online = false;
            }
            bad(&fields, ts_ns, &mut batch);
            next_try_s = t + backoff_s;
            backoff_s = (backoff_s * 2.0).min(BACKOFF_MAX_S.max(poll_s));
        }
        if !batch.is_empty() {
            store.insert(&batch);
            analytics.on_batch(&batch, &store, &mut out);
        }
        if tick {
            analytics.on_tick(ts_ns, &store, &mut out);
        }
        while !out.is_empty() {
            for o in out.drain(..) {
                if let Output::Explain(req) = &o {
                    let card = req.explain(analytics.explainer(), None);
                    analytics.on_explained(card, &mut more);
                }
                if let Some(i) = eval::incident_of(&o, profile) {
                    incidents.push(i);
                }
            }
            std::mem::swap(&mut out, &mut more);
        }
        t += poll_s;
    }
    RunResult {
        asset: pm.asset,
        demo: spec.demo,
        fault: spec.fault,
        seed: spec.seed,
        duration_s: spec.duration_s,
        incidents,
        steps,
        wall_s: started.elapsed().as_secs_f64(),
    }
}

/// The runs of an evaluation: the `make demo` scenario, per seed the fault-free day of each
/// machine (for the first `--days` seeds) and one run per applicable fault.
fn specs(args: &BenchPlantArgs, profiles: &[Profile]) -> Vec<RunSpec> {
    let mut out: Vec<RunSpec> = (0..MACHINES.len())
        .map(|i| RunSpec {
            machine: i,
            fault: (i == 0).then_some(Fault {
                kind: FaultKind::BearingWear,
                onset_s: demo::ONSET_S,
                ramp_s: demo::RAMP_S,
            }),
            seed: demo::SEED + i as u64,
            duration_s: demo::DURATION_S,
            demo: true,
        })
        .collect();
    for (k, &seed) in args.seeds.iter().enumerate() {
        for (i, pm) in MACHINES.iter().enumerate() {
            let mseed = seed.wrapping_mul(31).wrapping_add(i as u64);
            if k < args.days {
                out.push(RunSpec {
                    machine: i,
                    fault: None,
                    seed: mseed,
                    duration_s: DAY_S,
                    demo: false,
                });
            }
            if args.no_faults {
                continue;
            }
            for f in FAULTS {
                if !applies(pm.kind, f, &profiles[i])
                    || args.fault.as_ref().is_some_and(|only| only != f.as_str())
                {
                    continue;
                }
                // A per-seed onset offset of up to 30 min, in 37 s steps.
                let onset_s = ONSET_S + (seed.wrapping_mul(7919) % 49) as f64 * 37.0;
                out.push(RunSpec {
                    machine: i,
                    fault: Some(Fault {
                        kind: f,
                        onset_s,
                        ramp_s: ramp_s(f),
                    }),
                    seed: mseed,
                    duration_s: onset_s + AFTER_ONSET_S,
                    demo: false,
                });
            }
        }
    }
    out
}

/// Runs `bench plant`.
pub fn run(args: &BenchPlantArgs) -> anyhow::Result<ExitCode> {
    if !(0.2..=15.0).contains(&args.poll_s) {
        anyhow::bail!("--poll-s {} is out of range (0.2..=15)", args.poll_s);
    }
    if args.seeds.is_empty() {
        anyhow::bail!("--seeds needs at least one seed");
    }
    let profiles = MACHINES
        .iter()
        .map(|m| load_profile(m, args.pipelines.as_deref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let demo_profiles = MACHINES
        .iter()
        .map(|m| demo_profile(m, args.pipelines.as_deref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let specs = specs(args, &profiles);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, RunResult)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.min(specs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(spec) = specs.get(i) else { break };
                let p = if spec.demo {
                    &demo_profiles[spec.machine]
                } else {
                    &profiles[spec.machine]
                };
                let r = run_one(spec, p, args.poll_s);
                if let Ok(mut v) = results.lock() {
                    v.push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let results: Vec<RunResult> = results.into_iter().map(|(_, r)| r).collect();
    let wall_s = started.elapsed().as_secs_f64();
    let summary = eval::summarize(&results, &profiles, args, wall_s, threads);
    if args.verbose {
        eprint!("{}", eval::table(&results));
    }
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}
