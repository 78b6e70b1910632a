//! The `[modbus]` section of `millwright.toml`: devices, transports and register maps.
//!
//! Plain serde structs (`deny_unknown_fields` everywhere; field docs are the user documentation)
//! and what is derived from them (endpoints, plan inputs). Their pure validation,
//! [`ModbusConfig::validate`], lives in `validate.rs`; its tests are here, with the sample
//! config they parse. No I/O happens here.
//!
//! ```toml
//! [[modbus.devices]]
//! name = "pump-1"            # unique device name (logs, metrics)
//! asset = "P-101"            # asset tag of the readings
//! transport = "tcp"          # tcp | rtu | rtu_over_tcp
//! host = "192.0.2.10"
//! port = 502
//! unit_id = 1
//! poll_interval_ms = 1000
//! timeout_ms = 300
//!
//! [[modbus.devices.fields]]
//! signal = "bearing_temp_c"
//! function = "holding"       # coil | discrete_input | holding | input
//! address = 100
//! type = "i16"               # bool bit u16 i16 u32 i32 u64 i64 f32 f64 string
//! scale = 0.1
//! unit = "°C"
//! ```
//!
//! Devices whose transport endpoint is the same (same host:port and transport, or the same serial
//! line) share one connection: that is how several unit ids behind one gateway are configured.

use super::decode::{FieldType, RegisterOrder};
use super::plan::{
    self, Function, PlanField, PlanLimits, MAX_COILS_PER_REQUEST, MAX_REGISTERS_PER_REQUEST,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The `[modbus]` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusConfig {
    /// Devices to poll (`[[modbus.devices]]`).
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
}

/// How a device is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// Modbus TCP (MBAP header) to `host:port`.
    #[default]
    Tcp,
    /// Modbus RTU on a serial line `serial_path`.
    Rtu,
    /// Modbus RTU frames tunnelled through a TCP socket to `host:port` (serial device servers).
    RtuOverTcp,
}

/// Serial parity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Even parity (the Modbus RTU default in the spec).
    Even,
    /// Odd parity.
    Odd,
}

/// Data type of a field as written in config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// Coil / discrete input, or a register that is non-zero.
    Bool,
    /// One bit of a register; needs `bit`.
    Bit,
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    I16,
    /// Unsigned 32-bit (two registers).
    U32,
    /// Signed 32-bit (two registers).
    I32,
    /// Unsigned 64-bit (four registers).
    U64,
    /// Signed 64-bit (four registers).
    I64,
    /// IEEE-754 float (two registers).
    F32,
    /// IEEE-754 double (four registers).
    F64,
    /// ASCII text of `length_registers` registers. Strings are not numbers: they are read and
    /// logged when they change (serial numbers, firmware versions) but never emitted as readings.
    String,
}

/// One `[[modbus.devices]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Unique device name, used in logs and metrics.
    pub name: String,
    /// Asset tag of this device's readings (a field may override it).
    pub asset: String,
    /// `tcp`, `rtu` or `rtu_over_tcp`.
    #[serde(default)]
    pub transport: TransportKind,
    /// Host name or IP address (tcp, rtu_over_tcp).
    #[serde(default)]
    pub host: Option<String>,
    /// TCP port (tcp, rtu_over_tcp); default 502.
    #[serde(default)]
    pub port: Option<u16>,
    /// Serial device, e.g. `/dev/ttyUSB0` (rtu).
    #[serde(default)]
    pub serial_path: Option<String>,
    /// Serial speed in baud (rtu); default 9600.
    #[serde(default)]
    pub baud_rate: Option<u32>,
    /// Serial parity (rtu): `none`, `even`, `odd`; default none.
    #[serde(default)]
    pub parity: Option<Parity>,
    /// Serial stop bits, 1 or 2 (rtu); default 1.
    #[serde(default)]
    pub stop_bits: Option<u8>,
    /// Modbus unit (slave) id; 1..=247 on RTU, 0..=255 on TCP. Default 1.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// Time between the starts of two poll cycles, in milliseconds.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Timeout of one request (and of connecting), in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts of a request that timed out or failed in transport, within one cycle.
    /// `timeout_ms × (retries + 1)` must not exceed `2 × poll_interval_ms`, so a device that
    /// stops answering is reported offline within three poll intervals.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Longest wait between attempts while the device is offline (exponential back-off starting
    /// at one poll interval), in milliseconds.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Largest hole of unused registers bridged inside one coalesced read (coils: 16 × this).
    #[serde(default = "default_max_gap")]
    pub max_gap_registers: u16,
    /// Register cap of one read (1..=125); lower it for devices with small buffers.
    #[serde(default = "default_max_registers")]
    pub max_registers_per_request: u16,
    /// Coil / discrete-input cap of one read (1..=2000).
    #[serde(default = "default_max_coils")]
    pub max_coils_per_request: u16,
    /// The register map (`[[modbus.devices.fields]]`).
    #[serde(default)]
    pub fields: Vec<FieldConfig>,
}

/// One `[[modbus.devices.fields]]` entry: a value in the device's register map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// Signal name of the readings, e.g. `bearing_temp_c`.
    pub signal: String,
    /// Asset tag, when it differs from the device's.
    #[serde(default)]
    pub asset: Option<String>,
    /// `coil`, `discrete_input`, `holding` or `input`.
    pub function: Function,
    /// Zero-based protocol address (register 40001 is holding address 0).
    pub address: u16,
    /// Data type.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Bit number 0..=15 (0 = least significant) for `type = "bit"`.
    #[serde(default)]
    pub bit: Option<u8>,
    /// Length in registers (two characters each) for `type = "string"`.
    #[serde(default)]
    pub length_registers: Option<u16>,
    /// Byte/word order: `ABCD` (default, big-endian), `CDAB` (word swap), `BADC` (byte swap),
    /// `DCBA` (little-endian).
    #[serde(default)]
    pub order: RegisterOrder,
    /// Multiplier applied to the raw value: `value = raw × scale + offset`.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling.
    #[serde(default)]
    pub offset: f64,
    /// Engineering unit symbol of the scaled value, e.g. `°C`.
    #[serde(default)]
    pub unit: String,
}

fn default_unit_id() -> u8 {
    1
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    500
}
fn default_retries() -> u32 {
    1
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_max_gap() -> u16 {
    4
}
fn default_max_registers() -> u16 {
    MAX_REGISTERS_PER_REQUEST
}
fn default_max_coils() -> u16 {
    MAX_COILS_PER_REQUEST
}
fn default_scale() -> f64 {
    1.0
}

/// The transport endpoint of a device; devices with equal endpoints share one connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// Modbus TCP.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// RTU framing over TCP.
    RtuOverTcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// RTU on a serial line.
    Rtu {
        /// Serial device path.
        path: String,
        /// Baud rate.
        baud_rate: u32,
        /// Parity: 0 none, 1 even, 2 odd (kept as a number so the key is hashable and ordered).
        parity: u8,
        /// Stop bits.
        stop_bits: u8,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::RtuOverTcp { host, port } => write!(f, "rtu+tcp://{host}:{port}"),
            Endpoint::Rtu {
                path, baud_rate, ..
            } => write!(f, "rtu://{path}@{baud_rate}"),
        }
    }
}

impl FieldConfig {
    /// The decoder's type, or `None` when `bit` / `length_registers` are missing.
    pub fn field_type(&self) -> Option<FieldType> {
        Some(match self.data_type {
            DataType::Bool => FieldType::Bool,
            DataType::Bit => FieldType::Bit(self.bit?),
            DataType::U16 => FieldType::U16,
            DataType::I16 => FieldType::I16,
            DataType::U32 => FieldType::U32,
            DataType::I32 => FieldType::I32,
            DataType::U64 => FieldType::U64,
            DataType::I64 => FieldType::I64,
            DataType::F32 => FieldType::F32,
            DataType::F64 => FieldType::F64,
            DataType::String => FieldType::Ascii(self.length_registers?),
        })
    }

    /// What the planner needs (coils and discrete inputs are one item wide).
    pub fn plan_field(&self) -> PlanField {
        let width = if self.function.is_bit() {
            1
        } else {
            self.field_type().map_or(1, FieldType::registers).max(1)
        };
        PlanField {
            function: self.function,
            address: self.address,
            width,
        }
    }
}

impl DeviceConfig {
    /// The transport endpoint (defaults filled in); `None` when host / serial path is missing.
    pub fn endpoint(&self) -> Option<Endpoint> {
        let port = self.port.unwrap_or(502);
        Some(match self.transport {
            TransportKind::Tcp => Endpoint::Tcp {
                host: self.host.clone()?,
                port,
            },
            TransportKind::RtuOverTcp => Endpoint::RtuOverTcp {
                host: self.host.clone()?,
                port,
            },
            TransportKind::Rtu => Endpoint::Rtu {
                path: self.serial_path.clone()?,
                baud_rate: self.baud_rate.unwrap_or(9600),
                parity: match self.parity.unwrap_or_default() {
                    Parity::None => 0,
                    Parity::Even => 1,
                    Parity::Odd => 2,
                },
                stop_bits: self.stop_bits.unwrap_or(1),
            },
        })
    }

    /// Coalescing limits of this device.
    pub fn plan_limits(&self) -> PlanLimits {
        PlanLimits {
            max_gap_registers: self.max_gap_registers,
            max_registers: self.max_registers_per_request,
            max_coils: self.max_coils_per_request,
        }
    }

    /// Planner input for every field, in field order.
    pub fn plan_fields(&self) -> Vec<PlanField> {
        self.fields.iter().map(FieldConfig::plan_field).collect()
    }

    /// The reads one poll cycle of this device needs (before any split after an exception).
    pub fn planned_request_count(&self) -> usize {
        plan::plan(&self.plan_fields(), &self.plan_limits()).len()
    }
}

/// Request counts of one device, for `check-config` and benchmarks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePlanSummary {
    /// Device name.
    pub device: String,
    /// Fields in its map.
    pub fields: usize,
    /// Reads per poll cycle after coalescing.
    pub requests_per_cycle: usize,
    /// Reads per cycle if every field were read on its own.
    pub per_field_requests: usize,
}

impl ModbusConfig {
    /// Planned reads per poll cycle of every device (what `check-config` reports).
    pub fn plan_summary(&self) -> Vec<DevicePlanSummary> {
        self.devices
            .iter()
            .map(|d| DevicePlanSummary {
                device: d.name.clone(),
                fields: d.fields.len(),
                requests_per_cycle: d.planned_request_count(),
                per_field_requests: d.fields.len(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ModbusConfig {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Root {
            modbus: ModbusConfig,
        }
        toml::from_str::<Root>(s).unwrap().modbus
    }

    const GOOD: &str = r#"
        [[modbus.devices]]
        name = "pump-1"
        asset = "P-101"
        host = "127.0.0.1"
        port = 1502
        poll_interval_ms = 100
        timeout_ms = 50
        [[modbus.devices.fields]]
        signal = "temp_c"
        function = "holding"
        address = 0
        type = "i16"
        scale = 0.1
        unit = "°C"
        [[modbus.devices.fields]]
        signal = "flow_m3_h"
        function = "input"
        address = 10
        type = "f32"
        order = "CDAB"
        [[modbus.devices.fields]]
        signal = "running"
        function = "holding"
        address = 1
        type = "bit"
        bit = 3
    "#;

    #[test]
    fn good_config_parses_and_validates() {
        let c = parse(GOOD);
        assert_eq!(c.validate(), vec![]);
        let d = &c.devices[0];
        assert_eq!(d.unit_id, 1);
        assert_eq!(d.retries, 1);
        assert_eq!(d.fields[1].order, RegisterOrder::CDAB);
        assert_eq!(d.fields[2].field_type(), Some(FieldType::Bit(3)));
        assert_eq!(
            d.endpoint(),
            Some(Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 1502
            })
        );
        // holding 0..2 in one read, input 10..12 in another.
        assert_eq!(d.planned_request_count(), 2);
        assert_eq!(c.plan_summary()[0].per_field_requests, 3);
    }

    #[test]
    fn names_line_protocol_cannot_carry_are_config_errors() {
        let mut c = parse(GOOD);
        c.devices[0].asset = "P+1".into();
        c.devices[0].fields[0].signal = "#temp".into();
        let e: Vec<String> = c.validate().iter().map(|e| e.to_string()).collect();
        assert!(
            e.iter()
                .any(|m| m.contains("asset") && m.contains("wildcard")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("signal") && m.contains("starts with `#`")),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let bad = GOOD.replace("unit = \"°C\"", "unit = \"°C\"\nunits = \"x\"");
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Root {
            modbus: ModbusConfig,
        }
        let e = toml::from_str::<Root>(&bad).unwrap_err().to_string();
        assert!(e.contains("units"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut c = parse(GOOD);
        c.devices.push(c.devices[0].clone()); // duplicate name and sensors
        let d = &mut c.devices[0];
        d.timeout_ms = 500; // 2 × 500 > 2 × 100
        d.max_registers_per_request = 200;
        d.fields[0].bit = Some(2);
        d.fields[2].bit = None;
        d.fields[1].scale = 0.0;
        d.fields.push(FieldConfig {
            signal: "sn".into(),
            asset: None,
            function: Function::Coil,
            address: 65535,
            data_type: DataType::String,
            bit: None,
            length_registers: None,
            order: RegisterOrder::ABCD,
            scale: 1.0,
            offset: f64::NAN,
            unit: String::new(),
        });
        let d1 = &mut c.devices[1];
        d1.transport = TransportKind::Rtu;
        d1.unit_id = 0;
        let paths: Vec<String> = c.validate().iter().map(|i| i.path.clone()).collect();
        for p in [
            "modbus.devices[0].timeout_ms",
            "modbus.devices[0].max_registers_per_request",
            "modbus.devices[0].fields[0].bit",
            "modbus.devices[0].fields[2].bit",
            "modbus.devices[0].fields[1].scale",
            "modbus.devices[0].fields[3].type",
            "modbus.devices[0].fields[3].length_registers",
            "modbus.devices[0].fields[3].offset",
            "modbus.devices[1].name",
            "modbus.devices[1].serial_path",
            "modbus.devices[1].host",
            "modbus.devices[1].unit_id",
            "modbus.devices[1].fields[0].signal",
        ] {
            assert!(paths.iter().any(|x| x == p), "missing {p} in {paths:#?}");
        }
        // Every message is self-explaining text.
        assert!(c
            .validate()
            .iter()
            .all(|i| i.to_string().len() > i.path.len() + 5));
    }

    #[test]
    fn shared_serial_line_must_agree() {
        let mk = |name: &str, unit: u8, baud: u32| DeviceConfig {
            transport: TransportKind::Rtu,
            host: None,
            port: None,
            serial_path: Some("/dev/ttyS0".into()),
            baud_rate: Some(baud),
            name: name.into(),
            unit_id: unit,
            ..parse(GOOD).devices[0].clone()
        };
        let mut a = mk("a", 1, 9600);
        let mut b = mk("b", 2, 9600);
        a.asset = "A".into();
        b.asset = "B".into();
        let ok = ModbusConfig {
            devices: vec![a.clone(), b.clone()],
        };
        assert_eq!(ok.validate(), vec![]);
        assert_eq!(a.endpoint(), b.endpoint(), "two units share one line");
        b.baud_rate = Some(19200);
        let bad = ModbusConfig {
            devices: vec![a, b],
        };
        let issues = bad.validate();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert!(issues[0].message.contains("different settings"));
    }
}
