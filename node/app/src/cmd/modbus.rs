//! `millwright modbus probe`, a commissioning aid: reads raw registers once and prints every
//! type × byte/word-order decoding, ranked by plausibility against the declared range
//! (`millwright_ingest::modbus::probe`). The poll benchmark, `bench modbus`, is `bench/modbus.rs`.

use crate::cli::ModbusProbeArgs;
use anyhow::bail;
use millwright_ingest::modbus::config::Endpoint;
use millwright_ingest::modbus::decode::FieldType;
use millwright_ingest::modbus::plan::Function;
use millwright_ingest::modbus::probe::{candidates, Expectation};
use millwright_ingest::modbus::transport::{read_once, ReadData};
use std::process::ExitCode;
use std::time::Duration;

/// `millwright modbus probe`.
pub async fn probe(a: &ModbusProbeArgs) -> anyhow::Result<ExitCode> {
    let endpoint = match (&a.host, &a.serial) {
        (Some(h), None) if a.rtu_over_tcp => Endpoint::RtuOverTcp {
            host: h.clone(),
            port: a.port,
        },
        (Some(h), None) => Endpoint::Tcp {
            host: h.clone(),
            port: a.port,
        },
        (None, Some(p)) => Endpoint::Rtu {
            path: p.clone(),
            baud_rate: a.baud,
            parity: 0,
            stop_bits: 1,
        },
        _ => bail!("give either --host (Modbus TCP, or RTU over TCP with --rtu-over-tcp) or --serial (RTU)"),
    };
    if a.count == 0 || a.count > 125 {
        bail!("--count must be 1..=125 registers, not {}", a.count);
    }
    if let (Some(lo), Some(hi)) = (a.min, a.max) {
        if lo > hi {
            bail!("--min ({lo}) is above --max ({hi})");
        }
    }
    if !a.scale.is_finite() || a.scale == 0.0 {
        bail!("--scale must be a finite non-zero number");
    }
    let function = match a.function.as_str() {
        "holding" => Function::Holding,
        "input" => Function::Input,
        other => bail!("--function must be `holding` or `input`, not `{other}`"),
    };
    let words = match read_once(
        endpoint.clone(),
        a.unit,
        function,
        a.address,
        a.count,
        Duration::from_millis(a.timeout_ms),
    )
    .await
    {
        Ok(Ok(ReadData::Words(w))) => w,
        Ok(Ok(ReadData::Bits(_))) => bail!("{endpoint} answered with bits to a register read"),
        Ok(Err(code)) => bail!(
            "{endpoint} unit {} refused {function} {}+{}: Modbus exception {code}",
            a.unit,
            a.address,
            a.count
        ),
        Err(e) => bail!("{e}"),
    };
    let unit = a.unit_symbol.clone().unwrap_or_default();
    println!(
        "{endpoint} unit {} {function} registers {}..{}:",
        a.unit,
        a.address,
        u32::from(a.address) + u32::from(a.count) - 1
    );
    for (i, w) in words.iter().enumerate() {
        println!(
            "  {:>5}  0x{w:04X}  {w:>5}  {:>6}",
            u32::from(a.address) + u32::try_from(i).unwrap_or(0),
            *w as i16
        );
    }
    let exp = Expectation {
        min: a.min,
        max: a.max,
        scale: a.scale,
    };
    let range = match (a.min, a.max) {
        (None, None) => "no range given: ranked by ordinary magnitude".to_string(),
        (lo, hi) => format!(
            "expected {} .. {} {unit}",
            lo.map_or("-inf".into(), |v| v.to_string()),
            hi.map_or("+inf".into(), |v| v.to_string())
        ),
    };
    println!(
        "\ndecodings from register {} (scale {}; {range}), most plausible first:",
        a.address, a.scale
    );
    println!(
        "  {:>4}  {:<8} {:<5} {:>28}  {:<8} {:>5}",
        "rank", "type", "order", "value", "range", "score"
    );
    for (rank, c) in candidates(&words, &exp).iter().enumerate() {
        let value = match (&c.value, &c.raw) {
            (Some(v), _) => format!("{v} {unit}"),
            (None, millwright_ingest::modbus::decode::Value::Text(t)) => format!("{t:?}"),
            (None, _) => "not finite".to_string(),
        };
        let ty = match c.ty {
            FieldType::Ascii(n) => format!("string{n}"),
            t => t.name().to_string(),
        };
        let in_range = match c.in_range {
            Some(true) => "in",
            Some(false) => "OUT",
            None => "-",
        };
        println!(
            "  {:>4}  {ty:<8} {:<5} {value:>28}  {in_range:<8} {:>5.2}",
            rank + 1,
            c.order.as_str(),
            c.score
        );
    }
    Ok(ExitCode::SUCCESS)
}
