//! Component tests of `MachineServer` over real TCP sockets with the tokio-modbus client:
//! physical ranges, fault effects, dead devices, request counting, holding writes, exceptions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use millwright_sensor::registers::{holding, input, loop_status, status, WordOrder};
use millwright_sim::{
    loop_channels, Fault, FaultKind, Function, MachineConfig, MachineKind, MachineServer,
};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn cfg(kind: MachineKind, name: &str, seed: u64, speed: f64, faults: Vec<Fault>) -> MachineConfig {
    MachineConfig {
        seed,
        faults,
        time_scale: speed,
        ..MachineConfig::new(kind, name, 1)
    }
}

async fn client(s: &MachineServer) -> Context {
    tcp::connect_slave(s.local_addr(), Slave(1)).await.unwrap()
}

async fn inputs(ctx: &mut Context) -> Vec<u16> {
    tokio::time::timeout(
        Duration::from_secs(2),
        ctx.read_input_registers(0, input::COUNT as u16),
    )
    .await
    .expect("read timed out")
    .expect("transport")
    .expect("exception")
}

/// Reads the input registers until `pred` holds (at most `secs` seconds); returns the last read.
async fn wait_for(ctx: &mut Context, secs: u64, pred: impl Fn(&[u16]) -> bool) -> Vec<u16> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let r = inputs(ctx).await;
        if pred(&r) || std::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn seq(r: &[u16]) -> u32 {
    WordOrder::Abcd.join([r[2], r[3]])
}

fn f32_at(r: &[u16], a: u16) -> f32 {
    let a = usize::from(a);
    f32::from_bits(WordOrder::Abcd.join([r[a], r[a + 1]]))
}

fn vel(r: &[u16]) -> f64 {
    f64::from(r[usize::from(input::VEL_RMS_OVERALL)]) / 100.0
}

fn temp(r: &[u16]) -> f64 {
    f64::from(r[usize::from(input::TEMPERATURE)] as i16) / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_machines_serve_physical_values_and_count_requests() {
    for (i, kind) in MachineKind::ALL.into_iter().enumerate() {
        let s = MachineServer::start(loopback(), cfg(kind, "M", i as u64 + 1, 1.0, vec![]))
            .await
            .unwrap();
        assert_ne!(s.local_addr().port(), 0);
        let mut ctx = client(&s).await;
        let r = inputs(&mut ctx).await;
        let st = r[usize::from(input::STATUS)];
        assert_ne!(st & status::DATA_VALID, 0, "{kind}: status {st:#06x}");
        assert_eq!(
            st & 0x01FF,
            0,
            "{kind}: no fault/alarm bits on a healthy machine: {st:#06x}"
        );
        assert!(
            (0.3..7.1).contains(&vel(&r)),
            "{kind}: velocity {}",
            vel(&r)
        );
        assert!(
            (25.0..90.0).contains(&temp(&r)),
            "{kind}: temperature {}",
            temp(&r)
        );
        let mc = WordOrder::Abcd.join([r[28], r[29]]) as i32;
        assert!(
            (f64::from(mc) / 1000.0 - temp(&r)).abs() < 0.006,
            "{kind}: i32 and i16 temperatures agree"
        );
        assert!(r[usize::from(input::KURTOSIS)] > 150 && r[usize::from(input::KURTOSIS)] < 600);
        for (c, ch) in loop_channels(kind).iter().enumerate() {
            let v = f32_at(&r, input::LOOP_VALUE[c]);
            assert!(
                v >= ch.lo && v <= ch.hi,
                "{kind}: {} = {v} outside {}..{}",
                ch.signal,
                ch.lo,
                ch.hi
            );
            let ma = f64::from(r[usize::from(input::LOOP_CURRENT[c])]) / 1000.0;
            let want = 4.0 + 16.0 * f64::from((v - ch.lo) / (ch.hi - ch.lo));
            assert!(
                (ma - want).abs() < 0.01,
                "{kind}: {} current {ma} mA vs value {v}",
                ch.signal
            );
        }
        let uptime = WordOrder::Cdab.join([r[4], r[5]]);
        assert!(uptime <= 2, "uptime {uptime}");
        let h = ctx
            .read_holding_registers(0, holding::COUNT as u16)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(h[usize::from(holding::VIB_ALARM)], 710);
        for (c, ch) in loop_channels(kind).iter().enumerate() {
            assert_eq!(f32_at(&h, holding::LOOP_LO[c]), ch.lo);
            assert_eq!(f32_at(&h, holding::LOOP_HI[c]), ch.hi);
        }
        // Out-of-map read: exception, still counted.
        let e = ctx.read_input_registers(25, 10).await.unwrap();
        assert_eq!(e, Err(ExceptionCode::IllegalDataAddress));
        let e = ctx.read_coils(0, 1).await.unwrap();
        assert_eq!(e, Err(ExceptionCode::IllegalFunction));
        assert_eq!(s.request_count(), 4);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_advances_in_accelerated_time() {
    let s = MachineServer::start(loopback(), cfg(MachineKind::Motor, "M-1", 4, 60.0, vec![]))
        .await
        .unwrap();
    let mut ctx = client(&s).await;
    let a = inputs(&mut ctx).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let b = inputs(&mut ctx).await;
    let up = |r: &[u16]| WordOrder::Cdab.join([r[4], r[5]]);
    assert!(seq(&b) >= seq(&a) + 5, "{} -> {}", seq(&a), seq(&b));
    assert_eq!(b[usize::from(input::HEARTBEAT)], seq(&b) as u16);
    assert!(
        up(&b) >= up(&a) + 25,
        "60x: 0.6 s real is ~36 s simulated: {} -> {}",
        up(&a),
        up(&b)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_move_the_right_signals_the_right_way() {
    let speed = 300.0;
    let wear = Fault {
        kind: FaultKind::BearingWear,
        onset_s: 0.0,
        ramp_s: 60.0,
    };
    let healthy =
        MachineServer::start(loopback(), cfg(MachineKind::Pump, "P-ok", 7, speed, vec![]))
            .await
            .unwrap();
    let worn = MachineServer::start(
        loopback(),
        cfg(MachineKind::Pump, "P-bw", 7, speed, vec![wear]),
    )
    .await
    .unwrap();
    let motor = MachineServer::start(
        loopback(),
        cfg(
            MachineKind::Motor,
            "M-hot",
            7,
            speed,
            vec![Fault {
                kind: FaultKind::Overheating,
                onset_s: 0.0,
                ramp_s: 0.0,
            }],
        ),
    )
    .await
    .unwrap();
    let motor_ok = MachineServer::start(
        loopback(),
        cfg(MachineKind::Motor, "M-ok", 7, speed, vec![]),
    )
    .await
    .unwrap();
    // ~2.5 real seconds = 750 simulated seconds: 2.5 bearing time constants.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (mut h, mut w) = (client(&healthy).await, client(&worn).await);
    let (rh, rw) = (inputs(&mut h).await, inputs(&mut w).await);
    assert!(
        vel(&rw) > 2.0 * vel(&rh),
        "bearing wear velocity {} vs {}",
        vel(&rw),
        vel(&rh)
    );
    assert!(vel(&rw) < 30.0, "plausible: {}", vel(&rw));
    assert!(
        rw[usize::from(input::KURTOSIS)] > rh[usize::from(input::KURTOSIS)],
        "impacts raise kurtosis: {} vs {}",
        rw[usize::from(input::KURTOSIS)],
        rh[usize::from(input::KURTOSIS)]
    );
    assert!(
        temp(&rw) > temp(&rh) + 10.0,
        "bearing temp {} vs {}",
        temp(&rw),
        temp(&rh)
    );
    assert_ne!(rw[0] & status::VIB_ALARM, 0);
    // Bearing wear leaves the process alone: discharge pressure within 10 %.
    let (ph, pw) = (
        f32_at(&rh, input::LOOP_VALUE[0]),
        f32_at(&rw, input::LOOP_VALUE[0]),
    );
    assert!((ph - pw).abs() < 0.1 * ph, "pressure {pw} vs {ph}");

    // Leak injected at runtime: discharge pressure drops on the next windows.
    worn.inject(Fault {
        kind: FaultKind::Leak,
        onset_s: 0.0,
        ramp_s: 0.0,
    });
    let rl = wait_for(&mut w, 10, |r| f32_at(r, input::LOOP_VALUE[0]) < 0.8 * ph).await;
    let pl = f32_at(&rl, input::LOOP_VALUE[0]);
    assert!(pl < 0.8 * ph, "leak pressure {pl} vs healthy {ph}");

    let (mut m, mut mo) = (client(&motor).await, client(&motor_ok).await);
    let (rm, rmo) = (inputs(&mut m).await, inputs(&mut mo).await);
    let (wt, wto) = (
        f32_at(&rm, input::LOOP_VALUE[2]),
        f32_at(&rmo, input::LOOP_VALUE[2]),
    );
    assert!(wt > wto + 25.0, "winding temperature {wt} vs {wto}");
    assert!(
        temp(&rm) > temp(&rmo) + 10.0,
        "motor bearing {} vs {}",
        temp(&rm),
        temp(&rmo)
    );
    for s in [healthy, worn, motor, motor_ok] {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_faults_are_flagged_not_hidden() {
    let faults = vec![
        Fault {
            kind: FaultKind::StuckSensor,
            onset_s: 0.0,
            ramp_s: 0.0,
        },
        Fault {
            kind: FaultKind::Dropout,
            onset_s: 0.0,
            ramp_s: 0.0,
        },
    ];
    // 20 windows per real second: TEMP_FROZEN needs 20 identical windows.
    let s = MachineServer::start(
        loopback(),
        cfg(MachineKind::Compressor, "C-1", 3, 100.0, faults),
    )
    .await
    .unwrap();
    let mut ctx = client(&s).await;
    let r = wait_for(&mut ctx, 10, |r| {
        r[usize::from(input::STATUS)] & status::TEMP_FROZEN != 0
    })
    .await;
    let st = r[usize::from(input::STATUS)];
    assert_ne!(st & status::TEMP_FROZEN, 0, "status {st:#06x}");
    assert_ne!(st & status::LOOP_FAULT, 0, "status {st:#06x}");
    let ls = r[usize::from(input::LOOP_STATUS)];
    // Full dropout severity: loop 0 reads 0 mA = NE43 failure, value NaN.
    assert_ne!(
        ls & loop_status::shift(loop_status::FAILURE, 0),
        0,
        "loop status {ls:#06x}"
    );
    assert!(f32_at(&r, input::LOOP_VALUE[0]).is_nan());
    assert_eq!(
        ls & loop_status::shift(0xF, 1),
        0,
        "other channels stay good: {ls:#06x}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_device_times_out_and_recovers() {
    let s = MachineServer::start(loopback(), cfg(MachineKind::Pump, "P-1", 1, 1.0, vec![]))
        .await
        .unwrap();
    let mut ctx = client(&s).await;
    inputs(&mut ctx).await;
    s.set_answering(false);
    let r = tokio::time::timeout(Duration::from_millis(300), ctx.read_input_registers(0, 4)).await;
    assert!(r.is_err(), "a dead device must not answer: {r:?}");
    // A new connection is accepted but not answered either.
    let mut other = client(&s).await;
    assert!(tokio::time::timeout(
        Duration::from_millis(200),
        other.read_holding_registers(0, 1)
    )
    .await
    .is_err());
    assert_eq!(
        s.request_count(),
        3,
        "unanswered requests are still counted"
    );
    s.set_answering(true);
    let mut fresh = client(&s).await;
    inputs(&mut fresh).await;
    assert_eq!(s.request_count(), 4);

    // The no_response fault does the same from its onset.
    s.inject(Fault {
        kind: FaultKind::NoResponse,
        onset_s: 0.0,
        ramp_s: 0.0,
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), fresh.read_input_registers(0, 1))
            .await
            .is_err()
    );
    let addr = s.local_addr();
    let mut live = client(&s).await;
    s.stop().await;
    assert!(
        tcp::connect_slave(addr, Slave(1)).await.is_err(),
        "listener closed after stop"
    );
    let r = tokio::time::timeout(Duration::from_secs(2), live.read_input_registers(0, 1)).await;
    assert!(
        matches!(r, Ok(Err(_))),
        "open connections are closed by stop (transport error, not a hang): {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holding_writes_unit_ids_gaps_and_slow_answers() {
    let mut c = cfg(MachineKind::Compressor, "C-2", 2, 1.0, vec![]);
    c.unit_id = 7;
    let s = MachineServer::start(loopback(), c).await.unwrap();
    // Wrong unit id: gateway exception; unit 7 and 255 answer.
    let mut wrong = tcp::connect_slave(s.local_addr(), Slave(3)).await.unwrap();
    assert_eq!(
        wrong.read_input_registers(0, 1).await.unwrap(),
        Err(ExceptionCode::GatewayTargetDevice)
    );
    let mut ctx = tcp::connect_slave(s.local_addr(), Slave(7)).await.unwrap();
    assert!(ctx.read_input_registers(0, 1).await.unwrap().is_ok());
    let mut dev = tcp::connect_slave(s.local_addr(), Slave(255))
        .await
        .unwrap();
    assert!(dev.read_input_registers(0, 1).await.unwrap().is_ok());

    // Rescale loop 3 (oil pressure) to 0..20 bar: the value doubles... relative to 4 mA.
    let before = ctx
        .read_input_registers(0, input::COUNT as u16)
        .await
        .unwrap()
        .unwrap();
    let lo = WordOrder::Abcd.split(0f32.to_bits());
    let hi = WordOrder::Abcd.split(20f32.to_bits());
    ctx.write_multiple_registers(holding::LOOP_LO[3], &[lo[0], lo[1], hi[0], hi[1]])
        .await
        .unwrap()
        .unwrap();
    let nan = WordOrder::Abcd.split(f32::NAN.to_bits());
    assert_eq!(
        ctx.write_multiple_registers(holding::LOOP_HI[3], &nan)
            .await
            .unwrap(),
        Err(ExceptionCode::IllegalDataValue)
    );
    ctx.write_single_register(holding::VIB_ALARM, 450)
        .await
        .unwrap()
        .unwrap();
    let h = ctx
        .read_holding_registers(0, holding::COUNT as u16)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h[usize::from(holding::VIB_ALARM)], 450);
    assert_eq!(f32_at(&h, holding::LOOP_HI[3]), 20.0);
    let after = wait_for(&mut ctx, 10, |r| seq(r) > seq(&before)).await;
    let (v0, v1) = (
        f32_at(&before, input::LOOP_VALUE[3]),
        f32_at(&after, input::LOOP_VALUE[3]),
    );
    assert!(
        (v1 / v0 - 2.0).abs() < 0.1,
        "oil pressure {v0} -> {v1} after doubling the span"
    );

    // A gap in the map: the coalesced read is refused, reads around it work.
    s.unmap(Function::Input, 15, 1);
    assert_eq!(
        ctx.read_input_registers(10, 10).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert!(ctx.read_input_registers(10, 5).await.unwrap().is_ok());
    assert!(ctx.read_input_registers(16, 4).await.unwrap().is_ok());

    // A slow device answers late.
    s.set_response_delay(Duration::from_millis(150));
    let t = std::time::Instant::now();
    ctx.read_input_registers(0, 2).await.unwrap().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    s.stop().await;
}

#[tokio::test]
async fn bad_config_is_refused() {
    let mut c = cfg(MachineKind::Pump, "P", 1, 0.0, vec![]);
    let e = MachineServer::start(loopback(), c.clone())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("time_scale"), "{e}");
    c.time_scale = 1.0;
    c.faults.push(Fault {
        kind: FaultKind::Leak,
        onset_s: f64::NAN,
        ramp_s: 0.0,
    });
    assert!(MachineServer::start(loopback(), c).await.is_err());
}
