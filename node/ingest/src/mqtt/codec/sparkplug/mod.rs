//! The Sparkplug B codec (`format = "sparkplug_b"`): a host application's view of
//! `spBv1.0/<group>/<type>/<edge node>[/<device>]`.
//!
//! - Births (`NBIRTH`, `DBIRTH`) bind metric names to aliases and datatypes and give units
//!   (the `engUnit` property); their values are readings too, and each birth is a
//!   `device_online` = 1 reading ([`DEVICE_ONLINE_SIGNAL`]) of the node's or device's asset.
//! - `NDATA`/`DDATA` resolve aliases (or names) through the birth table.
//! - `NDEATH` (when its `bdSeq` is the current session's) and `DDEATH` give `device_online` = 0
//!   for the node and all its devices, or the one device, and forget their birth tables.
//! - Sequence numbers are checked per edge node over births, data and device deaths; a gap, or
//!   DATA before its BIRTH, is counted and answered with one rebirth request (`NCMD`,
//!   `Node Control/Rebirth` = true) per edge node per `rebirth_min_interval_s`, which the MQTT
//!   source publishes ([`Decoder::take_outgoing`](super::Decoder::take_outgoing)).
//! - Numbers: all integer widths, float, double, boolean (0/1). Strings, text, UUIDs, bytes,
//!   files, date-times, datasets and templates are skipped and counted, as are unknown aliases,
//!   values of the wrong type and non-finite floats; `is_null` metrics are not readings.
//!   A truncated or malformed protobuf rejects the message (`syntax`); nothing here panics.
//!
//! The wire structs are in `proto.rs`, the config section in `options.rs`; the `.proto` and its
//! license sit next to this file.
//! `bdSeq` and `Node Control/*`, `Device Control/*` metrics are protocol, never readings.

mod options;
pub mod proto;

use super::{Decoder, PayloadError};
use crate::metrics::{RejectReason, SkipReason};
use crate::mqtt::topic::TopicMatch;
use millwright_core::schema::DEVICE_ONLINE_SIGNAL;
use millwright_core::{Quality, Reading, SensorId, Unit};
pub use options::{AssetFrom, SparkplugOptions};
use prost::Message;
use proto::{Metric, MetricValue, Payload};
use std::collections::HashMap;
use std::sync::Arc;

/// The Sparkplug B topic namespace.
pub const NAMESPACE: &str = "spBv1.0";
/// The rebirth request metric.
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// A message the MQTT source is asked to publish (a rebirth request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Sparkplug B datatype indexes of the numbers the node reads.
mod dt {
    pub const UNKNOWN: u32 = 0;
    pub const INT8: u32 = 1;
    pub const INT16: u32 = 2;
    pub const INT32: u32 = 3;
    pub const INT64: u32 = 4;
    pub const UINT8: u32 = 5;
    pub const UINT16: u32 = 6;
    pub const UINT32: u32 = 7;
    pub const UINT64: u32 = 8;
    pub const FLOAT: u32 = 9;
    pub const DOUBLE: u32 = 10;
    pub const BOOLEAN: u32 = 11;
}

/// One metric of a birth certificate.
#[derive(Debug, Clone)]
struct Info {
    sensor: SensorId,
    datatype: u32,
    unit: Unit,
    /// Protocol metric (bdSeq, Node/Device Control): never a reading.
    control: bool,
}

/// The birth table of the edge node itself or of one device.
#[derive(Debug, Default)]
struct Table {
    infos: Vec<Info>,
    by_alias: HashMap<u64, usize>,
    by_name: HashMap<String, usize>,
    /// Asset of the `device_online` readings.
    online: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct NodeState {
    born: bool,
    bd_seq: Option<u64>,
    next_seq: Option<u64>,
    node: Table,
    devices: HashMap<String, Table>,
    last_rebirth_ns: Option<i64>,
}

/// Per-subscription Sparkplug B state: every edge node's birth tables and sequence.
#[derive(Debug, Default)]
pub(crate) struct SpbState {
    nodes: HashMap<String, NodeState>,
}

/// Edge nodes tracked per subscription; births of more are rejected.
const MAX_NODES: usize = 10_000;
/// Devices tracked per edge node.
const MAX_DEVICES: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    NBirth,
    NData,
    NDeath,
    DBirth,
    DData,
    DDeath,
}

struct SpTopic<'t> {
    group: &'t str,
    kind: Kind,
    node: &'t str,
    device: Option<&'t str>,
}

/// Parses a Sparkplug topic. `Ok(None)`: a valid Sparkplug topic that carries no readings
/// (commands, host state).
fn parse_topic(topic: &str) -> Result<Option<SpTopic<'_>>, PayloadError> {
    let bad = |why: &str| {
        PayloadError::new(
            RejectReason::Schema,
            format!("topic `{topic}` is not a Sparkplug B topic: {why}"),
        )
    };
    let mut it = topic.split('/');
    if it.next() != Some(NAMESPACE) {
        return Err(bad("it does not start with spBv1.0/"));
    }
    let group = it.next().ok_or_else(|| bad("no group id"))?;
    if group == "STATE" {
        return Ok(None);
    }
    let kind = match it.next().ok_or_else(|| bad("no message type"))? {
        "NBIRTH" => Kind::NBirth,
        "NDATA" => Kind::NData,
        "NDEATH" => Kind::NDeath,
        "DBIRTH" => Kind::DBirth,
        "DDATA" => Kind::DData,
        "DDEATH" => Kind::DDeath,
        "NCMD" | "DCMD" | "STATE" => return Ok(None),
        other => return Err(bad(&format!("unknown message type `{other}`"))),
    };
    let node = it
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no edge node id"))?;
    let device = it.next();
    if it.next().is_some() {
        return Err(bad("too many levels"));
    }
    let is_device = matches!(kind, Kind::DBirth | Kind::DData | Kind::DDeath);
    match (is_device, device) {
        (true, Some(d)) if !d.is_empty() => {}
        (true, _) => return Err(bad("a device message needs a device id")),
        (false, Some(_)) => return Err(bad("a node message has no device id")),
        (false, None) => {}
    }
    Ok(Some(SpTopic {
        group,
        kind,
        node,
        device,
    }))
}

/// The rebirth request payload (`Node Control/Rebirth` = true, Boolean).
pub fn rebirth_payload(now_ms: u64) -> Vec<u8> {
    Payload {
        timestamp: Some(now_ms),
        metrics: vec![Metric {
            name: Some(REBIRTH_METRIC.into()),
            timestamp: Some(now_ms),
            datatype: Some(dt::BOOLEAN),
            value: Some(MetricValue::BooleanValue(true)),
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

/// Encodes a payload (for publishers built in code, e.g. the ingest benchmark's).
pub fn encode(p: &Payload) -> Vec<u8> {
    p.encode_to_vec()
}

fn ms_to_ns(ms: u64) -> Option<i64> {
    i64::try_from(ms).ok()?.checked_mul(1_000_000)
}

/// The number a metric value stands for, given its datatype.
fn numeric(datatype: u32, v: &MetricValue) -> Result<f64, SkipReason> {
    use MetricValue as V;
    if datatype > dt::BOOLEAN {
        return Err(SkipReason::Unsupported);
    }
    let x = match (datatype, v) {
        (
            dt::UNKNOWN,
            V::StringValue(_)
            | V::BytesValue(_)
            | V::DatasetValue(_)
            | V::TemplateValue(_)
            | V::ExtensionValue(_),
        ) => return Err(SkipReason::Unsupported),
        (dt::INT8, V::IntValue(x)) => f64::from(*x as u8 as i8),
        (dt::INT8, V::LongValue(x)) => f64::from(*x as u8 as i8),
        (dt::INT16, V::IntValue(x)) => f64::from(*x as u16 as i16),
        (dt::INT16, V::LongValue(x)) => f64::from(*x as u16 as i16),
        (dt::INT32, V::IntValue(x)) => f64::from(*x as i32),
        (dt::INT32, V::LongValue(x)) => f64::from(*x as u32 as i32),
        (dt::INT64, V::LongValue(x)) => *x as i64 as f64,
        (dt::INT64, V::IntValue(x)) => f64::from(*x as i32),
        (dt::UINT8 | dt::UINT16 | dt::UINT32 | dt::UINT64, V::IntValue(x)) => f64::from(*x),
        (dt::UINT8 | dt::UINT16 | dt::UINT32 | dt::UINT64, V::LongValue(x)) => *x as f64,
        (dt::FLOAT | dt::DOUBLE | dt::UNKNOWN, V::FloatValue(f)) => f64::from(*f),
        (dt::FLOAT | dt::DOUBLE | dt::UNKNOWN, V::DoubleValue(d)) => *d,
        (dt::BOOLEAN | dt::UNKNOWN, V::BooleanValue(b)) => f64::from(u8::from(*b)),
        (dt::UNKNOWN, V::IntValue(x)) => f64::from(*x),
        (dt::UNKNOWN, V::LongValue(x)) => *x as f64,
        _ => return Err(SkipReason::WrongType),
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(SkipReason::NonFinite)
    }
}

fn eng_unit(m: &Metric) -> Option<&str> {
    let p = m.properties.as_ref()?;
    p.keys
        .iter()
        .zip(&p.values)
        .find(|(k, _)| matches!(k.as_str(), "engUnit" | "EngUnit" | "engUnits" | "units"))
        .and_then(|(_, v)| match &v.value {
            Some(proto::PropertyValueValue::StringValue(s)) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        })
}

fn is_control(name: &str) -> bool {
    name == "bdSeq" || name.starts_with("Node Control/") || name.starts_with("Device Control/")
}

impl Decoder {
    pub(super) fn decode_sparkplug(
        &mut self,
        topic: TopicMatch<'_>,
        payload: &[u8],
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), PayloadError> {
        let Some(t) = parse_topic(topic.topic)? else {
            return Ok(());
        };
        let p = Payload::decode(payload).map_err(|e| {
            PayloadError::new(
                RejectReason::Syntax,
                format!("not a Sparkplug B protobuf payload: {e}"),
            )
        })?;
        let mut state = std::mem::take(&mut self.spb);
        let res = self.spb_message(&mut state, &t, &p, now_ns, out);
        self.spb = state;
        res
    }

    fn spb_message(
        &mut self,
        state: &mut SpbState,
        t: &SpTopic<'_>,
        p: &Payload,
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), PayloadError> {
        let key = format!("{}/{}", t.group, t.node);
        if !state.nodes.contains_key(&key) && state.nodes.len() >= MAX_NODES {
            return Err(PayloadError::new(
                RejectReason::Schema,
                format!("more than {MAX_NODES} edge nodes on one subscription"),
            ));
        }
        let ts_msg = p.timestamp.and_then(ms_to_ns).unwrap_or(now_ns);
        let node = state.nodes.entry(key).or_default();
        match t.kind {
            Kind::NBirth => {
                node.born = true;
                node.devices.clear();
                node.next_seq = p.seq.map(|s| (s + 1) % 256);
                node.bd_seq = p
                    .metrics
                    .iter()
                    .find(|m| m.name.as_deref() == Some("bdSeq"))
                    .and_then(|m| match m.value {
                        Some(MetricValue::LongValue(v)) => Some(v),
                        Some(MetricValue::IntValue(v)) => Some(u64::from(v)),
                        _ => None,
                    });
                let base = self.name(t.node);
                node.node = self.birth_table(base, &p.metrics, ts_msg, out);
                Ok(())
            }
            Kind::DBirth | Kind::DData | Kind::DDeath | Kind::NData if !node.born => {
                self.tally.sequence_gaps += 1;
                self.request_rebirth(node, t, now_ns);
                Err(PayloadError::new(
                    RejectReason::NoBirth,
                    format!(
                        "{:?} of edge node `{}` (group `{}`) before its NBIRTH; rebirth requested",
                        t.kind, t.node, t.group
                    ),
                ))
            }
            Kind::NData => {
                self.check_seq(node, t, p.seq, now_ns);
                let table = std::mem::take(&mut node.node);
                self.data(&table, &p.metrics, ts_msg, out);
                node.node = table;
                Ok(())
            }
            Kind::DBirth => {
                self.check_seq(node, t, p.seq, now_ns);
                let dev = t.device.unwrap_or_default();
                if !node.devices.contains_key(dev) && node.devices.len() >= MAX_DEVICES {
                    return Err(PayloadError::new(
                        RejectReason::Schema,
                        format!("more than {MAX_DEVICES} devices on edge node `{}`", t.node),
                    ));
                }
                let base = match self.defaults.sparkplug.asset {
                    AssetFrom::EdgeNodeDevice => self.name(&format!("{}/{dev}", t.node)),
                    _ => self.name(dev),
                };
                let table = self.birth_table(base, &p.metrics, ts_msg, out);
                node.devices.insert(dev.to_string(), table);
                Ok(())
            }
            Kind::DData => {
                self.check_seq(node, t, p.seq, now_ns);
                let dev = t.device.unwrap_or_default();
                let Some(table) = node.devices.get(dev) else {
                    self.request_rebirth(node, t, now_ns);
                    return Err(PayloadError::new(
                        RejectReason::NoBirth,
                        format!(
                            "DDATA of device `{dev}` (edge node `{}`) before its DBIRTH; rebirth requested",
                            t.node
                        ),
                    ));
                };
                self.data(table, &p.metrics, ts_msg, out);
                Ok(())
            }
            Kind::DDeath => {
                self.check_seq(node, t, p.seq, now_ns);
                let dev = t.device.unwrap_or_default();
                if let Some(table) = node.devices.remove(dev) {
                    push_online(out, &table, ts_msg, 0.0);
                }
                Ok(())
            }
            Kind::NDeath => {
                let bd = p
                    .metrics
                    .iter()
                    .find(|m| m.name.as_deref() == Some("bdSeq"))
                    .and_then(|m| match m.value {
                        Some(MetricValue::LongValue(v)) => Some(v),
                        Some(MetricValue::IntValue(v)) => Some(u64::from(v)),
                        _ => None,
                    });
                if let (Some(cur), Some(bd)) = (node.bd_seq, bd) {
                    if cur != bd {
                        // The will of an earlier session: the node is alive in a newer one.
                        self.tally.stale_deaths += 1;
                        return Ok(());
                    }
                }
                // NDEATH usually carries no timestamp (it is the broker's will): receive time.
                let ts = p.timestamp.and_then(ms_to_ns).unwrap_or(now_ns);
                if node.born {
                    push_online(out, &node.node, ts, 0.0);
                }
                let mut devices: Vec<_> = node.devices.drain().collect();
                devices.sort_by(|a, b| a.0.cmp(&b.0));
                for (_, d) in devices {
                    push_online(out, &d, ts, 0.0);
                }
                node.born = false;
                node.next_seq = None;
                node.node = Table::default();
                Ok(())
            }
        }
    }

    fn check_seq(&mut self, node: &mut NodeState, t: &SpTopic<'_>, seq: Option<u64>, now_ns: i64) {
        let Some(seq) = seq else { return };
        match node.next_seq {
            Some(want) if want != seq => {
                self.tally.sequence_gaps += 1;
                self.request_rebirth(node, t, now_ns);
            }
            _ => {}
        }
        node.next_seq = Some((seq + 1) % 256);
    }

    fn request_rebirth(&mut self, node: &mut NodeState, t: &SpTopic<'_>, now_ns: i64) {
        let o = &self.defaults.sparkplug;
        if !o.request_rebirth {
            return;
        }
        let min = i64::try_from(o.rebirth_min_interval_s)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1_000_000_000);
        if let Some(last) = node.last_rebirth_ns {
            if now_ns.saturating_sub(last) < min {
                return;
            }
        }
        node.last_rebirth_ns = Some(now_ns);
        self.tally.rebirth_requests += 1;
        self.outgoing.push(Outgoing {
            topic: format!("{NAMESPACE}/{}/NCMD/{}", t.group, t.node),
            payload: rebirth_payload(u64::try_from(now_ns / 1_000_000).unwrap_or(0)),
        });
    }

    /// Builds the table of a birth and emits its values and the online reading.
    fn birth_table(
        &mut self,
        base: Arc<str>,
        metrics: &[Metric],
        ts_msg: i64,
        out: &mut Vec<Reading>,
    ) -> Table {
        let mut table = Table {
            online: Some(base.clone()),
            ..Default::default()
        };
        push_online(out, &table, ts_msg, 1.0);
        for m in metrics {
            let Some(name) = m.name.as_deref() else {
                // A birth must name its metrics.
                self.tally.skip(SkipReason::UnknownAlias);
                continue;
            };
            let (asset, signal) = self.split_name(&base, name);
            let unit = match eng_unit(m) {
                Some(u) => self.unit(Some(u)),
                None => self.unit(None),
            };
            let info = Info {
                sensor: SensorId { asset, signal },
                datatype: m.datatype.unwrap_or(dt::UNKNOWN),
                unit,
                control: is_control(name),
            };
            let idx = table.infos.len();
            if let Some(a) = m.alias {
                table.by_alias.insert(a, idx);
            }
            table.by_name.insert(name.to_string(), idx);
            table.infos.push(info);
            if let Some(i) = table.infos.get(idx) {
                emit(&mut self.tally, i, m, ts_msg, out);
            }
        }
        table
    }

    fn split_name(&mut self, base: &Arc<str>, name: &str) -> (Arc<str>, Arc<str>) {
        let o = &self.defaults.sparkplug;
        if o.asset == AssetFrom::MetricFolder && o.folder_levels > 0 {
            let levels = o.folder_levels;
            let mut cut = None;
            for (n, (i, _)) in name.match_indices('/').enumerate() {
                if n + 1 == levels {
                    cut = Some(i);
                    break;
                }
            }
            if let Some(i) = cut {
                let (a, s) = (&name[..i], &name[i + 1..]);
                if !a.is_empty() && !s.is_empty() {
                    return (self.name(a), self.name(s));
                }
            }
        }
        (base.clone(), self.name(name))
    }

    fn data(&mut self, table: &Table, metrics: &[Metric], ts_msg: i64, out: &mut Vec<Reading>) {
        out.reserve(metrics.len());
        for m in metrics {
            let idx = match (m.alias, m.name.as_deref()) {
                (Some(a), _) => table.by_alias.get(&a),
                (None, Some(n)) => table.by_name.get(n),
                (None, None) => None,
            };
            match idx.and_then(|i| table.infos.get(*i)) {
                Some(info) => emit(&mut self.tally, info, m, ts_msg, out),
                None => self.tally.skip(SkipReason::UnknownAlias),
            }
        }
    }
}

fn emit(
    tally: &mut crate::metrics::DecodeTally,
    info: &Info,
    m: &Metric,
    ts_msg: i64,
    out: &mut Vec<Reading>,
) {
    if info.control {
        return;
    }
    if m.is_null == Some(true) {
        tally.skip(SkipReason::Null);
        return;
    }
    // The birth's datatype is the metric's; DATA that says otherwise is of the wrong type.
    let datatype = match m.datatype {
        Some(d) if info.datatype != dt::UNKNOWN && d != info.datatype => {
            tally.skip(SkipReason::WrongType);
            return;
        }
        d => d.unwrap_or(info.datatype),
    };
    let Some(v) = &m.value else {
        tally.skip(if datatype > dt::BOOLEAN {
            SkipReason::Unsupported
        } else {
            SkipReason::WrongType
        });
        return;
    };
    let value = match numeric(datatype, v) {
        Ok(x) => x,
        Err(r) => {
            tally.skip(r);
            return;
        }
    };
    let ts_ns = match m.timestamp {
        Some(ms) => match ms_to_ns(ms) {
            Some(t) => t,
            None => {
                tally.skip(SkipReason::WrongType);
                return;
            }
        },
        None => ts_msg,
    };
    out.push(Reading {
        sensor: info.sensor.clone(),
        ts_ns,
        value,
        unit: info.unit.clone(),
        quality: Quality::Good,
    });
}

fn push_online(out: &mut Vec<Reading>, table: &Table, ts_ns: i64, v: f64) {
    if let Some(a) = &table.online {
        out.push(Reading {
            sensor: SensorId {
                asset: a.clone(),
                signal: Arc::from(DEVICE_ONLINE_SIGNAL),
            },
            ts_ns,
            value: v,
            unit: Unit::none(),
            quality: Quality::Good,
        });
    }
}

#[cfg(test)]
mod tests;
