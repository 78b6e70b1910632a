//! Pure validation of the `[modbus]` section: [`ModbusConfig::validate`].
//!
//! One function per concern (device identity, network transport, serial transport, timing,
//! request limits, and per field: names, type options, address range and scaling). Each one
//! adds its problems to the same list, so the user sees every problem at once, each with its
//! path (`modbus.devices[2].fields[0].bit`). Checks across devices (unique names, unique
//! sensors, agreeing serial-line settings) share a [`Seen`] record. No I/O happens here; the
//! tests live with the config types in `config.rs`, which they parse.

use super::config::{DataType, DeviceConfig, Endpoint, FieldConfig, ModbusConfig, TransportKind};
use super::plan::{MAX_COILS_PER_REQUEST, MAX_REGISTERS_PER_REQUEST};
use millwright_core::validate::DEFAULT_MAX_NAME_BYTES;
use millwright_core::{check_name, NameKind, ValidationError};
use std::collections::{BTreeMap, HashSet};

impl ModbusConfig {
    /// Checks everything that can be checked without I/O and returns every problem found
    /// (empty = valid). Paths start with `modbus.`.
    pub fn validate(&self) -> Vec<ValidationError> {
        let mut issues = Vec::new();
        let mut seen = Seen::default();
        for (di, d) in self.devices.iter().enumerate() {
            let mut at = At {
                path: format!("modbus.devices[{di}]"),
                issues: &mut issues,
            };
            device_identity(d, &mut seen, &mut at);
            match d.transport {
                TransportKind::Tcp | TransportKind::RtuOverTcp => network_transport(d, &mut at),
                TransportKind::Rtu => serial_transport(d, &mut seen, &mut at),
            }
            timing(d, &mut at);
            request_limits(d, &mut at);
            if d.fields.is_empty() {
                at.push("fields", "a device needs at least one field");
            }
            for (fi, f) in d.fields.iter().enumerate() {
                let mut at = At {
                    path: format!("{}.fields[{fi}]", at.path),
                    issues: &mut *at.issues,
                };
                field_names(d, f, &mut seen, &mut at);
                field_type_options(d, f, &mut at);
                field_range_and_scaling(f, &mut at);
            }
        }
        issues
    }
}

/// What earlier devices used, for the checks across devices.
#[derive(Default)]
struct Seen {
    /// Device names.
    names: HashSet<String>,
    /// (asset, signal) → path of the field that produces it.
    sensors: BTreeMap<(String, String), String>,
    /// Serial device path → (endpoint, name of the first device on it).
    serial_lines: BTreeMap<String, (Endpoint, String)>,
}

/// Where problems are being found (a device or a field) and the list they go to.
struct At<'a> {
    path: String,
    issues: &'a mut Vec<ValidationError>,
}

impl At<'_> {
    /// A problem with `key` under this path (`""`: with the device or field as a whole).
    fn push(&mut self, key: &str, message: impl Into<String>) {
        let path = if key.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{key}", self.path)
        };
        self.issues.push(ValidationError::new(path, message));
    }
}

/// Name (non-empty, unique) and asset (non-empty).
fn device_identity(d: &DeviceConfig, seen: &mut Seen, at: &mut At<'_>) {
    if d.name.trim().is_empty() {
        at.push("name", "must not be empty");
    } else if !seen.names.insert(d.name.clone()) {
        at.push("name", format!("device name {:?} is used twice", d.name));
    }
    if d.asset.trim().is_empty() {
        at.push("asset", "must not be empty");
    } else if let Err(p) = check_name(&d.asset, NameKind::Asset, DEFAULT_MAX_NAME_BYTES) {
        at.push("asset", format!("{:?} {p}", d.asset));
    }
}

/// `tcp` and `rtu_over_tcp`: a host, a valid port, and no serial-line keys.
fn network_transport(d: &DeviceConfig, at: &mut At<'_>) {
    match &d.host {
        None => at.push(
            "host",
            format!("is required for transport {:?}", d.transport),
        ),
        Some(h) if h.trim().is_empty() => at.push("host", "must not be empty"),
        Some(_) => {}
    }
    if d.port == Some(0) {
        at.push("port", "must be 1..=65535");
    }
    for (set, name) in [
        (d.serial_path.is_some(), "serial_path"),
        (d.baud_rate.is_some(), "baud_rate"),
        (d.parity.is_some(), "parity"),
        (d.stop_bits.is_some(), "stop_bits"),
    ] {
        if set {
            at.push(name, "is only for transport \"rtu\" (serial line)");
        }
    }
}

/// `rtu`: a serial path, no network keys, valid line settings and unit id, and the same line
/// settings as every other device on that serial line.
fn serial_transport(d: &DeviceConfig, seen: &mut Seen, at: &mut At<'_>) {
    match &d.serial_path {
        None => at.push("serial_path", "is required for transport \"rtu\""),
        Some(p) if p.trim().is_empty() => at.push("serial_path", "must not be empty"),
        Some(_) => {}
    }
    if d.host.is_some() || d.port.is_some() {
        at.push(
            if d.host.is_some() { "host" } else { "port" },
            "is not used by transport \"rtu\" (use \"rtu_over_tcp\" for a serial device server)",
        );
    }
    if d.baud_rate == Some(0) {
        at.push("baud_rate", "must be > 0");
    }
    if let Some(s) = d.stop_bits {
        if s != 1 && s != 2 {
            at.push("stop_bits", format!("must be 1 or 2, not {s}"));
        }
    }
    if !(1..=247).contains(&d.unit_id) {
        at.push(
            "unit_id",
            format!("must be 1..=247 on a serial line, not {}", d.unit_id),
        );
    }
    if let (Some(path), Some(ep)) = (&d.serial_path, d.endpoint()) {
        match seen.serial_lines.get(path) {
            Some((other, owner)) if *other != ep => at.push(
                "",
                format!(
                    "serial line {path} is also used by device {owner:?} with different settings (baud rate, parity, stop bits must match)"
                ),
            ),
            Some(_) => {}
            None => {
                seen.serial_lines.insert(path.clone(), (ep, d.name.clone()));
            }
        }
    }
}

/// Poll interval, timeout, retries and back-off: positive, and an offline device is noticed
/// within three poll intervals.
fn timing(d: &DeviceConfig, at: &mut At<'_>) {
    if d.poll_interval_ms == 0 {
        at.push("poll_interval_ms", "must be > 0");
    }
    if d.timeout_ms == 0 {
        at.push("timeout_ms", "must be > 0");
    }
    if d.retries > 10 {
        at.push("retries", format!("must be at most 10, not {}", d.retries));
    }
    let attempts = u64::from(d.retries.min(10)) + 1;
    if d.poll_interval_ms > 0
        && d.timeout_ms.saturating_mul(attempts) > d.poll_interval_ms.saturating_mul(2)
    {
        at.push(
            "timeout_ms",
            format!(
                "timeout_ms × (retries + 1) = {} ms exceeds 2 × poll_interval_ms = {} ms; an offline device would not be detected within 3 poll intervals (lower timeout_ms or retries, or raise poll_interval_ms)",
                d.timeout_ms.saturating_mul(attempts),
                d.poll_interval_ms.saturating_mul(2)
            ),
        );
    }
    if d.backoff_max_ms < d.poll_interval_ms {
        at.push(
            "backoff_max_ms",
            format!(
                "must be at least poll_interval_ms ({} ms)",
                d.poll_interval_ms
            ),
        );
    }
}

/// The per-request caps within what the protocol allows.
fn request_limits(d: &DeviceConfig, at: &mut At<'_>) {
    if !(1..=MAX_REGISTERS_PER_REQUEST).contains(&d.max_registers_per_request) {
        at.push(
            "max_registers_per_request",
            format!(
                "must be 1..={MAX_REGISTERS_PER_REQUEST}, not {}",
                d.max_registers_per_request
            ),
        );
    }
    if !(1..=MAX_COILS_PER_REQUEST).contains(&d.max_coils_per_request) {
        at.push(
            "max_coils_per_request",
            format!(
                "must be 1..={MAX_COILS_PER_REQUEST}, not {}",
                d.max_coils_per_request
            ),
        );
    }
}

/// Signal and asset non-empty; each (asset, signal) produced by one field only (strings are
/// not readings and may repeat).
fn field_names(d: &DeviceConfig, f: &FieldConfig, seen: &mut Seen, at: &mut At<'_>) {
    if f.signal.trim().is_empty() {
        at.push("signal", "must not be empty");
    } else if let Err(p) = check_name(&f.signal, NameKind::Signal, DEFAULT_MAX_NAME_BYTES) {
        at.push("signal", format!("{:?} {p}", f.signal));
    }
    if matches!(&f.asset, Some(a) if a.trim().is_empty()) {
        at.push("asset", "must not be empty when set");
    } else if let Some(Err(p)) = f
        .asset
        .as_deref()
        .map(|a| check_name(a, NameKind::Asset, DEFAULT_MAX_NAME_BYTES))
    {
        at.push(
            "asset",
            format!("{:?} {p}", f.asset.as_deref().unwrap_or_default()),
        );
    }
    let asset = f.asset.clone().unwrap_or_else(|| d.asset.clone());
    if f.data_type != DataType::String && !f.signal.trim().is_empty() {
        let key = (asset, f.signal.clone());
        if let Some(prev) = seen.sensors.get(&key) {
            at.push(
                "signal",
                format!("sensor {}/{} is already produced by {prev}", key.0, key.1),
            );
        } else {
            seen.sensors.insert(key, at.path.clone());
        }
    }
}

/// The type fits the table (one-bit tables hold bools), and `bit` / `length_registers` are
/// given exactly for the types that need them, within range.
fn field_type_options(d: &DeviceConfig, f: &FieldConfig, at: &mut At<'_>) {
    match f.data_type {
        DataType::Bool => {}
        _ if f.function.is_bit() => at.push(
            "type",
            format!(
                "{} is a one-bit table; its fields must have type \"bool\", not {:?}",
                f.function, f.data_type
            ),
        ),
        _ => {}
    }
    match (f.data_type, f.bit) {
        (DataType::Bit, None) => at.push("bit", "is required for type \"bit\" (0..=15)"),
        (DataType::Bit, Some(b)) if b > 15 => at.push("bit", format!("must be 0..=15, not {b}")),
        (DataType::Bit, Some(_)) | (_, None) => {}
        (_, Some(_)) => at.push("bit", "is only for type \"bit\""),
    }
    let max_len = d.max_registers_per_request.min(MAX_REGISTERS_PER_REQUEST);
    match (f.data_type, f.length_registers) {
        (DataType::String, None) => at.push("length_registers", "is required for type \"string\""),
        (DataType::String, Some(n)) if n == 0 || n > max_len => at.push(
            "length_registers",
            format!("must be 1..={max_len} (the device's max_registers_per_request), not {n}"),
        ),
        (DataType::String, Some(_)) | (_, None) => {}
        (_, Some(_)) => at.push("length_registers", "is only for type \"string\""),
    }
}

/// The field's registers end inside the address space; scale and offset are usable numbers.
fn field_range_and_scaling(f: &FieldConfig, at: &mut At<'_>) {
    let pf = f.plan_field();
    if pf.end() > 65536 {
        at.push(
            "address",
            format!(
                "{} + {} registers runs past the last address 65535",
                f.address, pf.width
            ),
        );
    }
    if !f.scale.is_finite() || f.scale == 0.0 {
        at.push(
            "scale",
            format!("must be a finite non-zero number, not {}", f.scale),
        );
    }
    if !f.offset.is_finite() {
        at.push("offset", format!("must be finite, not {}", f.offset));
    }
}
