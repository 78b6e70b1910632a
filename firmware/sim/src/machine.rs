//! One simulated machine: the plant model, its simulated chips, and the REAL sensor-node logic
//! (`millwright_sensor::node::SensorNode`) reading them through the real drivers.
//!
//! Synchronous and deterministic for a given seed; the caller decides when time advances.

use std::sync::{Arc, Mutex};

use millwright_drivers::ads1115::{Ads1115, Gain};
use millwright_drivers::adxl345::{Adxl345, DataRate, Range, SpiInterface};
use millwright_drivers::tmp117::Tmp117;
use millwright_sensor::node::{SensorNode, SensorNodeConfig, WriteError};
use millwright_sensor::registers::{holding, input};

use crate::config::{Fault, MachineConfig};
use crate::devices::{
    Sensors, SharedSensors, SimI2c, SimSpi, ADS1115_ADDR, SHUNT_OHMS, TMP117_ADDR,
};
use crate::map::loop_channels;
use crate::operation::Operation;
use crate::physics::Plant;

/// Accelerometer samples per window.
pub const WINDOW: usize = 512;
/// Accelerometer sample rate, Hz.
pub const SAMPLE_RATE_HZ: f64 = 1600.0;

type Node = SensorNode<SpiInterface<SimSpi>, SimI2c, SimI2c, WINDOW>;

/// A machine with its sensor node.
pub struct SimMachine {
    plant: Plant,
    sensors: SharedSensors,
    node: Node,
    buf: Vec<[i16; 3]>,
}

impl SimMachine {
    /// Builds the machine at simulated time 0.
    pub fn new(cfg: &MachineConfig) -> Self {
        let sensors: SharedSensors = Arc::new(Mutex::new(Sensors::new(cfg.seed)));
        let bus = SimI2c::new(sensors.clone());
        let chans = loop_channels(cfg.kind);
        let node_cfg = SensorNodeConfig {
            accel_range: Range::G16,
            accel_rate: DataRate::Hz1600,
            shunt_milliohm: (SHUNT_OHMS * 1000.0) as u32,
            adc_gain: Gain::Fsr4_096,
            loops: [
                chans[0].range(),
                chans[1].range(),
                chans[2].range(),
                chans[3].range(),
            ],
            ..SensorNodeConfig::default()
        };
        let node = SensorNode::new(
            Adxl345::new_spi(SimSpi::new(sensors.clone())),
            Tmp117::new(bus.clone(), TMP117_ADDR),
            Ads1115::new(bus, ADS1115_ADDR),
            node_cfg,
        );
        SimMachine {
            plant: Plant::with_operation(
                cfg.kind,
                cfg.seed,
                cfg.faults.clone(),
                Operation::new(&cfg.events, cfg.ambient),
            ),
            sensors,
            node,
            buf: Vec::with_capacity(WINDOW),
        }
    }

    /// Advances to simulated time `t_s` and lets the sensor node take one window.
    pub fn step_to(&mut self, t_s: f64) {
        self.plant.advance_to(t_s);
        let meas = self.plant.measure();
        self.plant
            .accel_window(SAMPLE_RATE_HZ, &mut self.buf, WINDOW);
        {
            let mut s = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut s.accel, &mut self.buf);
            s.accel_pos = 0;
            s.meas = meas;
            s.temp_new = true;
        }
        self.node
            .run_window(t_s.clamp(0.0, f64::from(u32::MAX)) as u32);
    }

    /// Adds a fault.
    pub fn inject(&mut self, fault: Fault) {
        self.plant.inject(fault);
    }

    /// The plant model.
    pub fn plant(&self) -> &Plant {
        &self.plant
    }

    /// Input registers.
    pub fn input_registers(&self) -> [u16; input::COUNT] {
        *self.node.input_registers()
    }

    /// Holding registers.
    pub fn holding_registers(&self) -> [u16; holding::COUNT] {
        *self.node.holding_registers()
    }

    /// Writes holding registers (validated by the sensor node).
    pub fn write_holding(&mut self, addr: u16, values: &[u16]) -> Result<(), WriteError> {
        self.node.write_holding(addr, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FaultKind, MachineKind};
    use millwright_sensor::registers::status;

    #[test]
    fn node_runs_on_simulated_pump() {
        let mut cfg = MachineConfig::new(MachineKind::Pump, "P-1", 1);
        cfg.faults.push(Fault {
            kind: FaultKind::StuckSensor,
            onset_s: 10.0,
            ramp_s: 0.0,
        });
        let mut m = SimMachine::new(&cfg);
        m.step_to(1.0);
        let r = m.input_registers();
        let st = r[usize::from(input::STATUS)];
        assert_ne!(st & status::DATA_VALID, 0, "status {st:#06x}");
        assert_eq!(
            st & (status::ACCEL_FAULT | status::TEMP_FAULT | status::ADC_FAULT),
            0,
            "status {st:#06x}"
        );
        let vel = f64::from(r[usize::from(input::VEL_RMS_OVERALL)]) / 100.0;
        assert!((0.5..6.0).contains(&vel), "velocity {vel}");
        for t in 0..30 {
            m.step_to(11.0 + f64::from(t));
        }
        let st = m.input_registers()[usize::from(input::STATUS)];
        assert_ne!(
            st & status::TEMP_FROZEN,
            0,
            "stuck sensor must be flagged: {st:#06x}"
        );
    }
}
