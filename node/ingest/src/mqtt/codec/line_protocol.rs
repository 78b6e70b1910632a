//! The InfluxDB line-protocol payload codec.
//!
//! # Line protocol
//! `measurement[,tag=v…] field=v[,field=v…] [timestamp]`: each numeric field (float, `i`/`u`
//! integer, boolean as 1/0) is a reading whose signal is the field key; the asset is the `asset`
//! tag, else the topic's `{asset}`, else the subscription's `asset`, else the measurement; the
//! `unit` tag sets the unit. String fields are skipped. Timestamps are in the subscription's
//! `precision` (default ns).

use super::{check_finite, Decoder, PayloadError};
use crate::metrics::RejectReason;
use millwright_core::{Quality, Reading, SensorId};
use std::borrow::Cow;

use crate::mqtt::topic::TopicMatch;

impl Decoder {
    pub(super) fn decode_line_protocol(
        &mut self,
        topic: TopicMatch<'_>,
        payload: &[u8],
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), PayloadError> {
        let text = std::str::from_utf8(payload).map_err(|e| {
            PayloadError::new(
                RejectReason::InvalidUtf8,
                format!("at byte {}", e.valid_up_to()),
            )
        })?;
        let mut any = false;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            any = true;
            self.lp_line(topic, line, now_ns, out).map_err(|e| {
                PayloadError::new(e.reason, format!("line {}: {}", n + 1, e.detail))
            })?;
        }
        if !any {
            return Err(PayloadError::new(RejectReason::Syntax, "no lines"));
        }
        Ok(())
    }

    fn lp_line(
        &mut self,
        topic: TopicMatch<'_>,
        line: &str,
        now_ns: i64,
        out: &mut Vec<Reading>,
    ) -> Result<(), PayloadError> {
        let syntax = |d: &str| PayloadError::new(RejectReason::Syntax, d.to_string());
        let parts = split_unescaped(line, ' ', true);
        if parts.len() < 2 || parts.len() > 3 {
            return Err(syntax("expected `measurement[,tags] fields [timestamp]`"));
        }
        let head = split_unescaped(parts[0], ',', false);
        let measurement = unescape(head[0]);
        if measurement.is_empty() {
            return Err(syntax("empty measurement"));
        }
        let mut tag_asset = None;
        let mut tag_unit = None;
        for t in &head[1..] {
            let kv = split_unescaped(t, '=', false);
            if kv.len() != 2 || kv[0].is_empty() || kv[1].is_empty() {
                return Err(syntax(&format!("bad tag `{t}`")));
            }
            match kv[0] {
                "asset" => tag_asset = Some(unescape(kv[1])),
                "unit" => tag_unit = Some(unescape(kv[1])),
                _ => {}
            }
        }
        let ts_ns = match parts.get(2) {
            None => now_ns,
            Some(t) => {
                let v: i64 = t
                    .parse()
                    .map_err(|_| syntax(&format!("bad timestamp `{t}`")))?;
                self.defaults.precision.to_ns(v).ok_or_else(|| {
                    PayloadError::new(
                        RejectReason::NonFinite,
                        format!("timestamp `{t}` overflows"),
                    )
                })?
            }
        };
        let asset_name = tag_asset
            .or_else(|| topic.asset.map(Cow::Borrowed))
            .or_else(|| self.defaults.asset.clone().map(Cow::Owned))
            .unwrap_or(measurement);
        let asset = self.name(&asset_name);
        let unit = self.unit(tag_unit.as_deref());
        let mut n = 0;
        for f in split_unescaped(parts[1], ',', true) {
            let kv = split_unescaped(f, '=', true);
            if kv.len() != 2 || kv[0].is_empty() || kv[1].is_empty() {
                return Err(syntax(&format!("bad field `{f}`")));
            }
            let key = unescape(kv[0]);
            let raw = kv[1];
            let value = if raw.starts_with('"') {
                if raw.len() < 2 || !raw.ends_with('"') {
                    return Err(syntax(&format!("unterminated string in field `{key}`")));
                }
                continue; // string fields carry no measurement
            } else if let Some(i) = raw.strip_suffix('i') {
                i.parse::<i64>().map(|v| v as f64).map_err(|_| {
                    PayloadError::new(
                        RejectReason::Schema,
                        format!("field `{key}`: bad integer `{raw}`"),
                    )
                })?
            } else if let Some(u) = raw.strip_suffix('u') {
                u.parse::<u64>().map(|v| v as f64).map_err(|_| {
                    PayloadError::new(
                        RejectReason::Schema,
                        format!("field `{key}`: bad unsigned integer `{raw}`"),
                    )
                })?
            } else {
                match raw {
                    "t" | "T" | "true" | "True" | "TRUE" => 1.0,
                    "f" | "F" | "false" | "False" | "FALSE" => 0.0,
                    _ => {
                        let v: f64 = raw.parse().map_err(|_| {
                            PayloadError::new(
                                RejectReason::Schema,
                                format!("field `{key}`: `{raw}` is not a number"),
                            )
                        })?;
                        check_finite(v, &key)?;
                        v
                    }
                }
            };
            let signal = self.name(&key);
            out.push(Reading {
                sensor: SensorId {
                    asset: asset.clone(),
                    signal,
                },
                ts_ns,
                value,
                unit: unit.clone(),
                quality: Quality::Good,
            });
            n += 1;
        }
        if n == 0 {
            return Err(PayloadError::new(
                RejectReason::Schema,
                "no numeric field".to_string(),
            ));
        }
        Ok(())
    }
}

/// Splits on `sep` outside backslash escapes (and, if `quotes`, outside double quotes).
fn split_unescaped(s: &str, sep: char, quotes: bool) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut esc = false;
    let mut inq = false;
    for (i, c) in s.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '"' if quotes => inq = !inq,
            c if c == sep && !inq => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    if sep == ' ' {
        parts.retain(|p| !p.is_empty());
    }
    parts
}

fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                o.push(n);
            }
        } else {
            o.push(c);
        }
    }
    Cow::Owned(o)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{dec, tm};
    use super::super::{DecodeDefaults, PayloadFormat, Precision};
    use super::*;

    #[test]
    fn line_protocol() {
        let mut d = dec(PayloadFormat::LineProtocol);
        let mut out = vec![];
        let p = b"pump,asset=P-101,unit=bar discharge=4.5,count=3i,on=t,label=\"x y\" 1700000000000000000\nmotor speed=1480 1700000000000000001\n";
        assert_eq!(d.decode(tm(None, None), p, 0, &mut out).unwrap(), 4);
        assert_eq!(&*out[0].sensor.asset, "P-101");
        assert_eq!(&*out[0].sensor.signal, "discharge");
        assert_eq!(out[0].unit.symbol(), "bar");
        assert_eq!((out[1].value, out[2].value), (3.0, 1.0));
        assert_eq!(&*out[3].sensor.asset, "motor");
        assert_eq!(out[3].ts_ns, 1_700_000_000_000_000_001);
        for bad in [
            &b"m"[..],
            b"m f=abc",
            b"m f=1 notatime",
            b"m f=NaN",
            b"m,t f=1",
            b"m s=\"x\"",
        ] {
            assert!(
                d.decode(tm(None, None), bad, 0, &mut out).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(out.len(), 4);
        let mut e = Decoder::new(
            PayloadFormat::LineProtocol,
            DecodeDefaults {
                max_payload_bytes: 100,
                precision: Precision::Ms,
                ..Default::default()
            },
        );
        e.decode(tm(None, None), br"m\ x,asset=a\,b v=1 5", 0, &mut out)
            .unwrap();
        assert_eq!(
            (&*out[4].sensor.asset, &*out[4].sensor.signal, out[4].ts_ns),
            ("a,b", "v", 5_000_000)
        );
    }

    proptest::proptest! {
        #[test]
        fn lp_never_panics(s in "\\PC{0,200}") {
            let mut d = dec(PayloadFormat::LineProtocol);
            let _ = d.decode(tm(None, None), s.as_bytes(), 0, &mut vec![]);
        }
    }
}
