//! `millwright ask "question" --config FILE`: asks the running node a question over MQTT 5 (the
//! broker and site of the config) and prints the answer, its source and its evidence.
//!
//! [`ask_over_mqtt`] is the asker (subscribe to `answers/<id>` first, then publish the
//! question), shared with the demo and `bench ask`. Exit code 1 on an error answer or when
//! no answer comes within `--timeout-s`.

use crate::cli::AskArgs;
use crate::config::Config;
use anyhow::Context;
use millwright_core::ask::{Answer, AnswerSource, AskPayload};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::fmt::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Asks `q` on `<prefix>/ask` (or `<prefix>/ask/<operator>`) over a new MQTT 5 connection and
/// waits up to `timeout` for the answer on `<prefix>/answers/<id>`; `Ok(None)` on timeout.
pub async fn ask_over_mqtt(
    opts: MqttOptions,
    prefix: &str,
    q: &AskPayload,
    operator: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Option<Answer>> {
    let answers = format!("{prefix}/answers/{}", q.id);
    let ask = match operator {
        Some(op) => format!("{prefix}/ask/{op}"),
        None => format!("{prefix}/ask"),
    };
    let payload = serde_json::to_vec(q)?;
    let (client, mut el) = AsyncClient::new(opts, 16);
    let deadline = Instant::now() + timeout;
    let mut asked = false;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(ev) = tokio::time::timeout(left, el.poll()).await else {
            break Ok(None);
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => client
                .try_subscribe(answers.clone(), QoS::AtLeastOnce)
                .context("subscribing to the answer topic")?,
            Ok(Event::Incoming(Packet::SubAck(_))) if !asked => {
                asked = true;
                client
                    .try_publish(ask.clone(), QoS::AtLeastOnce, false, payload.clone())
                    .context("publishing the question")?;
            }
            Ok(Event::Incoming(Packet::Publish(p))) if *p.topic == *answers.as_bytes() => {
                break serde_json::from_slice::<Answer>(&p.payload)
                    .map(Some)
                    .with_context(|| {
                        format!(
                            "the answer on {answers} is not an answer: {}",
                            String::from_utf8_lossy(&p.payload)
                        )
                    });
            }
            Ok(_) => {}
            Err(e) => break Err(anyhow::anyhow!("MQTT broker: {e}")),
        }
    };
    let _ = client.try_disconnect();
    result
}

/// The answer as text: the answer, where it came from, and the evidence table.
pub fn render(a: &Answer) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", a.answer);
    let source = match a.source {
        AnswerSource::Model => "model",
        AnswerSource::Template => "template",
        AnswerSource::Refusal => "refusal",
        AnswerSource::Error => "error",
    };
    let _ = write!(
        o,
        "\nsource: {source}, verified: {}, {} ms",
        a.verified, a.latency_ms
    );
    if let Some(e) = &a.error {
        let _ = write!(o, ", error: {e}");
    }
    if let Some(s) = a.retry_after_s {
        let _ = write!(o, ", retry after {s} s");
    }
    o.push('\n');
    if !a.evidence.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<8} {:<26} {:<12} {:<20} {:<20} {:>12} unit",
            "asset", "signal", "aggregate", "from", "to", "value"
        );
        for e in &a.evidence {
            let _ = writeln!(
                o,
                "{:<8} {:<26} {:<12} {:<20} {:<20} {:>12} {}",
                e.asset,
                e.signal,
                e.aggregate,
                short_time(&e.from),
                short_time(&e.to),
                format_value(e.value),
                e.unit
            );
        }
    }
    o
}

/// `2026-12-01T02:03:04.123Z` → `2026-12-01 02:03:04Z`.
fn short_time(t: &str) -> String {
    let t = t.replacen('T', " ", 1);
    match t.find('.') {
        Some(dot) if t.ends_with('Z') => format!("{}Z", t.get(..dot).unwrap_or(&t)),
        _ => t,
    }
}

/// The value as the answer writes it (evidence holds the rounded value): shortest form.
fn format_value(v: f64) -> String {
    format!("{v}")
}

/// Asks and prints.
pub async fn run(a: &AskArgs) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let m = cfg
        .mqtt
        .as_ref()
        .context("the config has no [mqtt] section: questions are asked over MQTT")?;
    let pid = std::process::id();
    let id =
        a.id.clone()
            .unwrap_or_else(|| format!("cli-{pid}-{}", crate::time_ns().rem_euclid(1_000_000_000)));
    let q = AskPayload {
        id,
        question: a.question.clone(),
        asset: a.asset.clone(),
    };
    let opts = m
        .connection()
        .with_client_id(format!("{}-asker-{pid}", m.client_id))
        .v5_options()?
        .into_inner();
    let prefix = format!("{}/{}", cfg.site.topic_root, cfg.site.name);
    let timeout = Duration::from_secs(a.timeout_s);
    match ask_over_mqtt(opts, &prefix, &q, a.operator.as_deref(), timeout).await? {
        Some(ans) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&ans)?);
            } else {
                print!("{}", render(&ans));
            }
            Ok(if ans.source == AnswerSource::Error {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        None => {
            eprintln!(
                "no answer on {prefix}/answers/{} within {} s: is the node running with [ask] enabled?",
                q.id, a.timeout_s
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
