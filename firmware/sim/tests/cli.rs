//! Runs the `millwright-sim` binary: bad arguments fail with a message naming the bad text, a
//! good command line serves the machine over Modbus TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_modbus::prelude::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_millwright-sim"))
}

#[test]
fn bad_arguments_are_named() {
    for (args, needle) in [
        (
            vec!["--machine", "fan:F-1@127.0.0.1:5020"],
            "unknown machine kind `fan`",
        ),
        (
            vec![
                "--machine",
                "pump:P-1@127.0.0.1:5020",
                "--fault",
                "P-2:leak:10",
            ],
            "`P-2`",
        ),
        (
            vec![
                "--machine",
                "pump:P-1@127.0.0.1:5020",
                "--fault",
                "P-1:rust:10",
            ],
            "unknown fault kind `rust`",
        ),
        (
            vec!["--machine", "pump:P-1@127.0.0.1:5020", "--speed=0"],
            "time_scale",
        ),
        (vec![], "no machines"),
    ] {
        let out = bin().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {err}"
        );
    }
    let out = bin().args(["--print-map", "compressor"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("discharge_temp_c") && text.contains("CDAB"),
        "{text}"
    );
}

#[tokio::test]
async fn binary_serves_a_machine() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .args([
            "--machine",
            &format!("motor:M-9@127.0.0.1:{port}/4"),
            "--speed",
            "10",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ctx = loop {
        match tcp::connect_slave(addr, Slave(4)).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("simulator did not listen: {e}"),
        }
    };
    let r = ctx.read_input_registers(0, 30).await.unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ne!(r[0] & 0x8000, 0, "data valid");
    let speed_rpm = f32::from_bits((u32::from(r[18]) << 16) | u32::from(r[19]));
    assert!(
        (1400.0..1510.0).contains(&speed_rpm),
        "motor speed {speed_rpm}"
    );
}
