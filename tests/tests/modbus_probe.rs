//! `millwright modbus probe` against a real tokio-modbus TCP server: the binary reads the raw
//! registers and ranks the decoding that matches the declared range first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use millwright_ingest::modbus::plan::Function;
use millwright_ingest::modbus::server::{ImageServer, RegisterImage};
use std::collections::HashMap;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_ranks_the_right_decoding_first() {
    // 21.5 (°C) as f32 word-swapped: 0x41AC_0000 -> [0x0000, 0x41AC].
    let mut img = RegisterImage::default();
    img.set(Function::Holding, 100, &[0x0000, 0x41AC]);
    img.set(Function::Input, 7, &[215]);
    let server = ImageServer::start_tcp("127.0.0.1:0".parse().unwrap(), HashMap::from([(3, img)]))
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let bin = millwright_e2e::millwright_bin();
    let run = |args: &[&str]| {
        let bin = bin.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || Command::new(bin).args(args).output().unwrap())
    };
    let out = run(&[
        "modbus",
        "probe",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--unit",
        "3",
        "--address",
        "100",
        "--count",
        "2",
        "--unit-symbol",
        "°C",
        "--min",
        "-20",
        "--max",
        "120",
    ])
    .join()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("0x41AC"), "raw registers are shown: {text}");
    let first = text
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap();
    assert!(
        first.contains("f32") && first.contains("CDAB") && first.contains("21.5"),
        "{text}"
    );
    assert!(
        text.lines().filter(|l| l.contains(" u32 ")).count() == 4,
        "all four orders of u32: {text}"
    );

    // Scaled input register, and a clear error for a missing register.
    let out = run(&[
        "modbus",
        "probe",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--unit",
        "3",
        "--function",
        "input",
        "--address",
        "7",
        "--count",
        "1",
        "--scale",
        "0.1",
        "--min",
        "0",
        "--max",
        "100",
    ])
    .join()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap();
    assert!(first.contains("u16") && first.contains("21.5"), "{text}");
    let out = run(&[
        "modbus",
        "probe",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--unit",
        "3",
        "--address",
        "500",
    ])
    .join()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("exception") && err.contains("500"),
        "{err}"
    );
}
