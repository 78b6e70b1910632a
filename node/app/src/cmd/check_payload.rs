//! `millwright check-payload --config FILE --topic T < payload`: the readings one MQTT payload
//! gives under the config's subscription for `T`, or exactly why it gives none.
//!
//! It runs the node's own decoder (the same code as `millwright run`), so what it shows is what
//! the node would store. Nothing is sent anywhere: a Sparkplug B rebirth request the payload
//! would cause is only reported.

use crate::cli::CheckPayloadArgs;
use crate::config::Config;
use millwright_ingest::metrics::SkipReason;
use millwright_ingest::mqtt::{Decoder, TopicPattern};
use std::io::Read;
use std::process::ExitCode;

/// Decodes stdin and prints the verdict; exit 0 with readings, 1 without.
pub fn run(a: &CheckPayloadArgs) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let Some(mqtt) = &cfg.mqtt else {
        eprintln!(
            "{}: no [mqtt] section, so no payload gives readings",
            a.config.display()
        );
        return Ok(ExitCode::FAILURE);
    };
    let mut matched = None;
    for (i, s) in mqtt.subscriptions.iter().enumerate() {
        let p = TopicPattern::parse(&s.topic)?;
        if p.matches(&a.topic).is_some() {
            matched = Some((i, s, p));
            break;
        }
    }
    let Some((i, sub, pattern)) = matched else {
        eprintln!(
            "no readings: topic `{}` matches no subscription; they are:",
            a.topic
        );
        for s in &mqtt.subscriptions {
            eprintln!("  {}", s.topic);
        }
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "subscription mqtt.subscriptions[{i}]: `{}` (format {:?}{})",
        sub.topic,
        sub.format,
        if sub.json.is_some() { ", mapped" } else { "" }
    );
    let mut payload = Vec::new();
    std::io::stdin().read_to_end(&mut payload)?;
    let mut dec = Decoder::new(sub.format, sub.decode_defaults());
    let now = millwright_core::time::now_ns();
    if let Some(birth_file) = &a.birth {
        let birth = std::fs::read(birth_file)?;
        prime_sparkplug(&mut dec, &a.topic, &birth, now)?;
    }
    let m = pattern.matches(&a.topic).unwrap_or_default();
    let mut out = Vec::new();
    let res = dec.decode(m, &payload, now, &mut out);
    let tally = dec.take_tally();
    for o in dec.take_outgoing() {
        println!("the node would publish a rebirth request on {}", o.topic);
    }
    if tally.sequence_gaps > 0 {
        println!("sequence gap or DATA before BIRTH: {}", tally.sequence_gaps);
    }
    for r in SkipReason::ALL {
        let n = tally.skipped(r);
        if n > 0 {
            println!("skipped {n} metric(s): {} ({})", r.as_str(), explain(r));
        }
    }
    match res {
        Err(e) => {
            println!("no readings: rejected as `{}`: {e}", e.reason.as_str());
            Ok(ExitCode::FAILURE)
        }
        Ok(0) => {
            println!(
                "no readings: {}",
                if tally.is_empty() {
                    "the message carries none (a command, host state, or an empty message)"
                } else {
                    "every part was skipped (see above)"
                }
            );
            Ok(ExitCode::FAILURE)
        }
        Ok(n) => {
            println!("{n} reading(s):");
            println!("  asset\tsignal\tvalue\tunit\ttime\tquality");
            for r in &out {
                println!(
                    "  {}\t{}\t{}\t{}\t{} ({} ns)\t{:?}",
                    r.sensor.asset,
                    r.sensor.signal,
                    r.value,
                    r.unit.symbol(),
                    millwright_core::time::format_rfc3339(r.ts_ns),
                    r.ts_ns,
                    r.quality
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn m(topic: &str) -> millwright_ingest::mqtt::topic::TopicMatch<'_> {
    millwright_ingest::mqtt::topic::TopicMatch {
        topic,
        asset: None,
        signal: None,
    }
}

fn explain(r: SkipReason) -> &'static str {
    match r {
        SkipReason::UnknownAlias => {
            "alias or name not in the birth certificate; pass it with --birth"
        }
        SkipReason::Unsupported => {
            "string, text, UUID, bytes, file, date-time, dataset or template"
        }
        SkipReason::WrongType => "the value does not match the metric's datatype, or is missing",
        SkipReason::NonFinite => "NaN or infinite",
        SkipReason::Null => "is_null: no value at this time",
        SkipReason::BadName => "the asset or signal name cannot be carried (empty, too long, control character, leading `#`)",
        SkipReason::BadTime => "dated beyond the allowed skew from the node's clock",
    }
}

/// Reads a Sparkplug B birth certificate before the payload: for a device topic an empty
/// NBIRTH of its edge node, then the file as the device's DBIRTH; for a node topic the file as
/// the NBIRTH.
fn prime_sparkplug(dec: &mut Decoder, topic: &str, birth: &[u8], now: i64) -> anyhow::Result<()> {
    let parts: Vec<&str> = topic.split('/').collect();
    let (Some(ns), Some(group), Some(node)) = (parts.first(), parts.get(1), parts.get(3)) else {
        anyhow::bail!(
            "--birth needs a Sparkplug B topic spBv1.0/<group>/<type>/<edge node>[/<device>]"
        );
    };
    let nbirth = format!("{ns}/{group}/NBIRTH/{node}");
    let mut sink = Vec::new();
    let res = match parts.get(4) {
        Some(dev) => {
            // An empty protobuf is a valid payload: a birth with no metrics.
            dec.decode(m(&nbirth), &[], now, &mut sink)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let dbirth = format!("{ns}/{group}/DBIRTH/{node}/{dev}");
            dec.decode(m(&dbirth), birth, now, &mut sink)
        }
        None => dec.decode(m(&nbirth), birth, now, &mut sink),
    };
    res.map_err(|e| anyhow::anyhow!("--birth: {e}"))?;
    let _ = dec.take_tally();
    let _ = dec.take_outgoing();
    Ok(())
}
