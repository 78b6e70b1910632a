//! The sensor node's Modbus register map: addresses, data types, scaling, status bits, and the
//! generator of `REGISTERS.md` (a test keeps the file equal to [`write_markdown`]'s output).
//!
//! This module only describes and encodes; it does no I/O. Multi-register values are
//! big-endian within each register; the word order is given per register (ABCD = high word
//! first at the lower address, CDAB = low word first).
//!
//! Longer than ~600 lines on purpose: most of it is the register tables (one row per register,
//! laid out like the document) and the document's text, which read best next to each other.

use core::fmt;

/// Modbus table a register lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Input register (read with function 0x04), read-only.
    Input,
    /// Holding register (read 0x03, write 0x06 / 0x10).
    Holding,
}

/// Data type of a register field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterValueType {
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit, two's complement.
    I16,
    /// Unsigned 32-bit over two registers.
    U32,
    /// Signed 32-bit over two registers.
    I32,
    /// IEEE-754 single over two registers.
    F32,
    /// 16 flag bits (see the bit tables).
    Bits16,
}

impl RegisterValueType {
    /// Number of 16-bit registers the type occupies.
    pub const fn registers(self) -> u16 {
        match self {
            RegisterValueType::U16 | RegisterValueType::I16 | RegisterValueType::Bits16 => 1,
            RegisterValueType::U32 | RegisterValueType::I32 | RegisterValueType::F32 => 2,
        }
    }

    /// Lower-case name used in documents and configs.
    pub const fn name(self) -> &'static str {
        match self {
            RegisterValueType::U16 => "u16",
            RegisterValueType::I16 => "i16",
            RegisterValueType::U32 => "u32",
            RegisterValueType::I32 => "i32",
            RegisterValueType::F32 => "f32",
            RegisterValueType::Bits16 => "bits16",
        }
    }
}

/// Word order of two-register values (bytes inside a register are always big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOrder {
    /// High word at the lower address ("ABCD", big-endian).
    Abcd,
    /// Low word at the lower address ("CDAB", word-swapped).
    Cdab,
}

impl WordOrder {
    /// "ABCD" or "CDAB".
    pub const fn name(self) -> &'static str {
        match self {
            WordOrder::Abcd => "ABCD",
            WordOrder::Cdab => "CDAB",
        }
    }

    /// Splits a 32-bit value into the two registers in this order.
    pub const fn split(self, v: u32) -> [u16; 2] {
        let hi = (v >> 16) as u16;
        let lo = v as u16;
        match self {
            WordOrder::Abcd => [hi, lo],
            WordOrder::Cdab => [lo, hi],
        }
    }

    /// Joins two registers read in this order into a 32-bit value.
    pub const fn join(self, regs: [u16; 2]) -> u32 {
        let (hi, lo) = match self {
            WordOrder::Abcd => (regs[0], regs[1]),
            WordOrder::Cdab => (regs[1], regs[0]),
        };
        ((hi as u32) << 16) | lo as u32
    }
}

/// One field of the register map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegisterDef {
    /// Register name (stable identifier).
    pub name: &'static str,
    /// Signal name the value stands for (generic here; the simulator names them per machine).
    pub signal: &'static str,
    /// First register address (0-based protocol address).
    pub address: u16,
    /// Table.
    pub function: Function,
    /// Data type.
    pub data_type: RegisterValueType,
    /// Word order (meaningful for two-register types).
    pub word_order: WordOrder,
    /// Engineering value = raw × scale.
    pub scale: f64,
    /// Unit of the engineering value ("" for dimensionless / bit fields).
    pub unit: &'static str,
    /// Value the register holds when the measurement is invalid, as text ("" if none).
    pub invalid: &'static str,
    /// One-line description.
    pub description: &'static str,
}

/// Input register addresses.
pub mod input {
    /// Status bits ([`super::status`]).
    pub const STATUS: u16 = 0;
    /// Heartbeat, +1 per completed window, wraps at 65535.
    pub const HEARTBEAT: u16 = 1;
    /// Window sequence number, u32 ABCD.
    pub const SEQUENCE: u16 = 2;
    /// Uptime in seconds, u32 CDAB.
    pub const UPTIME_S: u16 = 4;
    /// RMS velocity X, 0.01 mm/s.
    pub const VEL_RMS_X: u16 = 6;
    /// RMS velocity Y, 0.01 mm/s.
    pub const VEL_RMS_Y: u16 = 7;
    /// RMS velocity Z, 0.01 mm/s.
    pub const VEL_RMS_Z: u16 = 8;
    /// Overall RMS velocity, 0.01 mm/s.
    pub const VEL_RMS_OVERALL: u16 = 9;
    /// Largest axis RMS acceleration, 0.01 m/s².
    pub const ACC_RMS: u16 = 10;
    /// Largest axis peak acceleration, 0.01 m/s².
    pub const ACC_PEAK: u16 = 11;
    /// Largest axis crest factor, ×0.01.
    pub const CREST_FACTOR: u16 = 12;
    /// Largest axis kurtosis, ×0.01.
    pub const KURTOSIS: u16 = 13;
    /// Temperature, i16 0.01 °C.
    pub const TEMPERATURE: u16 = 14;
    /// Loop status bits ([`super::loop_status`]).
    pub const LOOP_STATUS: u16 = 15;
    /// Loop 0..3 engineering values, f32 ABCD, 2 registers each.
    pub const LOOP_VALUE: [u16; 4] = [16, 18, 20, 22];
    /// Loop 0..3 currents, u16 0.001 mA.
    pub const LOOP_CURRENT: [u16; 4] = [24, 25, 26, 27];
    /// Temperature, i32 ABCD, 0.001 °C.
    pub const TEMPERATURE_MC: u16 = 28;
    /// Number of input registers.
    pub const COUNT: usize = 30;
}

/// Holding register addresses.
pub mod holding {
    /// Vibration alarm threshold on overall RMS velocity, u16 0.01 mm/s.
    pub const VIB_ALARM: u16 = 0;
    /// Temperature alarm threshold, i16 0.01 °C.
    pub const TEMP_ALARM: u16 = 1;
    /// Loop 0..3 value at 4 mA, f32 ABCD.
    pub const LOOP_LO: [u16; 4] = [2, 6, 10, 14];
    /// Loop 0..3 value at 20 mA, f32 ABCD.
    pub const LOOP_HI: [u16; 4] = [4, 8, 12, 16];
    /// Number of holding registers.
    pub const COUNT: usize = 18;
}

/// Bits of [`input::STATUS`].
pub mod status {
    /// Accelerometer missing, wrong id, or bus error this window.
    pub const ACCEL_FAULT: u16 = 1 << 0;
    /// Temperature sensor missing, wrong id, no conversion, or bus error.
    pub const TEMP_FAULT: u16 = 1 << 1;
    /// ADC missing or bus error (all loop values invalid).
    pub const ADC_FAULT: u16 = 1 << 2;
    /// At least one acceleration sample at the range limit (clipped).
    pub const ACCEL_SATURATED: u16 = 1 << 3;
    /// An axis had zero variance over the window (stuck accelerometer).
    pub const ACCEL_FLAT: u16 = 1 << 4;
    /// Temperature identical for [`crate::limits::FROZEN_WINDOWS`] windows (stuck sensor).
    pub const TEMP_FROZEN: u16 = 1 << 5;
    /// Overall RMS velocity ≥ the holding-register threshold.
    pub const VIB_ALARM: u16 = 1 << 6;
    /// Temperature ≥ the holding-register threshold.
    pub const TEMP_ALARM: u16 = 1 << 7;
    /// At least one loop channel has a bit set in the loop status register.
    pub const LOOP_FAULT: u16 = 1 << 8;
    /// Vibration registers hold features of a complete window.
    pub const DATA_VALID: u16 = 1 << 15;
    /// (bit, name, meaning) for documents.
    pub const ALL: [(u16, &str, &str); 10] = [
        (
            0,
            "ACCEL_FAULT",
            "accelerometer missing, wrong device id, invalid data or bus error",
        ),
        (
            1,
            "TEMP_FAULT",
            "temperature sensor missing, wrong id, no conversion yet or bus error",
        ),
        (
            2,
            "ADC_FAULT",
            "loop ADC missing or bus error; all loop values invalid",
        ),
        (
            3,
            "ACCEL_SATURATED",
            "an acceleration sample hit the range limit (clipped)",
        ),
        (
            4,
            "ACCEL_FLAT",
            "an axis had zero variance over the window (stuck accelerometer)",
        ),
        (
            5,
            "TEMP_FROZEN",
            "temperature code unchanged for 20 consecutive windows (stuck sensor)",
        ),
        (6, "VIB_ALARM", "overall RMS velocity >= holding VIB_ALARM"),
        (7, "TEMP_ALARM", "temperature >= holding TEMP_ALARM"),
        (8, "LOOP_FAULT", "a bit is set in LOOP_STATUS"),
        (
            15,
            "DATA_VALID",
            "vibration registers hold the features of a complete window",
        ),
    ];
}

/// Bits of [`input::LOOP_STATUS`]: channel `c` uses bits `4c..4c+3`.
pub mod loop_status {
    /// Current below 3.8 mA.
    pub const UNDER_RANGE: u16 = 1 << 0;
    /// Current above 20.5 mA.
    pub const OVER_RANGE: u16 = 1 << 1;
    /// NE43 failure (≤ 3.6 mA or ≥ 21 mA), ADC saturated or ADC error: value is NaN.
    pub const FAILURE: u16 = 1 << 2;
    /// ADC code unchanged for 20 windows (stuck transmitter).
    pub const FROZEN: u16 = 1 << 3;
    /// The bits of channel `c`.
    pub const fn shift(bits: u16, c: usize) -> u16 {
        bits << (4 * c)
    }
}

/// Invalid markers.
pub mod invalid {
    /// u16 measurement registers.
    pub const U16: u16 = 0xFFFF;
    /// i16 measurement registers.
    pub const I16: i16 = i16::MIN;
    /// i32 measurement registers.
    pub const I32: i32 = i32::MIN;
}

// One row of a table: positional on purpose, so each row reads like the document.
#[allow(clippy::too_many_arguments)]
const fn def(
    name: &'static str,
    address: u16,
    function: Function,
    data_type: RegisterValueType,
    word_order: WordOrder,
    scale: f64,
    unit: &'static str,
    invalid: &'static str,
    description: &'static str,
) -> RegisterDef {
    RegisterDef {
        name,
        signal: name,
        address,
        function,
        data_type,
        word_order,
        scale,
        unit,
        invalid,
        description,
    }
}

use Function::{Holding, Input};
use RegisterValueType::*;
use WordOrder::{Abcd, Cdab};

/// The input register map, by address.
pub const INPUT_MAP: [RegisterDef; 22] = [
    def(
        "status",
        0,
        Input,
        Bits16,
        Abcd,
        1.0,
        "",
        "",
        "status bits, see table",
    ),
    def(
        "heartbeat",
        1,
        Input,
        U16,
        Abcd,
        1.0,
        "",
        "",
        "+1 per window, wraps",
    ),
    def(
        "sequence",
        2,
        Input,
        U32,
        Abcd,
        1.0,
        "",
        "",
        "windows computed since start",
    ),
    def(
        "uptime_s",
        4,
        Input,
        U32,
        Cdab,
        1.0,
        "s",
        "",
        "seconds since start (low word first)",
    ),
    def(
        "vel_rms_x",
        6,
        Input,
        U16,
        Abcd,
        0.01,
        "mm/s",
        "0xFFFF",
        "RMS velocity, X axis",
    ),
    def(
        "vel_rms_y",
        7,
        Input,
        U16,
        Abcd,
        0.01,
        "mm/s",
        "0xFFFF",
        "RMS velocity, Y axis",
    ),
    def(
        "vel_rms_z",
        8,
        Input,
        U16,
        Abcd,
        0.01,
        "mm/s",
        "0xFFFF",
        "RMS velocity, Z axis",
    ),
    def(
        "vel_rms_overall",
        9,
        Input,
        U16,
        Abcd,
        0.01,
        "mm/s",
        "0xFFFF",
        "overall RMS velocity sqrt(x²+y²+z²)",
    ),
    def(
        "acc_rms",
        10,
        Input,
        U16,
        Abcd,
        0.01,
        "m/s²",
        "0xFFFF",
        "RMS acceleration, largest axis",
    ),
    def(
        "acc_peak",
        11,
        Input,
        U16,
        Abcd,
        0.01,
        "m/s²",
        "0xFFFF",
        "peak acceleration, largest axis",
    ),
    def(
        "crest_factor",
        12,
        Input,
        U16,
        Abcd,
        0.01,
        "",
        "0xFFFF",
        "crest factor, largest axis",
    ),
    def(
        "kurtosis",
        13,
        Input,
        U16,
        Abcd,
        0.01,
        "",
        "0xFFFF",
        "kurtosis (3 = Gaussian), largest axis",
    ),
    def(
        "temperature",
        14,
        Input,
        I16,
        Abcd,
        0.01,
        "°C",
        "0x8000",
        "temperature (TMP117)",
    ),
    def(
        "loop_status",
        15,
        Input,
        Bits16,
        Abcd,
        1.0,
        "",
        "",
        "loop status bits, 4 per channel",
    ),
    def(
        "loop0_value",
        16,
        Input,
        F32,
        Abcd,
        1.0,
        "eng",
        "NaN",
        "loop 0 engineering value",
    ),
    def(
        "loop1_value",
        18,
        Input,
        F32,
        Abcd,
        1.0,
        "eng",
        "NaN",
        "loop 1 engineering value",
    ),
    def(
        "loop2_value",
        20,
        Input,
        F32,
        Abcd,
        1.0,
        "eng",
        "NaN",
        "loop 2 engineering value",
    ),
    def(
        "loop3_value",
        22,
        Input,
        F32,
        Abcd,
        1.0,
        "eng",
        "NaN",
        "loop 3 engineering value",
    ),
    def(
        "loop0_current",
        24,
        Input,
        U16,
        Abcd,
        0.001,
        "mA",
        "0xFFFF",
        "loop 0 current",
    ),
    def(
        "loop1_current",
        25,
        Input,
        U16,
        Abcd,
        0.001,
        "mA",
        "0xFFFF",
        "loop 1 current",
    ),
    def(
        "loop2_current",
        26,
        Input,
        U16,
        Abcd,
        0.001,
        "mA",
        "0xFFFF",
        "loop 2 current",
    ),
    def(
        "loop3_current",
        27,
        Input,
        U16,
        Abcd,
        0.001,
        "mA",
        "0xFFFF",
        "loop 3 current",
    ),
];

/// Extra input field after the loop block (kept separate so [`INPUT_MAP`] stays readable).
pub const INPUT_MAP_TAIL: [RegisterDef; 1] = [def(
    "temperature_mc",
    28,
    Input,
    I32,
    Abcd,
    0.001,
    "°C",
    "0x80000000",
    "temperature, milli-degrees",
)];

/// The holding register map, by address.
pub const HOLDING_MAP: [RegisterDef; 10] = [
    def(
        "vib_alarm",
        0,
        Holding,
        U16,
        Abcd,
        0.01,
        "mm/s",
        "",
        "alarm threshold, overall RMS velocity (default 7.10)",
    ),
    def(
        "temp_alarm",
        1,
        Holding,
        I16,
        Abcd,
        0.01,
        "°C",
        "",
        "alarm threshold, temperature (default 80.00)",
    ),
    def(
        "loop0_lo",
        2,
        Holding,
        F32,
        Abcd,
        1.0,
        "eng",
        "",
        "loop 0 value at 4 mA",
    ),
    def(
        "loop0_hi",
        4,
        Holding,
        F32,
        Abcd,
        1.0,
        "eng",
        "",
        "loop 0 value at 20 mA",
    ),
    def(
        "loop1_lo",
        6,
        Holding,
        F32,
        Abcd,
        1.0,
        "eng",
        "",
        "loop 1 value at 4 mA",
    ),
    def(
        "loop1_hi",
        8,
        Holding,
        F32,
        Abcd,
        1.0,
        "eng",
        "",
        "loop 1 value at 20 mA",
    ),
    def(
        "loop2_lo",
        10,
        Holding,
        F32,
        Abcd,
        1.0,
        "eng",
        "",
        "loop 2 value at 4 mA",
    ),
    def(
        "loop2_hi",
        12,
        Holding,
        F32,
        Abcd,
        1.0,
        "eng",
        "",
        "loop 2 value at 20 mA",
    ),
    def(
        "loop3_lo",
        14,
        Holding,
        F32,
        Abcd,
        1.0,
        "eng",
        "",
        "loop 3 value at 4 mA",
    ),
    def(
        "loop3_hi",
        16,
        Holding,
        F32,
        Abcd,
        1.0,
        "eng",
        "",
        "loop 3 value at 20 mA",
    ),
];

/// Every register definition: inputs (including the tail) then holdings.
pub fn all_defs() -> impl Iterator<Item = &'static RegisterDef> {
    INPUT_MAP
        .iter()
        .chain(INPUT_MAP_TAIL.iter())
        .chain(HOLDING_MAP.iter())
}

fn table(out: &mut dyn fmt::Write, defs: &mut dyn Iterator<Item = &RegisterDef>) -> fmt::Result {
    writeln!(
        out,
        "| address | name | type | words | order | scale | unit | invalid | description |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
    for d in defs {
        let order = if d.data_type.registers() == 2 {
            d.word_order.name()
        } else {
            "-"
        };
        writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
            d.address,
            d.name,
            d.data_type.name(),
            d.data_type.registers(),
            order,
            d.scale,
            d.unit,
            d.invalid,
            d.description
        )?;
    }
    Ok(())
}

/// Writes the register map document (the content of `firmware/sensor/REGISTERS.md`).
pub fn write_markdown(out: &mut dyn fmt::Write) -> fmt::Result {
    writeln!(out, "# Millwright sensor node — Modbus register map")?;
    writeln!(out)?;
    writeln!(
        out,
        "Generated from `firmware/sensor/src/registers.rs` (`registers::write_markdown`);"
    )?;
    writeln!(
        out,
        "the test `registers_md_matches_code` fails when this file and the code differ."
    )?;
    writeln!(out, "Regenerate with `MILLWRIGHT_WRITE_REGISTERS_MD=1 cargo test -p millwright-sensor --test registers_doc`.")?;
    writeln!(out)?;
    writeln!(
        out,
        "- Addresses are 0-based protocol addresses. Engineering value = raw × scale."
    )?;
    writeln!(
        out,
        "- Bytes inside a register are big-endian. Two-register values give their word order:"
    )?;
    writeln!(
        out,
        "  ABCD = high word at the lower address, CDAB = low word at the lower address."
    )?;
    writeln!(
        out,
        "- `eng` = the engineering unit of the loop channel (set by the holding registers)."
    )?;
    writeln!(
        out,
        "- When a measurement is invalid the register holds the `invalid` marker and the"
    )?;
    writeln!(
        out,
        "  status bits say why; never read a marker as a value."
    )?;
    writeln!(
        out,
        "- Features are computed per window of accelerometer samples (DC removed, trapezoidal"
    )?;
    writeln!(out, "  integration to velocity, velocity mean removed); heartbeat and sequence advance per window.")?;
    writeln!(out)?;
    writeln!(out, "## Input registers (function 0x04)")?;
    writeln!(out)?;
    table(out, &mut INPUT_MAP.iter().chain(INPUT_MAP_TAIL.iter()))?;
    writeln!(out)?;
    writeln!(
        out,
        "## Holding registers (function 0x03, write 0x06 / 0x10)"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Writes are validated: an f32 written whole (both words in one 0x10 request) must be"
    )?;
    writeln!(
        out,
        "finite and a loop range written whole must have lo != hi, otherwise the write is refused"
    )?;
    writeln!(
        out,
        "with exception 0x03 (illegal data value) and nothing changes. A range left unusable by"
    )?;
    writeln!(
        out,
        "single-word writes gives NaN loop values with the FAILURE bit."
    )?;
    writeln!(out)?;
    table(out, &mut HOLDING_MAP.iter())?;
    writeln!(out)?;
    writeln!(out, "## `status` bits")?;
    writeln!(out)?;
    writeln!(out, "| bit | name | meaning |")?;
    writeln!(out, "|---|---|---|")?;
    for (bit, name, meaning) in status::ALL {
        writeln!(out, "| {bit} | {name} | {meaning} |")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "## `loop_status` bits (channel c uses bits 4c .. 4c+3)"
    )?;
    writeln!(out)?;
    writeln!(out, "| bit | name | meaning |")?;
    writeln!(out, "|---|---|---|")?;
    writeln!(
        out,
        "| 4c+0 | UNDER_RANGE | current < 3.8 mA (NAMUR NE43) |"
    )?;
    writeln!(
        out,
        "| 4c+1 | OVER_RANGE | current > 20.5 mA or ADC saturated |"
    )?;
    writeln!(out, "| 4c+2 | FAILURE | current <= 3.6 mA or >= 21 mA, ADC saturated or ADC error; value is NaN |")?;
    writeln!(
        out,
        "| 4c+3 | FROZEN | ADC code unchanged for {} consecutive windows (stuck transmitter) |",
        crate::limits::FROZEN_WINDOWS
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_tables_and_tables_do_not_overlap() {
        let by_name = |n: &str| all_defs().find(|d| d.name == n).map(|d| d.address);
        assert_eq!(by_name("status"), Some(input::STATUS));
        assert_eq!(by_name("heartbeat"), Some(input::HEARTBEAT));
        assert_eq!(by_name("sequence"), Some(input::SEQUENCE));
        assert_eq!(by_name("uptime_s"), Some(input::UPTIME_S));
        assert_eq!(by_name("vel_rms_overall"), Some(input::VEL_RMS_OVERALL));
        assert_eq!(by_name("kurtosis"), Some(input::KURTOSIS));
        assert_eq!(by_name("temperature"), Some(input::TEMPERATURE));
        assert_eq!(by_name("loop_status"), Some(input::LOOP_STATUS));
        assert_eq!(by_name("loop2_value"), Some(input::LOOP_VALUE[2]));
        assert_eq!(by_name("loop3_current"), Some(input::LOOP_CURRENT[3]));
        assert_eq!(by_name("temperature_mc"), Some(input::TEMPERATURE_MC));
        assert_eq!(by_name("vib_alarm"), Some(holding::VIB_ALARM));
        assert_eq!(by_name("temp_alarm"), Some(holding::TEMP_ALARM));
        assert_eq!(by_name("loop1_lo"), Some(holding::LOOP_LO[1]));
        assert_eq!(by_name("loop3_hi"), Some(holding::LOOP_HI[3]));
        for (map, count) in [
            (
                &INPUT_MAP
                    .iter()
                    .chain(INPUT_MAP_TAIL.iter())
                    .copied()
                    .collect::<std::vec::Vec<_>>(),
                input::COUNT,
            ),
            (&HOLDING_MAP.to_vec(), holding::COUNT),
        ] {
            let mut next = 0u16;
            for d in map.iter() {
                assert_eq!(d.address, next, "{} must follow the previous field", d.name);
                next = d.address + d.data_type.registers();
            }
            assert_eq!(usize::from(next), count);
        }
    }

    #[test]
    fn documented_frozen_window_count_matches_code() {
        let text = std::format!("{} consecutive windows", crate::limits::FROZEN_WINDOWS);
        assert!(status::ALL
            .iter()
            .any(|(_, n, m)| *n == "TEMP_FROZEN" && m.contains(&text)));
    }

    #[test]
    fn word_order_round_trip() {
        assert_eq!(WordOrder::Abcd.split(0x1234_5678), [0x1234, 0x5678]);
        assert_eq!(WordOrder::Cdab.split(0x1234_5678), [0x5678, 0x1234]);
        for o in [WordOrder::Abcd, WordOrder::Cdab] {
            assert_eq!(o.join(o.split(0xDEAD_BEEF)), 0xDEAD_BEEF);
        }
    }
}
