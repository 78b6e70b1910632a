//! Modbus ingest against real tokio-modbus servers over loopback TCP (the crate's own
//! register-image server): decoding of every type × order after scaling, the planner's request
//! count measured on the wire, exception-driven plan splits, gateways, reconnects, and 20 devices
//! of which one stops answering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{Batch, Quality, Reading};
use millwright_ingest::modbus::config::{
    DataType, DeviceConfig, FieldConfig, ModbusConfig, TransportKind,
};
use millwright_ingest::modbus::decode::{
    encode, encode_engineering, FieldType, RegisterOrder, Value,
};
use millwright_ingest::modbus::plan::Function;
use millwright_ingest::modbus::server::{ImageServer, RegisterImage};
use millwright_ingest::modbus::{spawn_devices, DEVICE_ONLINE_SIGNAL};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn field(signal: &str, function: Function, address: u16, ty: DataType) -> FieldConfig {
    FieldConfig {
        signal: signal.into(),
        asset: None,
        function,
        address,
        data_type: ty,
        bit: None,
        length_registers: None,
        order: RegisterOrder::ABCD,
        scale: 1.0,
        offset: 0.0,
        unit: String::new(),
    }
}

fn device(name: &str, addr: SocketAddr, unit_id: u8, fields: Vec<FieldConfig>) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        asset: name.to_uppercase(),
        transport: TransportKind::Tcp,
        host: Some(addr.ip().to_string()),
        port: Some(addr.port()),
        serial_path: None,
        baud_rate: None,
        parity: None,
        stop_bits: None,
        unit_id,
        poll_interval_ms: 100,
        timeout_ms: 40,
        retries: 1,
        backoff_max_ms: 400,
        max_gap_registers: 4,
        max_registers_per_request: 125,
        max_coils_per_request: 2000,
        fields,
    }
}

/// Collects every reading the pollers send.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Reading>>>);

impl Sink {
    fn start(mut rx: mpsc::Receiver<Batch>) -> (Self, Arc<Mutex<Vec<usize>>>) {
        let s = Sink::default();
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let (s2, sizes2) = (s.clone(), sizes.clone());
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                sizes2.lock().unwrap().push(b.len());
                s2.0.lock().unwrap().extend(b);
            }
        });
        (s, sizes)
    }
    fn all(&self) -> Vec<Reading> {
        self.0.lock().unwrap().clone()
    }
    fn latest(&self, asset: &str, signal: &str) -> Option<Reading> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| &*r.sensor.asset == asset && &*r.sensor.signal == signal)
            .cloned()
    }
    async fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&[Reading]) -> bool) {
        let t0 = Instant::now();
        loop {
            if f(&self.0.lock().unwrap()) {
                return;
            }
            assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Lays out big-endian bytes `A B C D …` in registers for `order`, written out by hand (not with
/// the crate's encoder, so a bug shared by encoder and decoder cannot hide).
fn layout(be: &[u8], order: RegisterOrder) -> Vec<u16> {
    let n = be.len();
    let perm: Vec<usize> = match (n, order) {
        (2, RegisterOrder::ABCD | RegisterOrder::CDAB) => vec![0, 1],
        (2, RegisterOrder::BADC | RegisterOrder::DCBA) => vec![1, 0],
        (4, RegisterOrder::ABCD) => vec![0, 1, 2, 3],
        (4, RegisterOrder::CDAB) => vec![2, 3, 0, 1],
        (4, RegisterOrder::BADC) => vec![1, 0, 3, 2],
        (4, RegisterOrder::DCBA) => vec![3, 2, 1, 0],
        (8, RegisterOrder::ABCD) => vec![0, 1, 2, 3, 4, 5, 6, 7],
        (8, RegisterOrder::CDAB) => vec![6, 7, 4, 5, 2, 3, 0, 1],
        (8, RegisterOrder::BADC) => vec![1, 0, 3, 2, 5, 4, 7, 6],
        (8, RegisterOrder::DCBA) => vec![7, 6, 5, 4, 3, 2, 1, 0],
        _ => unreachable!(),
    };
    let bytes: Vec<u8> = perm.iter().map(|&i| be[i]).collect();
    bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// Registers for an engineering value: raw = (value - offset) / scale, as the type's BE bytes.
fn raw_registers(
    value: f64,
    ty: FieldType,
    order: RegisterOrder,
    scale: f64,
    offset: f64,
) -> Vec<u16> {
    let raw = (value - offset) / scale;
    let be: Vec<u8> = match ty {
        FieldType::U16 => (raw.round() as u16).to_be_bytes().to_vec(),
        FieldType::I16 => (raw.round() as i16).to_be_bytes().to_vec(),
        FieldType::U32 => (raw.round() as u32).to_be_bytes().to_vec(),
        FieldType::I32 => (raw.round() as i32).to_be_bytes().to_vec(),
        FieldType::U64 => (raw.round() as u64).to_be_bytes().to_vec(),
        FieldType::I64 => (raw.round() as i64).to_be_bytes().to_vec(),
        FieldType::F32 => (raw as f32).to_be_bytes().to_vec(),
        FieldType::F64 => raw.to_be_bytes().to_vec(),
        _ => unreachable!(),
    };
    layout(&be, order)
}

#[test]
fn hand_layout_matches_the_crate_encoder() {
    // The crate's encoder agrees with the hand-written layout (and so with the decoder's inverse).
    for order in RegisterOrder::ALL {
        for ty in FieldType::NUMERIC {
            let v = if matches!(ty, FieldType::I16 | FieldType::I32 | FieldType::I64) {
                -1234.0
            } else {
                4321.0
            };
            assert_eq!(
                raw_registers(v, ty, order, 1.0, 0.0),
                encode_engineering(v, ty, order, 1.0, 0.0).unwrap(),
                "{ty:?} {order}"
            );
        }
    }
}

/// One field per type × order, with scale and offset, and the engineering value served for it.
fn every_type_and_order() -> (Vec<FieldConfig>, Vec<(String, f64)>, RegisterImage) {
    let mut fields = Vec::new();
    let mut expect = Vec::new();
    let mut img = RegisterImage::default();
    let mut addr = 0u16;
    let types = [
        (DataType::U16, FieldType::U16, 5432.0, 0.1, 0.0),
        (DataType::I16, FieldType::I16, -123.4, 0.1, 0.0),
        (DataType::U32, FieldType::U32, 3_000_000.5, 0.5, 0.0),
        (DataType::I32, FieldType::I32, -2_000_000.0, 1.0, 100.0),
        (DataType::U64, FieldType::U64, 9_007_199_254.0, 1.0, 0.0),
        (DataType::I64, FieldType::I64, -4_503_599_627.0, 1.0, -1.0),
        (DataType::F32, FieldType::F32, 21.5, 1.0, 0.0),
        (DataType::F64, FieldType::F64, -1234.5678, 2.0, 10.0),
    ];
    for (dt, ft, value, scale, offset) in types {
        for order in RegisterOrder::ALL {
            let signal = format!("{}_{}", ft.name(), order.as_str().to_lowercase());
            let mut f = field(&signal, Function::Holding, addr, dt);
            f.order = order;
            f.scale = scale;
            f.offset = offset;
            f.unit = "u".into();
            let words = raw_registers(value, ft, order, scale, offset);
            img.set(Function::Holding, addr, &words);
            addr += ft.registers();
            fields.push(f);
            expect.push((signal, value));
        }
    }
    // Bits of a status register, a register-as-bool, and coils / discrete inputs.
    img.set(Function::Holding, addr, &[0b1010_0000_0000_0101]);
    for (bit, want) in [
        (0u8, 1.0),
        (1, 0.0),
        (2, 1.0),
        (13, 1.0),
        (15, 1.0),
        (14, 0.0),
    ] {
        let mut f = field(
            &format!("status_bit{bit}"),
            Function::Holding,
            addr,
            DataType::Bit,
        );
        f.bit = Some(bit);
        fields.push(f);
        expect.push((format!("status_bit{bit}"), want));
    }
    fields.push(field(
        "status_nonzero",
        Function::Holding,
        addr,
        DataType::Bool,
    ));
    expect.push(("status_nonzero".into(), 1.0));
    addr += 1;
    // A string (serial number): read, never emitted.
    let sn = encode(
        &Value::Text("SN-42".into()),
        FieldType::Ascii(4),
        RegisterOrder::ABCD,
    )
    .unwrap();
    img.set(Function::Holding, addr, &sn);
    let mut s = field("serial_number", Function::Holding, addr, DataType::String);
    s.length_registers = Some(4);
    fields.push(s);
    // Input registers, coils, discrete inputs.
    img.set(Function::Input, 7, &[(-80i16) as u16]);
    let mut f = field("input_i16", Function::Input, 7, DataType::I16);
    f.scale = 0.5;
    fields.push(f);
    expect.push(("input_i16".into(), -40.0));
    img.set(Function::Coil, 3, &[1, 0]);
    fields.push(field("coil3", Function::Coil, 3, DataType::Bool));
    fields.push(field("coil4", Function::Coil, 4, DataType::Bool));
    expect.push(("coil3".into(), 1.0));
    expect.push(("coil4".into(), 0.0));
    img.set(Function::DiscreteInput, 100, &[1]);
    fields.push(field("di100", Function::DiscreteInput, 100, DataType::Bool));
    expect.push(("di100".into(), 1.0));
    (fields, expect, img)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_decodes_right_and_wire_count_equals_plan() {
    let (fields, expect, img) = every_type_and_order();
    let server = ImageServer::start_tcp(loopback(), HashMap::from([(1, img)]))
        .await
        .unwrap();
    let mut dev = device("dec", server.local_addr().unwrap(), 1, fields);
    dev.poll_interval_ms = 150;
    let cfg = ModbusConfig {
        devices: vec![dev.clone()],
    };
    assert_eq!(cfg.validate(), vec![]);
    let planned = dev.planned_request_count() as u64;
    // 85 holding registers in one read (≤ 125), input registers 1, coils 1, discrete inputs 1.
    assert_eq!(planned, 4);

    let (tx, mut rx) = mpsc::channel(16);
    let pollers = spawn_devices(&cfg, tx).unwrap();
    let mut got = Vec::new();
    for cycle in 1..=4u64 {
        let batch = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .unwrap()
            .unwrap();
        // The batch is sent at the end of a cycle; the next cycle starts 150 ms later.
        assert_eq!(
            server.request_count(),
            cycle * planned,
            "requests on the wire after cycle {cycle}"
        );
        got = batch;
    }
    pollers.shutdown().await;
    for (signal, want) in &expect {
        let r = got
            .iter()
            .find(|r| &*r.sensor.signal == signal)
            .unwrap_or_else(|| panic!("no {signal}"));
        assert_eq!(r.quality, Quality::Good, "{signal}");
        let tol = want.abs().max(1.0) * 1e-6;
        assert!(
            (r.value - want).abs() <= tol,
            "{signal}: got {} want {want}",
            r.value
        );
        assert_eq!(&*r.sensor.asset, "DEC");
    }
    assert!(
        got.iter().all(|r| &*r.sensor.signal != "serial_number"),
        "strings are not readings"
    );
    let fields_emitted = expect.len();
    assert_eq!(
        got.len(),
        fields_emitted,
        "one reading per numeric field (status only in cycle 1)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_on_coalesced_read_splits_and_keeps_good_fields() {
    let mut img = RegisterImage::default();
    img.set(Function::Holding, 0, &[10, 11, 12]);
    img.set(Function::Holding, 6, &[16, 17]);
    // Address 9 does not exist on this device.
    let server = ImageServer::start_tcp(loopback(), HashMap::from([(1, img)]))
        .await
        .unwrap();
    let fields: Vec<_> = [0u16, 1, 2, 6, 7, 9]
        .iter()
        .map(|a| field(&format!("r{a}"), Function::Holding, *a, DataType::U16))
        .collect();
    let mut dev = device("split", server.local_addr().unwrap(), 1, fields);
    dev.poll_interval_ms = 100;
    assert_eq!(dev.planned_request_count(), 1, "one coalesced read 0..10");
    let cfg = ModbusConfig { devices: vec![dev] };
    let (tx, rx) = mpsc::channel(16);
    let pollers = spawn_devices(&cfg, tx).unwrap();
    let (sink, sizes) = Sink::start(rx);
    sink.wait_for("three cycles", Duration::from_secs(3), |_| {
        sizes.lock().unwrap().len() >= 3
    })
    .await;
    // First cycle: 0..10 refused -> [0..3] ok + [6..10] refused -> [6..8] ok + [9] refused.
    let m = pollers.metrics.devices[0].clone();
    assert_eq!(m.plan_requests.load(Ordering::Relaxed), 3);
    let after_first = 5; // 1 + 1 + 1 + 1 + 1 requests in the first cycle
    let cycles = sizes.lock().unwrap().len() as u64;
    let wire = server.request_count();
    assert_eq!(
        wire,
        after_first + (cycles - 1) * 3,
        "split plan is remembered"
    );
    for (a, v) in [(0, 10.0), (1, 11.0), (2, 12.0), (6, 16.0), (7, 17.0)] {
        let r = sink.latest("SPLIT", &format!("r{a}")).unwrap();
        assert_eq!((r.quality, r.value), (Quality::Good, v), "r{a}");
    }
    let r9 = sink.latest("SPLIT", "r9").unwrap();
    assert_eq!(r9.quality, Quality::Bad);
    assert!(r9.value.is_nan(), "a bad reading never carries a value");
    assert!(sink
        .all()
        .iter()
        .filter(|r| &*r.sensor.signal == "r9")
        .all(|r| r.quality == Quality::Bad));
    let online = sink.latest("SPLIT", DEVICE_ONLINE_SIGNAL).unwrap();
    assert_eq!(online.value, 1.0, "exceptions keep the device online");
    assert!(!m.is_offline());
    assert!(m.exceptions.load(Ordering::Relaxed) >= 3 + (cycles - 1));
    pollers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_behind_one_gateway_share_a_connection() {
    let mut units = HashMap::new();
    for u in 1..=3u8 {
        let mut img = RegisterImage::default();
        img.set(Function::Input, 0, &[u16::from(u) * 100]);
        units.insert(u, img);
    }
    let server = ImageServer::start_tcp(loopback(), units).await.unwrap();
    let addr = server.local_addr().unwrap();
    let devices: Vec<_> = (1..=3u8)
        .map(|u| {
            device(
                &format!("unit{u}"),
                addr,
                u,
                vec![field("v", Function::Input, 0, DataType::U16)],
            )
        })
        .collect();
    let (tx, rx) = mpsc::channel(64);
    let pollers = spawn_devices(&ModbusConfig { devices }, tx).unwrap();
    let (sink, _) = Sink::start(rx);
    sink.wait_for("all units", Duration::from_secs(3), |rs| {
        (1..=3).all(|u| {
            rs.iter()
                .any(|r| *r.sensor.asset == format!("UNIT{u}") && &*r.sensor.signal == "v")
        })
    })
    .await;
    for u in 1..=3u16 {
        let r = sink.latest(&format!("UNIT{u}"), "v").unwrap();
        assert_eq!(r.value, f64::from(u * 100));
    }
    assert_eq!(
        server.connection_count(),
        1,
        "one gateway connection for three units"
    );
    let connects: u64 = pollers.metrics.total(|d| &d.connects);
    assert_eq!(connects, 1);
    pollers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_is_reconnected() {
    let mut img = RegisterImage::default();
    img.set(Function::Holding, 0, &[7]);
    let mut server = ImageServer::start_tcp(loopback(), HashMap::from([(1, img)]))
        .await
        .unwrap();
    let dev = device(
        "re",
        server.local_addr().unwrap(),
        1,
        vec![field("v", Function::Holding, 0, DataType::U16)],
    );
    let (tx, rx) = mpsc::channel(64);
    let pollers = spawn_devices(&ModbusConfig { devices: vec![dev] }, tx).unwrap();
    let (sink, _) = Sink::start(rx);
    let online = |v: f64| {
        move |rs: &[Reading]| {
            rs.iter()
                .rev()
                .find(|r| &*r.sensor.signal == DEVICE_ONLINE_SIGNAL)
                .is_some_and(|r| r.value == v)
        }
    };
    sink.wait_for("online", Duration::from_secs(2), online(1.0))
        .await;
    server.stop();
    let stopped = now_ns();
    sink.wait_for("offline", Duration::from_secs(2), online(0.0))
        .await;
    let off = sink.latest("RE", DEVICE_ONLINE_SIGNAL).unwrap();
    assert!(
        off.ts_ns - stopped <= 300_000_000,
        "offline within 3 poll intervals"
    );
    server.restart().await.unwrap();
    server.update(1, |img| img.set(Function::Holding, 0, &[8]));
    sink.wait_for("online again", Duration::from_secs(3), online(1.0))
        .await;
    sink.wait_for("new value", Duration::from_secs(2), |rs| {
        rs.iter()
            .rev()
            .find(|r| &*r.sensor.signal == "v")
            .is_some_and(|r| r.value == 8.0)
    })
    .await;
    assert!(pollers.metrics.devices[0].connects.load(Ordering::Relaxed) >= 2);
    pollers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_devices_one_stops_the_others_keep_their_rate() {
    const N: usize = 20;
    const POLL_MS: u64 = 100;
    let mut servers = Vec::new();
    let mut devices = Vec::new();
    for i in 0..N {
        let mut img = RegisterImage::default();
        let words: Vec<u16> = (0..10).map(|k| (i * 100 + k) as u16).collect();
        img.set(Function::Holding, 0, &words);
        let s = ImageServer::start_tcp(loopback(), HashMap::from([(1, img)]))
            .await
            .unwrap();
        let fields = (0..10)
            .map(|k| field(&format!("r{k}"), Function::Holding, k, DataType::U16))
            .collect();
        let mut d = device(&format!("d{i:02}"), s.local_addr().unwrap(), 1, fields);
        if i > 0 {
            // The healthy ones: the longest timeout the config allows (two tries within two
            // polls), so a short stall of the test's runtime is no timeout.
            d.timeout_ms = 100;
        }
        devices.push(d);
        servers.push(s);
    }
    let cfg = ModbusConfig { devices };
    let (tx, rx) = mpsc::channel(256);
    let pollers = spawn_devices(&cfg, tx).unwrap();
    let (sink, _) = Sink::start(rx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = pollers.metrics.clone();
    let cycles = |i: usize| m.devices[i].cycles.load(Ordering::Relaxed);
    assert!((0..N).all(|i| !m.devices[i].is_offline() && cycles(i) >= 3));

    // d00 stops answering (a hung device: its TCP connection stays open, requests time out).
    servers[0].set_answering(false);
    let stopped_ns = now_ns();
    let before: Vec<u64> = (0..N).map(cycles).collect();
    let t0 = Instant::now();
    sink.wait_for("d00 offline", Duration::from_secs(2), |rs| {
        rs.iter().any(|r| {
            &*r.sensor.asset == "D00" && &*r.sensor.signal == DEVICE_ONLINE_SIGNAL && r.value == 0.0
        })
    })
    .await;
    let off = sink
        .all()
        .into_iter()
        .find(|r| {
            &*r.sensor.asset == "D00" && &*r.sensor.signal == DEVICE_ONLINE_SIGNAL && r.value == 0.0
        })
        .unwrap();
    let detect_ms = (off.ts_ns - stopped_ns) as f64 / 1e6;
    assert!(
        detect_ms <= 3.0 * POLL_MS as f64,
        "offline after {detect_ms:.0} ms, limit 3 poll intervals"
    );
    assert!(m.devices[0].is_offline());

    // 4 s = 40 cycles: the ±1 cycle counted at the window edges stays inside 5 % (2 cycles).
    tokio::time::sleep(Duration::from_millis(4000).saturating_sub(t0.elapsed())).await;
    let window_s = t0.elapsed().as_secs_f64();
    let expected = window_s * 1000.0 / POLL_MS as f64;
    #[allow(clippy::needless_range_loop)]
    for i in 1..N {
        let n = (cycles(i) - before[i]) as f64;
        assert!(
            (n - expected).abs() <= 0.05 * expected,
            "d{i:02}: {n} cycles in {window_s:.2} s, expected {expected:.1} ± 5 %"
        );
        assert!(!m.devices[i].is_offline());
    }
    // No bad reading from a healthy device, and their values are right.
    let all = sink.all();
    assert!(all
        .iter()
        .filter(|r| &*r.sensor.asset != "D00")
        .all(|r| r.quality == Quality::Good));
    assert_eq!(sink.latest("D07", "r3").unwrap().value, 703.0);
    // d00's readings while hung are all bad.
    assert!(all
        .iter()
        .filter(|r| &*r.sensor.asset == "D00"
            && r.ts_ns > off.ts_ns
            && &*r.sensor.signal != DEVICE_ONLINE_SIGNAL)
        .all(|r| r.quality == Quality::Bad));

    // Restart: it comes back by itself (back-off is at most 400 ms here).
    servers[0].set_answering(true);
    let resumed_ns = now_ns();
    sink.wait_for("d00 online again", Duration::from_secs(10), |rs| {
        rs.iter().any(|r| {
            &*r.sensor.asset == "D00"
                && &*r.sensor.signal == DEVICE_ONLINE_SIGNAL
                && r.value == 1.0
                && r.ts_ns > resumed_ns
        })
    })
    .await;
    sink.wait_for("d00 good value", Duration::from_secs(5), |rs| {
        rs.iter().any(|r| {
            &*r.sensor.asset == "D00"
                && &*r.sensor.signal == "r5"
                && r.quality == Quality::Good
                && r.value == 5.0
                && r.ts_ns > resumed_ns
        })
    })
    .await;
    assert!(!m.devices[0].is_offline());
    assert_eq!(m.devices[0].offline_events.load(Ordering::Relaxed), 1);
    pollers.shutdown().await;
}

#[tokio::test]
async fn bad_config_is_refused_with_paths() {
    let mut dev = device("x", loopback(), 1, vec![]);
    dev.timeout_ms = 0;
    let (tx, _rx) = mpsc::channel(1);
    let err = spawn_devices(&ModbusConfig { devices: vec![dev] }, tx)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("modbus.devices[0].timeout_ms") && err.contains("modbus.devices[0].fields"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_over_tcp_reads_through_a_serial_device_server() {
    let mut img = RegisterImage::default();
    // -12.5 as f32 little-endian (DCBA) = 0xC148_0000 -> [0x0000, 0x48C1].
    img.set(Function::Input, 4, &[0x0000, 0x48C1]);
    let server = ImageServer::start_rtu_over_tcp(loopback(), HashMap::from([(9, img)]))
        .await
        .unwrap();
    let mut f = field("t", Function::Input, 4, DataType::F32);
    f.order = RegisterOrder::DCBA;
    let mut dev = device("gw", server.local_addr().unwrap(), 9, vec![f]);
    dev.transport = TransportKind::RtuOverTcp;
    let (tx, mut rx) = mpsc::channel(8);
    let pollers = spawn_devices(&ModbusConfig { devices: vec![dev] }, tx).unwrap();
    let b = tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let r = b.iter().find(|r| &*r.sensor.signal == "t").unwrap();
    assert_eq!((r.quality, r.value), (Quality::Good, -12.5));
    assert_eq!(server.request_count(), 1);
    pollers.shutdown().await;
}
