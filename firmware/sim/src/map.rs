//! The register map of each simulated machine as data: the sensor node's map
//! (`millwright_sensor::registers`) with machine-specific signal names, and the loop channels'
//! units and ranges filled in.
//!
//! Built once per kind on first use (the strings are leaked once, three kinds in total).

use std::sync::OnceLock;

use millwright_sensor::current_loop::LoopRange;
use millwright_sensor::registers::{self, RegisterDef};

use crate::config::MachineKind;

/// What one 4–20 mA channel measures on a machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopChannel {
    /// Signal name, e.g. "discharge_pressure_bar".
    pub signal: &'static str,
    /// Engineering unit, e.g. "bar".
    pub unit: &'static str,
    /// Value at 4 mA.
    pub lo: f32,
    /// Value at 20 mA.
    pub hi: f32,
}

impl LoopChannel {
    /// As a [`LoopRange`].
    pub fn range(&self) -> LoopRange {
        LoopRange {
            lo: self.lo,
            hi: self.hi,
        }
    }
}

const fn ch(signal: &'static str, unit: &'static str, lo: f32, hi: f32) -> LoopChannel {
    LoopChannel {
        signal,
        unit,
        lo,
        hi,
    }
}

/// The four loop channels of a machine kind.
pub fn loop_channels(kind: MachineKind) -> &'static [LoopChannel; 4] {
    const PUMP: [LoopChannel; 4] = [
        ch("discharge_pressure_bar", "bar", 0.0, 16.0),
        ch("flow_m3_h", "m³/h", 0.0, 250.0),
        ch("suction_pressure_bar", "bar", -1.0, 5.0),
        ch("motor_current_a", "A", 0.0, 100.0),
    ];
    const MOTOR: [LoopChannel; 4] = [
        ch("motor_current_a", "A", 0.0, 200.0),
        ch("speed_rpm", "rpm", 0.0, 3600.0),
        ch("winding_temp_c", "°C", 0.0, 200.0),
        ch("shaft_power_kw", "kW", 0.0, 110.0),
    ];
    const COMPRESSOR: [LoopChannel; 4] = [
        ch("discharge_pressure_bar", "bar", 0.0, 16.0),
        ch("discharge_temp_c", "°C", 0.0, 200.0),
        ch("motor_current_a", "A", 0.0, 150.0),
        ch("oil_pressure_bar", "bar", 0.0, 10.0),
    ];
    match kind {
        MachineKind::Pump => &PUMP,
        MachineKind::Motor => &MOTOR,
        MachineKind::Compressor => &COMPRESSOR,
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn build(kind: MachineKind) -> Vec<RegisterDef> {
    let loops = loop_channels(kind);
    let mut out = Vec::new();
    for d in registers::all_defs() {
        let mut d = *d;
        let loop_idx = |prefix: &str| -> Option<usize> {
            (0..4).find(|i| d.name.starts_with(&format!("loop{i}_")) && d.name.ends_with(prefix))
        };
        d.signal = match d.name {
            "uptime_s" => "uptime",
            "vel_rms_x" => "vibration_velocity_rms_x",
            "vel_rms_y" => "vibration_velocity_rms_y",
            "vel_rms_z" => "vibration_velocity_rms_z",
            "vel_rms_overall" => "vibration_rms_mm_s",
            "acc_rms" => "vibration_acceleration_rms",
            "acc_peak" => "vibration_acceleration_peak",
            "crest_factor" => "vibration_crest_factor",
            "kurtosis" => "vibration_kurtosis",
            "temperature" => "bearing_temp_c",
            "temperature_mc" => "bearing_temp_fine_c",
            "vib_alarm" => "vibration_alarm_threshold",
            "temp_alarm" => "temperature_alarm_threshold",
            other => other,
        };
        if let Some(i) = loop_idx("_value") {
            d.signal = loops[i].signal;
            d.unit = loops[i].unit;
            d.description = leak(format!("{} ({} mA loop {i})", loops[i].signal, "4-20"));
        } else if let Some(i) = loop_idx("_current") {
            d.signal = leak(format!("{}_loop_current", loops[i].signal));
        } else if let Some(i) = loop_idx("_lo") {
            d.signal = leak(format!("{}_range_lo", loops[i].signal));
            d.unit = loops[i].unit;
        } else if let Some(i) = loop_idx("_hi") {
            d.signal = leak(format!("{}_range_hi", loops[i].signal));
            d.unit = loops[i].unit;
        }
        out.push(d);
    }
    out
}

/// The register map served by a machine of `kind`: name, address, function (input/holding),
/// data type, word order, scale, unit and signal name of every field.
pub fn register_map(kind: MachineKind) -> &'static [RegisterDef] {
    static MAPS: [OnceLock<Vec<RegisterDef>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = match kind {
        MachineKind::Pump => 0,
        MachineKind::Motor => 1,
        MachineKind::Compressor => 2,
    };
    MAPS[i].get_or_init(|| build(kind)).as_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_sensor::registers::{Function, RegisterValueType};

    #[test]
    fn maps_follow_the_sensor_layout_with_machine_signals() {
        for kind in MachineKind::ALL {
            let map = register_map(kind);
            let base: Vec<_> = registers::all_defs().collect();
            assert_eq!(map.len(), base.len());
            for (m, b) in map.iter().zip(base) {
                assert_eq!(
                    (m.name, m.address, m.function, m.data_type, m.word_order),
                    (b.name, b.address, b.function, b.data_type, b.word_order)
                );
                assert_eq!(m.scale, b.scale);
            }
            let mut signals: Vec<_> = map
                .iter()
                .map(|d| (d.function == Function::Input, d.signal))
                .collect();
            signals.sort();
            signals.dedup();
            assert_eq!(
                signals.len(),
                map.len(),
                "{kind}: signal names must be unique per table"
            );
            assert!(
                !map.iter().any(|d| d.unit == "eng"),
                "{kind}: every loop has a unit"
            );
        }
        let pump = register_map(MachineKind::Pump);
        let d = pump
            .iter()
            .find(|d| d.signal == "discharge_pressure_bar")
            .unwrap();
        assert_eq!(
            (d.address, d.data_type, d.unit),
            (16, RegisterValueType::F32, "bar")
        );
        let types: std::collections::BTreeSet<_> =
            pump.iter().map(|d| d.data_type.name()).collect();
        assert_eq!(
            types.len(),
            6,
            "u16, i16, u32, i32, f32 and bits16 are all exercised"
        );
    }
}
