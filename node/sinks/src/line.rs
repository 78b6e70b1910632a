//! InfluxDB line protocol formatting of readings (schema in `millwright_core::schema::influx`).

use millwright_core::schema::influx::{FIELD_VALUE, TAG_ASSET, TAG_QUALITY, TAG_SITE, TAG_UNIT};
use millwright_core::Reading;
use std::fmt::Write;

/// Appends `s` escaped as a measurement name (commas and spaces).
pub fn escape_measurement(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, ',' | ' ' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Appends `s` escaped as a tag key, tag value or field key (commas, equals signs, spaces).
pub fn escape_tag(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

/// Appends `s` as a quoted string field value.
pub fn quote_field(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Appends one reading as a line: `<signal>,site=…,asset=…,unit=…,quality=… value=<v> <ts_ns>`.
/// Readings with a non-finite value are skipped (returns false): line protocol cannot carry them.
pub fn write_reading(out: &mut String, site: &str, r: &Reading) -> bool {
    if !r.value.is_finite() {
        return false;
    }
    escape_measurement(out, &r.sensor.signal);
    out.push(',');
    out.push_str(TAG_ASSET);
    out.push('=');
    escape_tag(out, &r.sensor.asset);
    out.push(',');
    out.push_str(TAG_QUALITY);
    out.push('=');
    out.push_str(r.quality.as_str());
    if !site.is_empty() {
        out.push(',');
        out.push_str(TAG_SITE);
        out.push('=');
        escape_tag(out, site);
    }
    if !r.unit.is_empty() {
        out.push(',');
        out.push_str(TAG_UNIT);
        out.push('=');
        escape_tag(out, r.unit.symbol());
    }
    out.push(' ');
    out.push_str(FIELD_VALUE);
    out.push('=');
    let _ = write!(out, "{:?}", r.value);
    out.push(' ');
    let _ = write!(out, "{}", r.ts_ns);
    out.push('\n');
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_core::{Quality, SensorId, Unit};

    #[test]
    fn formats_and_escapes() {
        let mut r = Reading::new(SensorId::new("P 1,a", "temp c"), 5, 1.5, Unit::new("°C"));
        r.quality = Quality::Bad;
        let mut s = String::new();
        assert!(write_reading(&mut s, "site=x", &r));
        assert_eq!(
            s,
            "temp\\ c,asset=P\\ 1\\,a,quality=bad,site=site\\=x,unit=°C value=1.5 5\n"
        );
        r.value = f64::NAN;
        assert!(!write_reading(&mut s, "", &r));
        let mut s = String::new();
        let r = Reading::new(SensorId::new("a", "b"), 1, 3.0, Unit::none());
        write_reading(&mut s, "", &r);
        assert_eq!(s, "b,asset=a,quality=good value=3.0 1\n");
        let mut q = String::new();
        quote_field(&mut q, "say \"hi\"");
        assert_eq!(q, "\"say \\\"hi\\\"\"");
    }
}
