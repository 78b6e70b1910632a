//! Support for the operator-question tests (`tests/ask_*.rs`): known readings of simulated
//! machines, an independent MQTT 5 asker (rumqttc v5) collecting every answer, and the check
//! of every number of an answer against the readings the test published.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds between readings.
pub const STEP_S: i64 = 10;
/// Readings per signal (two hours).
pub const N: i64 = 720;
/// From this reading on, P-101's bearing wears: vibration and bearing temperature climb.
pub const FAULT_AT: i64 = 600;

/// Known readings: (asset, signal, unit) → [(ts_ns, value)].
pub type Data = HashMap<(String, String), (String, Vec<(i64, f64)>)>;

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The signals of the test plant with their value at reading `i` (P-101 develops a fault).
fn value(asset: &str, signal: &str, i: i64) -> f64 {
    let f = i as f64;
    let fault = (i - FAULT_AT).max(0) as f64;
    let p101 = asset == "P-101";
    r3(match (asset, signal) {
        (_, "vibration_rms_mm_s") if p101 => 1.8 + 0.05 * (i % 7) as f64 + 0.02 * fault,
        (_, "bearing_temp_c") if p101 => 58.0 + 0.1 * (i % 5) as f64 + 0.15 * fault,
        ("M-201", "vibration_rms_mm_s") => 1.2 + 0.03 * (i % 4) as f64,
        ("M-201", "bearing_temp_c") => 50.0 + 0.2 * (i % 3) as f64,
        (_, "vibration_rms_mm_s") => 1.5 + 0.04 * (i % 6) as f64,
        (_, "bearing_temp_c") => 52.0 + 0.1 * (i % 4) as f64,
        (_, "suction_pressure_bar") => 1.5 + 0.01 * (i % 4) as f64,
        (_, "discharge_pressure_bar") => 6.0 + 0.02 * (i % 6) as f64,
        (_, "flow_m3_h") => 120.0 + 0.5 * (i % 8) as f64,
        (_, "motor_current_a") if asset == "M-201" => 30.0 + 0.1 * (i % 5) as f64,
        (_, "motor_current_a") => 45.0 + 0.1 * (i % 9) as f64,
        (_, "winding_temp_c") => 70.0 + 0.25 * (i % 4) as f64,
        (_, "speed_rpm") => 1480.0 + (i % 3) as f64,
        (_, "shaft_power_kw") => 15.0 + 0.1 * (i % 4) as f64 + 0.001 * f,
        _ => 0.0,
    })
}

/// A machine of the test plant: tag, profile (in `pipelines/`), signals with their units.
pub type Machine = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// The assets of the test plant.
pub fn plant() -> Vec<Machine> {
    let pump = vec![
        ("vibration_rms_mm_s", "mm/s"),
        ("bearing_temp_c", "°C"),
        ("suction_pressure_bar", "bar"),
        ("discharge_pressure_bar", "bar"),
        ("flow_m3_h", "m³/h"),
        ("motor_current_a", "A"),
    ];
    let motor = vec![
        ("vibration_rms_mm_s", "mm/s"),
        ("bearing_temp_c", "°C"),
        ("winding_temp_c", "°C"),
        ("motor_current_a", "A"),
        ("speed_rpm", "rpm"),
        ("shaft_power_kw", "kW"),
    ];
    vec![
        ("P-101", "centrifugal-pump", pump.clone()),
        ("P-102", "centrifugal-pump", pump),
        ("M-201", "electric-motor", motor),
    ]
}

/// The readings of every signal, the last one `STEP_S` before `end_ns` (times on whole
/// seconds plus 0.5 s, so second-precision ranges never cut a reading in two).
pub fn data(end_ns: i64) -> Data {
    let s = 1_000_000_000i64;
    let last = (end_ns / s - STEP_S) * s + s / 2;
    let mut d = Data::new();
    for (asset, _, signals) in plant() {
        for (signal, unit) in signals {
            let pts = (0..N)
                .map(|i| (last - (N - 1 - i) * STEP_S * s, value(asset, signal, i)))
                .collect();
            d.insert((asset.into(), signal.into()), (unit.into(), pts));
        }
    }
    d
}

/// The readings as the node's JSON field sets, `per` readings times a message, per asset.
pub fn payloads(d: &Data, per: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (asset, _, signals) in plant() {
        let mut objs = Vec::new();
        for i in 0..N as usize {
            let mut fields = serde_json::Map::new();
            let mut units = serde_json::Map::new();
            let mut ts = 0;
            for (signal, unit) in &signals {
                let (_, pts) = &d[&(asset.to_string(), signal.to_string())];
                ts = pts[i].0;
                fields.insert(signal.to_string(), pts[i].1.into());
                units.insert(signal.to_string(), (*unit).into());
            }
            objs.push(serde_json::json!({"ts_ns": ts, "fields": fields, "units": units}));
        }
        for chunk in objs.chunks(per) {
            out.push((asset.to_string(), Value::Array(chunk.to_vec()).to_string()));
        }
    }
    out
}

/// One message on an answer topic: the answer's JSON and the correlation data it carried.
#[derive(Clone, Debug)]
pub struct Got {
    /// The topic it arrived on.
    pub topic: String,
    /// The answer.
    pub answer: Value,
    /// MQTT 5 correlation data, if any.
    pub correlation: Option<Vec<u8>>,
}

/// An MQTT 5 asker subscribed to every answer (and to `extra` topics), collecting by id.
pub struct Asker {
    client: AsyncClient,
    got: Arc<Mutex<HashMap<String, Vec<Got>>>>,
    /// `<root>/<site>`.
    pub prefix: String,
}

impl Asker {
    /// Connects and subscribes to `<prefix>/answers/+` and `extra`.
    pub async fn connect(host: &str, port: u16, prefix: &str, extra: &[&str]) -> Asker {
        let mut o = MqttOptions::new(millwright_e2e::unique("asker-"), host, port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 1000);
        let got: Arc<Mutex<HashMap<String, Vec<Got>>>> = Arc::default();
        let (g, mut topics) = (got.clone(), vec![format!("{prefix}/answers/+")]);
        topics.extend(extra.iter().map(|t| t.to_string()));
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let c = client.clone();
        tokio::spawn(async move {
            let mut tx = Some(subscribed_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for t in &topics {
                            c.subscribe(t.clone(), QoS::AtLeastOnce).await.unwrap();
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let answer: Value =
                            serde_json::from_slice(&p.payload).unwrap_or_else(|e| {
                                panic!(
                                    "answer not JSON ({e}): {:?}",
                                    String::from_utf8_lossy(&p.payload)
                                )
                            });
                        let id = answer["id"].as_str().unwrap_or_default().to_string();
                        let correlation = p
                            .properties
                            .and_then(|pp| pp.correlation_data)
                            .map(|b| b.to_vec());
                        g.lock().unwrap().entry(id).or_default().push(Got {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            answer,
                            correlation,
                        });
                    }
                    Ok(_) => {}
                    Err(e) => panic!("asker's MQTT connection: {e}"),
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("asker did not subscribe in 10 s")
            .unwrap();
        // Every extra topic's SUBACK too.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Asker {
            client,
            got,
            prefix: prefix.to_string(),
        }
    }

    /// Publishes raw `payload` on `<prefix>/<suffix>` with MQTT 5 properties.
    pub async fn publish(
        &self,
        suffix: &str,
        payload: impl Into<Vec<u8>>,
        props: PublishProperties,
    ) {
        self.client
            .publish_with_properties(
                format!("{}/{suffix}", self.prefix),
                QoS::AtLeastOnce,
                false,
                payload.into(),
                props,
            )
            .await
            .unwrap();
    }

    /// Publishes `payload` on `topic` (QoS 1).
    pub async fn publish_raw(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic.to_string(), QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
    }

    /// Asks `question` (about `asset`) as `operator` on `ask/<operator>`.
    pub async fn ask(&self, id: &str, operator: &str, question: &str, asset: Option<&str>) {
        let mut q = serde_json::json!({"id": id, "question": question});
        if let Some(a) = asset {
            q["asset"] = a.into();
        }
        self.publish(
            &format!("ask/{operator}"),
            q.to_string(),
            Default::default(),
        )
        .await;
    }

    /// Every message received for `id` so far.
    pub fn got(&self, id: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `n` messages for `id` arrived (panics after `timeout`).
    pub async fn wait(&self, id: &str, n: usize, timeout: Duration) -> Vec<Got> {
        let t0 = Instant::now();
        loop {
            let g = self.got(id);
            if g.len() >= n {
                return g;
            }
            assert!(
                t0.elapsed() < timeout,
                "no answer for {id} within {timeout:?} (got {g:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the answer on `<prefix>/answers/<id>`.
    pub async fn answer(&self, id: &str, timeout: Duration) -> Value {
        let topic = format!("{}/answers/{id}", self.prefix);
        let t0 = Instant::now();
        loop {
            if let Some(g) = self.got(id).into_iter().find(|g| g.topic == topic) {
                return g.answer;
            }
            assert!(
                t0.elapsed() < timeout,
                "no answer on {topic} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `(min, max, mean, latest, n)` of the readings of `(asset, signal)` in `[from, to]`.
fn stats(d: &Data, asset: &str, signal: &str, from: i64, to: i64) -> Option<[f64; 5]> {
    let (_, pts) = d.get(&(asset.to_string(), signal.to_string()))?;
    let v: Vec<f64> = pts
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(_, v)| *v)
        .collect();
    let last = *v.last()?;
    let n = v.len() as f64;
    Some([
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        v.iter().sum::<f64>() / n,
        last,
        n,
    ])
}

/// Equal as written with three significant digits (answers round their values).
pub fn close(shown: f64, exact: f64) -> bool {
    let mag = exact.abs().max(1e-9).log10().floor();
    let tol = 0.5 * 10f64.powf(mag - 2.0) * 1.01 + 1e-9;
    (shown - exact).abs() <= tol.max(0.0051)
}

/// Checks every evidence value computable from the readings (`latest`, `max`, `min`,
/// `mean`, sample counts) against them; returns what does not match.
pub fn check_evidence(d: &Data, a: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    for e in a["evidence"].as_array().into_iter().flatten() {
        let (asset, signal, agg) = (
            e["asset"].as_str().unwrap_or(""),
            e["signal"].as_str().unwrap_or(""),
            e["aggregate"].as_str().unwrap_or(""),
        );
        let v = e["value"].as_f64().unwrap_or(f64::NAN);
        let idx = match agg {
            "min" => 0,
            "max" => 1,
            "mean" | "avg" | "average" => 2,
            "latest" | "last" | "now" => 3,
            _ => continue,
        };
        let t = |k: &str| {
            millwright_core::time::parse_rfc3339_ns(e[k].as_str().unwrap_or(""))
                .unwrap_or_else(|| panic!("evidence {k} not RFC 3339: {e}"))
        };
        let (from, to) = (t("from"), t("to"));
        let s = 1_000_000_000;
        // Second-precision ends: the node's exact range lies within a second of them.
        let ok = [
            (from, to + s),
            (from + s, to + s),
            (from, to),
            (from - s, to),
        ]
        .iter()
        .filter_map(|(f, t)| stats(d, asset, signal, *f, *t))
        .any(|st| close(v, st[idx]) || (idx == 3 && close(v, st[1].max(st[3]))));
        if !ok {
            bad.push(format!(
                "{asset}/{signal} {agg} {v} over {}..{} does not match the readings ({:?})",
                e["from"],
                e["to"],
                stats(d, asset, signal, from, to + s)
            ));
        }
    }
    bad
}

/// Numbers written in `text` (digits with an optional fraction and sign), after removing
/// asset tags, signal names, times of day (`HH:MM`), dates and the words of `skip`.
pub fn numbers_in(text: &str, skip: &[&str]) -> Vec<(f64, usize)> {
    let mut t = text.to_string();
    for s in skip {
        t = t.replace(s, " ");
    }
    let chars: Vec<char> = t.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev = if i > 0 { chars[i - 1] } else { ' ' };
        if c.is_ascii_digit() && !prev.is_alphanumeric() && prev != '-'
            || (c == '-'
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                && !prev.is_alphanumeric())
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                i += 1;
            }
            let lit: String = chars[start..i].iter().collect();
            // Times of day, dates: `12:30`, `2026-12-01`; durations: `15 minutes`.
            let next = chars.get(i).copied().unwrap_or(' ');
            let word: String = chars[i..]
                .iter()
                .skip_while(|c| **c == ' ')
                .take_while(|c| c.is_alphabetic())
                .collect();
            let duration = [
                "s", "min", "minute", "minutes", "h", "hour", "hours", "day", "days", "seconds",
                "second",
            ]
            .contains(&word.as_str());
            if next == ':' || next == '-' || prev == ':' || duration {
                continue;
            }
            let dec = lit.split_once('.').map_or(0, |(_, f)| f.len());
            if let Ok(v) = lit.parse::<f64>() {
                out.push((v, dec));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every number of the answer's text must be one of its evidence values as written, a
/// number of the question, or part of the stated time range (minutes, hours, days);
/// returns what is not.
pub fn check_text_numbers(a: &Value, question: &str, skip: &[&str]) -> Vec<String> {
    let text = a["answer"].as_str().unwrap_or("");
    let ev: Vec<f64> = a["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["value"].as_f64())
        .collect();
    let asked: Vec<f64> = numbers_in(question, skip)
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    let mut bad = Vec::new();
    for (v, dec) in numbers_in(text, skip) {
        let scale = 10f64.powi(dec as i32);
        let as_written = |x: f64| ((x * scale).round() / scale - v).abs() < 0.5 / scale + 1e-9;
        let ok = ev.iter().any(|x| as_written(*x) || as_written(x.abs())) || asked.contains(&v);
        if !ok {
            bad.push(format!("{v} (in {text:?}) is no evidence value"));
        }
    }
    bad
}
