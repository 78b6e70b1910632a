//! Modbus ingest end to end against the machine simulator (`millwright-sim`, real tokio-modbus
//! TCP servers on loopback): every field of a simulated pump arrives in VictoriaMetrics with the
//! right value after scaling and word order; the planner's request count per cycle is what the
//! simulator counts on the wire; a device that rejects a coalesced read gets a split plan and
//! keeps delivering the fields that exist; of 20 machines one stops answering, the other 19 keep
//! their poll rate within 5 % and the stopped one is offline within 3 poll intervals and comes
//! back by itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{Batch, Quality, Reading};
use millwright_ingest::modbus::config::{
    DataType, DeviceConfig, FieldConfig, ModbusConfig, TransportKind,
};
use millwright_ingest::modbus::decode::RegisterOrder;
use millwright_ingest::modbus::plan::Function;
use millwright_ingest::modbus::{spawn_devices, DEVICE_ONLINE_SIGNAL};
use millwright_sim::{register_map, MachineConfig, MachineKind, MachineServer, RegisterDef};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The simulator's map as node config fields.
fn fields_of(map: &[RegisterDef]) -> Vec<FieldConfig> {
    map.iter()
        .map(|d| FieldConfig {
            signal: d.signal.to_string(),
            asset: None,
            function: match d.function {
                millwright_sim::Function::Input => Function::Input,
                millwright_sim::Function::Holding => Function::Holding,
            },
            address: d.address,
            data_type: match d.data_type {
                millwright_sim::RegisterValueType::U16
                | millwright_sim::RegisterValueType::Bits16 => DataType::U16,
                millwright_sim::RegisterValueType::I16 => DataType::I16,
                millwright_sim::RegisterValueType::U32 => DataType::U32,
                millwright_sim::RegisterValueType::I32 => DataType::I32,
                millwright_sim::RegisterValueType::F32 => DataType::F32,
            },
            bit: None,
            length_registers: None,
            order: match d.word_order {
                millwright_sim::WordOrder::Abcd => RegisterOrder::ABCD,
                millwright_sim::WordOrder::Cdab => RegisterOrder::CDAB,
            },
            scale: d.scale,
            offset: 0.0,
            unit: d.unit.to_string(),
        })
        .collect()
}

/// The value a register definition holds in `table`, decoded here by hand (independently of the
/// node's decoder): words in the definition's order, then × scale.
fn expected(d: &RegisterDef, table: &[u16]) -> f64 {
    let a = usize::from(d.address);
    let w0 = table[a];
    let two = || {
        let w1 = table[a + 1];
        match d.word_order {
            millwright_sim::WordOrder::Abcd => (u32::from(w0) << 16) | u32::from(w1),
            millwright_sim::WordOrder::Cdab => (u32::from(w1) << 16) | u32::from(w0),
        }
    };
    let raw = match d.data_type {
        millwright_sim::RegisterValueType::U16 | millwright_sim::RegisterValueType::Bits16 => {
            f64::from(w0)
        }
        millwright_sim::RegisterValueType::I16 => f64::from(w0 as i16),
        millwright_sim::RegisterValueType::U32 => f64::from(two()),
        millwright_sim::RegisterValueType::I32 => f64::from(two() as i32),
        millwright_sim::RegisterValueType::F32 => f64::from(f32::from_bits(two())),
    };
    raw * d.scale
}

fn device(
    name: &str,
    addr: SocketAddr,
    unit_id: u8,
    poll_ms: u64,
    fields: Vec<FieldConfig>,
) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        asset: name.into(),
        transport: TransportKind::Tcp,
        host: Some(addr.ip().to_string()),
        port: Some(addr.port()),
        serial_path: None,
        baud_rate: None,
        parity: None,
        stop_bits: None,
        unit_id,
        poll_interval_ms: poll_ms,
        timeout_ms: poll_ms * 2 / 5,
        retries: 1,
        backoff_max_ms: poll_ms * 4,
        max_gap_registers: 4,
        max_registers_per_request: 125,
        max_coils_per_request: 2000,
        fields,
    }
}

async fn machine(kind: MachineKind, name: &str) -> MachineServer {
    let cfg = MachineConfig::new(kind, name, 1);
    MachineServer::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pump_fields_reach_victoriametrics_with_right_values_and_planned_request_count() {
    let vm = millwright_e2e::victoria();
    let asset = format!("MB-E2E-{}", std::process::id());
    let server = machine(MachineKind::Pump, &asset).await;
    let map = register_map(MachineKind::Pump);
    let dev = device(&asset, server.local_addr(), 1, 250, fields_of(map));
    let cfg = ModbusConfig {
        devices: vec![dev.clone()],
    };
    assert_eq!(cfg.validate(), vec![]);
    let planned = dev.planned_request_count() as u64;
    assert!(
        planned >= 2 && planned < map.len() as u64 / 5,
        "planned {planned} for {} fields",
        map.len()
    );

    let mut influx = millwright_sinks::influx::InfluxConfig::new(&vm, "mw", "mw", "");
    influx.flush_interval_ms = 100;
    let (writer, _task) =
        millwright_sinks::influx::InfluxWriter::spawn(influx, "e2e".into()).unwrap();

    let (tx, mut rx) = mpsc::channel::<Batch>(16);
    let pollers = spawn_devices(&cfg, tx).unwrap();
    // Cycle by cycle: the wire count equals the plan; keep a batch whose registers did not
    // change while it was read (the simulator refreshes its registers once per second).
    let mut checked: Option<(Batch, Vec<u16>)> = None;
    let mut cycle = 0u64;
    let t0 = Instant::now();
    while checked.is_none() || cycle < 4 {
        assert!(t0.elapsed() < Duration::from_secs(15), "no stable cycle");
        let before = server.input_registers();
        let batch = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .unwrap()
            .unwrap();
        cycle += 1;
        assert_eq!(
            server.request_count(),
            cycle * planned,
            "requests on the wire after cycle {cycle}"
        );
        let after = server.input_registers();
        writer.write(batch.clone()).await.unwrap();
        if before == after && checked.is_none() && cycle > 1 {
            checked = Some((batch, after));
        }
    }
    pollers.shutdown().await;
    let (batch, input) = checked.unwrap();
    // Holding registers (configuration) are read raw, once, and decoded by hand.
    let holding_end = map
        .iter()
        .filter(|d| d.function == millwright_sim::Function::Holding)
        .map(|d| {
            d.address
                + if d.data_type.name().contains("32") {
                    2
                } else {
                    1
                }
        })
        .max()
        .unwrap_or(0);
    let holding = match millwright_ingest::modbus::transport::read_once(
        millwright_ingest::modbus::config::Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: server.local_addr().port(),
        },
        1,
        Function::Holding,
        0,
        holding_end.min(125),
        Duration::from_secs(1),
    )
    .await
    {
        Ok(Ok(millwright_ingest::modbus::transport::ReadData::Words(w))) => w,
        other => panic!("raw holding read: {other:?}"),
    };
    let by_signal: HashMap<&str, &Reading> = batch.iter().map(|r| (&*r.sensor.signal, r)).collect();
    let mut compared = 0;
    for d in map {
        let table: &[u16] = if d.function == millwright_sim::Function::Input {
            &input
        } else {
            &holding
        };
        if usize::from(d.address) + 2 > table.len() && d.data_type.name().contains("32") {
            continue;
        }
        let want = expected(d, table);
        let r = by_signal
            .get(d.signal)
            .unwrap_or_else(|| panic!("no reading for {}", d.signal));
        if !want.is_finite() {
            assert_eq!(
                r.quality,
                Quality::Bad,
                "{}: a non-finite value must be bad",
                d.signal
            );
            continue;
        }
        assert_eq!(r.quality, Quality::Good, "{}", d.signal);
        assert!(
            (r.value - want).abs() <= want.abs() * 1e-12,
            "{}: node {} != sim {want}",
            d.signal,
            r.value
        );
        compared += 1;
    }
    assert!(
        compared >= map.len() - 2,
        "compared {compared} of {} fields",
        map.len()
    );

    // The same values in VictoriaMetrics, at the same timestamps.
    let goods: Vec<&Reading> = batch
        .iter()
        .filter(|r| r.quality == Quality::Good)
        .collect();
    let selector = format!("{{asset=\"{asset}\"}}");
    let t0 = Instant::now();
    loop {
        let series =
            millwright_e2e::vm_wait_for(&vm, &selector, goods.len() * 4, Duration::from_secs(10));
        let missing: Vec<String> = goods
            .iter()
            .filter(|r| {
                let name = format!("{}_value", r.sensor.signal);
                let ts_ms = r.ts_ns / 1_000_000;
                !series.iter().any(|s| {
                    s.metric.get("__name__") == Some(&name)
                        && s.timestamps_ms.iter().zip(&s.values).any(|(t, v)| {
                            *t == ts_ms && (v - r.value).abs() <= r.value.abs() * 1e-12
                        })
                })
            })
            .map(|r| r.sensor.signal.to_string())
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "not in VictoriaMetrics with the right value: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_device_rejecting_a_coalesced_read_gets_a_split_plan() {
    let server = machine(MachineKind::Motor, "MB-SPLIT").await;
    let map = register_map(MachineKind::Motor);
    // The device stops implementing one input field in the middle of its map.
    let inputs: Vec<&RegisterDef> = map
        .iter()
        .filter(|d| d.function == millwright_sim::Function::Input)
        .collect();
    let gone = inputs[inputs.len() / 2];
    let width = if gone.data_type.name().contains("32") {
        2
    } else {
        1
    };
    server.unmap(millwright_sim::Function::Input, gone.address, width);
    let dev = device("MB-SPLIT", server.local_addr(), 1, 200, fields_of(map));
    let planned = dev.planned_request_count() as u64;
    let (tx, mut rx) = mpsc::channel::<Batch>(16);
    let pollers = spawn_devices(&ModbusConfig { devices: vec![dev] }, tx).unwrap();
    let mut last = Vec::new();
    for _ in 0..3 {
        last = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .unwrap()
            .unwrap();
    }
    let m = pollers.metrics.devices[0].clone();
    let plan_now = m.plan_requests.load(Ordering::Relaxed);
    assert!(plan_now > planned, "plan split: {planned} -> {plan_now}");
    // Steady state: the split plan is kept (the wire count per cycle is the new plan's).
    let w0 = server.request_count();
    last = tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .chain(last)
        .collect();
    assert_eq!(
        server.request_count() - w0,
        plan_now,
        "requests per cycle after the split"
    );
    for d in &inputs {
        let r = last.iter().find(|r| &*r.sensor.signal == d.signal).unwrap();
        if d.address == gone.address {
            assert_eq!(r.quality, Quality::Bad, "{} is not implemented", d.signal);
            assert!(r.value.is_nan());
        } else {
            assert_eq!(r.quality, Quality::Good, "{} keeps arriving", d.signal);
        }
    }
    assert!(!m.is_offline());
    pollers.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_machines_one_stops_answering() {
    const N: usize = 20;
    // 100 ms and a 4 s window: 40 cycles, so the ±1 cycle of counting at the window edges
    // stays well inside the 5 % (2 cycles) allowed.
    const POLL_MS: u64 = 100;
    let kinds = [
        MachineKind::Pump,
        MachineKind::Motor,
        MachineKind::Compressor,
    ];
    let mut servers = Vec::new();
    let mut devices = Vec::new();
    for i in 0..N {
        let kind = kinds[i % 3];
        let name = format!("MB-{i:02}");
        let s = machine(kind, &name).await;
        let mut d = device(
            &name,
            s.local_addr(),
            1,
            POLL_MS,
            fields_of(register_map(kind)),
        );
        if i > 0 {
            // The healthy ones: the longest timeout the config allows (two tries within two
            // polls), so a short stall of the test's runtime is no timeout.
            d.timeout_ms = 100;
        }
        devices.push(d);
        servers.push(s);
    }
    let (tx, mut rx) = mpsc::channel::<Batch>(256);
    let pollers = spawn_devices(&ModbusConfig { devices }, tx).unwrap();
    let readings: Arc<Mutex<Vec<Reading>>> = Arc::default();
    let r2 = readings.clone();
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            r2.lock().unwrap().extend(b.into_iter().filter(|r| {
                &*r.sensor.signal == DEVICE_ONLINE_SIGNAL || r.quality == Quality::Bad
            }));
        }
    });
    let status = |v: f64, after: i64| {
        readings
            .lock()
            .unwrap()
            .iter()
            .find(|r| {
                &*r.sensor.asset == "MB-00"
                    && &*r.sensor.signal == DEVICE_ONLINE_SIGNAL
                    && r.value == v
                    && r.ts_ns > after
            })
            .cloned()
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let m = pollers.metrics.clone();
    let cycles = |i: usize| m.devices[i].cycles.load(Ordering::Relaxed);
    assert!(m.offline_devices().is_empty());

    servers[0].set_answering(false);
    let stopped = now_ns();
    let before: Vec<u64> = (0..N).map(cycles).collect();
    let t0 = Instant::now();
    let off = loop {
        if let Some(r) = status(0.0, 0) {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "MB-00 never reported offline"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let detect_ms = (off.ts_ns - stopped) as f64 / 1e6;
    assert!(
        detect_ms <= 3.0 * POLL_MS as f64,
        "offline after {detect_ms:.0} ms > 3 poll intervals"
    );
    tokio::time::sleep(Duration::from_millis(4000).saturating_sub(t0.elapsed())).await;
    let window_s = t0.elapsed().as_secs_f64();
    let expected = window_s * 1000.0 / POLL_MS as f64;
    #[allow(clippy::needless_range_loop)]
    for i in 1..N {
        let n = (cycles(i) - before[i]) as f64;
        assert!(
            (n - expected).abs() <= 0.05 * expected,
            "MB-{i:02}: {n} cycles in {window_s:.2} s, expected {expected:.1} ± 5 %"
        );
    }
    assert_eq!(m.offline_devices(), vec!["MB-00".to_string()]);
    assert!(
        readings
            .lock()
            .unwrap()
            .iter()
            .all(|r| &*r.sensor.asset == "MB-00" || r.quality == Quality::Good),
        "healthy machines produced no bad reading"
    );

    servers[0].set_answering(true);
    let resumed = now_ns();
    let t1 = Instant::now();
    while status(1.0, resumed).is_none() {
        assert!(
            t1.elapsed() < Duration::from_secs(3),
            "MB-00 did not come back by itself"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(m.offline_devices().is_empty());
    pollers.shutdown().await;
    for s in servers {
        s.stop().await;
    }
}
