//! Modbus RTU over a real pseudo-terminal pair made by `socat`, with the real tokio-modbus RTU
//! server on one end and the node's poller on the other; two unit ids share the serial line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_core::{Batch, Quality};
use millwright_ingest::modbus::config::{
    DataType, DeviceConfig, FieldConfig, ModbusConfig, Parity, TransportKind,
};
use millwright_ingest::modbus::decode::RegisterOrder;
use millwright_ingest::modbus::plan::Function;
use millwright_ingest::modbus::server::{ImageServer, RegisterImage};
use millwright_ingest::modbus::{spawn_devices, DEVICE_ONLINE_SIGNAL};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A socat process linking two pseudo-terminals; killed on drop.
struct PtyPair {
    child: Child,
    a: String,
    b: String,
}

impl PtyPair {
    fn start() -> Self {
        let socat = ["/usr/bin/socat", "socat"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .arg("-V")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok()
            })
            .expect("socat is needed for the RTU test (apt-get install socat)");
        let mut child = Command::new(socat)
            .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut ptys = Vec::new();
        while ptys.len() < 2 {
            let line = lines.next().expect("socat ended early").unwrap();
            if let Some(i) = line.find("PTY is ") {
                ptys.push(line[i + 7..].trim().to_string());
            }
        }
        // Keep draining socat's stderr so it never blocks.
        std::thread::spawn(move || for _ in lines {});
        PtyPair {
            child,
            a: ptys.remove(0),
            b: ptys.remove(0),
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rtu_device(name: &str, path: &str, unit_id: u8, fields: Vec<FieldConfig>) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        asset: name.into(),
        transport: TransportKind::Rtu,
        host: None,
        port: None,
        serial_path: Some(path.into()),
        baud_rate: Some(19200),
        parity: Some(Parity::None),
        stop_bits: Some(1),
        unit_id,
        poll_interval_ms: 100,
        timeout_ms: 80,
        retries: 1,
        backoff_max_ms: 400,
        max_gap_registers: 4,
        max_registers_per_request: 125,
        max_coils_per_request: 2000,
        fields,
    }
}

fn f(
    signal: &str,
    function: Function,
    address: u16,
    ty: DataType,
    order: RegisterOrder,
    scale: f64,
) -> FieldConfig {
    FieldConfig {
        signal: signal.into(),
        asset: None,
        function,
        address,
        data_type: ty,
        bit: None,
        length_registers: None,
        order,
        scale,
        offset: 0.0,
        unit: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_over_a_pseudo_terminal_pair() {
    let pty = PtyPair::start();
    let mut u1 = RegisterImage::default();
    // 123.25 as f32 big-endian = 0x42F6_8000; temperature 21.5 as i16 tenths; a coil.
    u1.set(Function::Holding, 0, &[0x42F6, 0x8000, 215]);
    u1.set(Function::Coil, 0, &[1]);
    let mut u2 = RegisterImage::default();
    // 70000 as u32 word-swapped (CDAB): low word first.
    u2.set(
        Function::Input,
        10,
        &[(70_000u32 & 0xFFFF) as u16, (70_000u32 >> 16) as u16],
    );
    let server = ImageServer::start_rtu(&pty.a, 19200, HashMap::from([(1, u1), (2, u2)])).unwrap();

    let devices = vec![
        rtu_device(
            "M1",
            &pty.b,
            1,
            vec![
                f(
                    "flow",
                    Function::Holding,
                    0,
                    DataType::F32,
                    RegisterOrder::ABCD,
                    1.0,
                ),
                f(
                    "temp_c",
                    Function::Holding,
                    2,
                    DataType::I16,
                    RegisterOrder::ABCD,
                    0.1,
                ),
                f(
                    "running",
                    Function::Coil,
                    0,
                    DataType::Bool,
                    RegisterOrder::ABCD,
                    1.0,
                ),
            ],
        ),
        rtu_device(
            "M2",
            &pty.b,
            2,
            vec![f(
                "count",
                Function::Input,
                10,
                DataType::U32,
                RegisterOrder::CDAB,
                1.0,
            )],
        ),
    ];
    let cfg = ModbusConfig { devices };
    assert_eq!(cfg.validate(), vec![]);
    let (tx, mut rx) = mpsc::channel::<Batch>(64);
    let pollers = spawn_devices(&cfg, tx).unwrap();
    let mut latest = HashMap::new();
    let t0 = Instant::now();
    while latest.len() < 6 && t0.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            for r in b {
                latest.insert(format!("{}/{}", r.sensor.asset, r.sensor.signal), r);
            }
        }
    }
    let get = |k: &str| {
        latest
            .get(k)
            .unwrap_or_else(|| panic!("no reading {k}: {:?}", latest.keys()))
    };
    for (k, v) in [
        ("M1/flow", 123.25),
        ("M1/temp_c", 21.5),
        ("M1/running", 1.0),
        ("M2/count", 70_000.0),
    ] {
        let r = get(k);
        assert_eq!(r.quality, Quality::Good, "{k}");
        assert!((r.value - v).abs() < 1e-9, "{k}: {} != {v}", r.value);
    }
    assert_eq!(get(&format!("M1/{DEVICE_ONLINE_SIGNAL}")).value, 1.0);
    assert_eq!(get(&format!("M2/{DEVICE_ONLINE_SIGNAL}")).value, 1.0);
    // M1 needs 2 reads (holding 0..3, coil 0), M2 one; all over the one serial line.
    assert!(server.request_count() >= 3);
    assert_eq!(
        pollers.metrics.total(|d| &d.connects),
        1,
        "one serial port for both units"
    );
    assert_eq!(pollers.metrics.total(|d| &d.timeouts), 0);
    pollers.shutdown().await;
}
