//! The sensor node: owns the three drivers, samples them once per window, computes the features
//! and keeps the Modbus register image up to date.
//!
//! Bus or device errors never stop the node: they set status bits, put the documented invalid
//! markers in the affected registers, and the failed device is initialised again on the next
//! window. No allocation (the window buffer is a const-generic array), no panics, no clock: the
//! caller passes the uptime.

use embedded_hal::i2c::I2c;
use millwright_drivers::ads1115::{Ads1115, Gain, Mux, Rate};
use millwright_drivers::adxl345::{self, Adxl345, DataRate, Interface, Range};
use millwright_drivers::tmp117::{self, Tmp117};

use crate::current_loop::{self, LoopRange};
use crate::features::{self, VibrationFeatures};
use crate::limits::FROZEN_WINDOWS;
use crate::registers::{holding, input, invalid, loop_status, status, WordOrder};
/// ADXL345 full-resolution scale in µm/s² per LSB (3.9 mg × 9.80665 m/s²).
pub const ACCEL_SCALE_UM_S2: u32 = 38_246;
/// How often DATA_READY is polled per sample before the window is abandoned.
pub const MAX_READY_POLLS: u16 = 64;

/// Static node configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorNodeConfig {
    /// Accelerometer range.
    pub accel_range: Range,
    /// Accelerometer output data rate (the window's sample rate).
    pub accel_rate: DataRate,
    /// Shunt resistor of the loop inputs, milliohms (100 Ω = 100 000).
    pub shunt_milliohm: u32,
    /// ADC gain (±4.096 V suits 100 Ω up to 40 mA).
    pub adc_gain: Gain,
    /// Engineering ranges of the four loop channels.
    pub loops: [LoopRange; 4],
    /// Vibration alarm threshold, 0.01 mm/s.
    pub vib_alarm_centi_mm_s: u16,
    /// Temperature alarm threshold, 0.01 °C.
    pub temp_alarm_centi_c: i16,
}

impl Default for SensorNodeConfig {
    fn default() -> Self {
        Self {
            accel_range: Range::G16,
            accel_rate: DataRate::Hz1600,
            shunt_milliohm: 100_000,
            adc_gain: Gain::Fsr4_096,
            loops: [LoopRange { lo: 0.0, hi: 100.0 }; 4],
            vib_alarm_centi_mm_s: 710,
            temp_alarm_centi_c: 8000,
        }
    }
}

/// Why a holding-register write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The address range is outside the holding map.
    IllegalAddress(u16),
    /// The value is not acceptable for the register at this address.
    IllegalValue(u16),
}

/// Per-device fault memory.
#[derive(Debug, Clone, Copy, Default)]
struct Health {
    accel_ready: bool,
    temp_ready: bool,
    temp_last: Option<i16>,
    temp_same: u16,
    adc_last: [Option<i16>; 4],
    adc_same: [u16; 4],
}

/// The sensor node. `N` is the window length in samples (8..=1024).
pub struct SensorNode<ACC, TI2C, AI2C, const N: usize> {
    accel: Adxl345<ACC>,
    temp: Tmp117<TI2C>,
    adc: Ads1115<AI2C>,
    cfg: SensorNodeConfig,
    buf: [[i16; N]; 3],
    health: Health,
    input: [u16; input::COUNT],
    holding: [u16; holding::COUNT],
    sequence: u32,
    last_features: Option<VibrationFeatures>,
}

impl<ACC, TI2C, AI2C, const N: usize> SensorNode<ACC, TI2C, AI2C, N>
where
    ACC: Interface,
    TI2C: I2c,
    AI2C: I2c,
{
    /// Builds a node from its drivers. No bus traffic until the first [`SensorNode::run_window`].
    pub fn new(
        accel: Adxl345<ACC>,
        temp: Tmp117<TI2C>,
        adc: Ads1115<AI2C>,
        cfg: SensorNodeConfig,
    ) -> Self {
        let mut node = Self {
            accel,
            temp,
            adc,
            cfg,
            buf: [[0; N]; 3],
            health: Health::default(),
            input: [0; input::COUNT],
            holding: [0; holding::COUNT],
            sequence: 0,
            last_features: None,
        };
        node.holding[usize::from(holding::VIB_ALARM)] = cfg.vib_alarm_centi_mm_s;
        node.holding[usize::from(holding::TEMP_ALARM)] = cfg.temp_alarm_centi_c as u16;
        for c in 0..4 {
            node.put_holding_f32(holding::LOOP_LO[c], cfg.loops[c].lo);
            node.put_holding_f32(holding::LOOP_HI[c], cfg.loops[c].hi);
        }
        node.mark_all_invalid();
        node
    }

    /// Releases the three drivers.
    pub fn destroy(self) -> (Adxl345<ACC>, Tmp117<TI2C>, Ads1115<AI2C>) {
        (self.accel, self.temp, self.adc)
    }

    fn put_holding_f32(&mut self, addr: u16, v: f32) {
        let [a, b] = WordOrder::Abcd.split(v.to_bits());
        let i = usize::from(addr);
        self.holding[i] = a;
        self.holding[i + 1] = b;
    }

    fn holding_f32(&self, addr: u16) -> f32 {
        let i = usize::from(addr);
        f32::from_bits(WordOrder::Abcd.join([self.holding[i], self.holding[i + 1]]))
    }

    fn set_in(&mut self, addr: u16, v: u16) {
        self.input[usize::from(addr)] = v;
    }

    fn set_in32(&mut self, addr: u16, order: WordOrder, v: u32) {
        let [a, b] = order.split(v);
        self.set_in(addr, a);
        self.set_in(addr + 1, b);
    }

    fn mark_all_invalid(&mut self) {
        for a in input::VEL_RMS_X..=input::KURTOSIS {
            self.set_in(a, invalid::U16);
        }
        self.set_in(input::TEMPERATURE, invalid::I16 as u16);
        self.set_in32(input::TEMPERATURE_MC, WordOrder::Abcd, invalid::I32 as u32);
        for c in 0..4 {
            self.set_in32(input::LOOP_VALUE[c], WordOrder::Abcd, f32::NAN.to_bits());
            self.set_in(input::LOOP_CURRENT[c], invalid::U16);
        }
    }

    /// The input register image (function 0x04), addresses 0..[`input::COUNT`].
    pub fn input_registers(&self) -> &[u16; input::COUNT] {
        &self.input
    }

    /// The holding register image (function 0x03), addresses 0..[`holding::COUNT`].
    pub fn holding_registers(&self) -> &[u16; holding::COUNT] {
        &self.holding
    }

    /// The features of the last complete window, if any.
    pub fn last_features(&self) -> Option<&VibrationFeatures> {
        self.last_features.as_ref()
    }

    /// The effective configuration (holding registers applied).
    pub fn config(&self) -> SensorNodeConfig {
        let mut c = self.cfg;
        c.vib_alarm_centi_mm_s = self.holding[usize::from(holding::VIB_ALARM)];
        c.temp_alarm_centi_c = self.holding[usize::from(holding::TEMP_ALARM)] as i16;
        for (i, l) in c.loops.iter_mut().enumerate() {
            *l = LoopRange {
                lo: self.holding_f32(holding::LOOP_LO[i]),
                hi: self.holding_f32(holding::LOOP_HI[i]),
            };
        }
        c
    }

    /// Writes holding registers starting at `addr`. An f32 written whole (both words in one
    /// request) must be finite and a loop range written whole must have lo != hi, otherwise
    /// the write is refused and every register stays as it was. A range left unusable by
    /// single-word writes yields NaN loop values with the FAILURE bit.
    pub fn write_holding(&mut self, addr: u16, values: &[u16]) -> Result<(), WriteError> {
        let start = usize::from(addr);
        let end = start + values.len();
        if values.is_empty() || end > holding::COUNT {
            return Err(WriteError::IllegalAddress(addr));
        }
        let covers = |a: u16| start <= usize::from(a) && usize::from(a) + 2 <= end;
        let saved = self.holding;
        self.holding[start..end].copy_from_slice(values);
        for c in 0..4 {
            let (lo_a, hi_a) = (holding::LOOP_LO[c], holding::LOOP_HI[c]);
            let lo = self.holding_f32(lo_a);
            let hi = self.holding_f32(hi_a);
            let bad_lo = covers(lo_a) && !lo.is_finite();
            let bad_hi = covers(hi_a) && !hi.is_finite();
            let bad_pair = covers(lo_a) && covers(hi_a) && lo == hi;
            if bad_lo || bad_hi || bad_pair {
                self.holding = saved;
                let at = if bad_hi && !bad_lo { hi_a } else { lo_a };
                return Err(WriteError::IllegalValue(at));
            }
        }
        Ok(())
    }

    fn sample_window(&mut self) -> Result<bool, ()> {
        if !self.health.accel_ready {
            self.accel
                .init(self.cfg.accel_range, self.cfg.accel_rate)
                .map_err(|_| ())?;
            self.health.accel_ready = true;
        }
        let max = self.cfg.accel_range.max_raw();
        let mut saturated = false;
        for i in 0..N {
            let mut ready = false;
            for _ in 0..MAX_READY_POLLS {
                if self.accel.data_ready().map_err(|_| ())? {
                    ready = true;
                    break;
                }
            }
            if !ready {
                return Err(());
            }
            let s = self.accel.read_raw().map_err(|_| ())?;
            for (axis, v) in [s.x, s.y, s.z].into_iter().enumerate() {
                self.buf[axis][i] = v;
                saturated |= v >= max || v < -max;
            }
        }
        Ok(saturated)
    }

    /// Acquires one window (N accelerometer samples, one temperature, four loop channels),
    /// computes the features and updates every input register. `uptime_s` is the node's uptime.
    pub fn run_window(&mut self, uptime_s: u32) {
        let cfg = self.config();
        let mut st: u16 = 0;

        // Vibration.
        match self.sample_window() {
            Ok(saturated) => {
                let fs = self.cfg.accel_rate.hz();
                match features::vibration_features(
                    &self.buf[0],
                    &self.buf[1],
                    &self.buf[2],
                    fs,
                    ACCEL_SCALE_UM_S2,
                ) {
                    Ok(f) => {
                        let c = |um: u32| (um.saturating_add(5) / 10).min(0xFFFE) as u16;
                        let h = |x: u32| x.min(0xFFFE) as u16;
                        self.set_in(input::VEL_RMS_X, c(f.axes[0].vel_rms_um_s));
                        self.set_in(input::VEL_RMS_Y, c(f.axes[1].vel_rms_um_s));
                        self.set_in(input::VEL_RMS_Z, c(f.axes[2].vel_rms_um_s));
                        self.set_in(input::VEL_RMS_OVERALL, c(f.vel_rms_overall_um_s));
                        // µm/s² -> 0.01 m/s² = 10 000 µm/s²
                        let a = |um: u32| (um.saturating_add(5_000) / 10_000).min(0xFFFE) as u16;
                        self.set_in(input::ACC_RMS, a(f.acc_rms_max_um_s2));
                        self.set_in(input::ACC_PEAK, a(f.acc_peak_max_um_s2));
                        self.set_in(input::CREST_FACTOR, h(f.crest_max_x100));
                        self.set_in(input::KURTOSIS, h(f.kurtosis_max_x100));
                        if saturated {
                            st |= status::ACCEL_SATURATED;
                        }
                        if f.axes.iter().any(|a| a.flat) {
                            st |= status::ACCEL_FLAT;
                        }
                        if c(f.vel_rms_overall_um_s) >= cfg.vib_alarm_centi_mm_s {
                            st |= status::VIB_ALARM;
                        }
                        st |= status::DATA_VALID;
                        self.last_features = Some(f);
                    }
                    Err(_) => st |= status::ACCEL_FAULT,
                }
            }
            Err(()) => {
                self.health.accel_ready = false;
                st |= status::ACCEL_FAULT;
            }
        }
        if st & status::ACCEL_FAULT != 0 {
            for a in input::VEL_RMS_X..=input::KURTOSIS {
                self.set_in(a, invalid::U16);
            }
        }

        // Temperature.
        match self.read_temperature() {
            Ok(raw) => {
                let mc = tmp117::raw_to_millicelsius(raw);
                let centi = ((mc + if mc >= 0 { 5 } else { -5 }) / 10)
                    .clamp(i32::from(i16::MIN) + 1, i32::from(i16::MAX))
                    as i16;
                self.set_in(input::TEMPERATURE, centi as u16);
                self.set_in32(input::TEMPERATURE_MC, WordOrder::Abcd, mc as u32);
                if self.health.temp_last == Some(raw) {
                    self.health.temp_same = self.health.temp_same.saturating_add(1);
                } else {
                    self.health.temp_same = 0;
                }
                self.health.temp_last = Some(raw);
                if self.health.temp_same >= FROZEN_WINDOWS {
                    st |= status::TEMP_FROZEN;
                }
                if centi >= cfg.temp_alarm_centi_c {
                    st |= status::TEMP_ALARM;
                }
            }
            Err(()) => {
                st |= status::TEMP_FAULT;
                self.set_in(input::TEMPERATURE, invalid::I16 as u16);
                self.set_in32(input::TEMPERATURE_MC, WordOrder::Abcd, invalid::I32 as u32);
            }
        }

        // Loops.
        let mut ls: u16 = 0;
        for c in 0..4 {
            let mux = Mux::single(c as u8).unwrap_or(Mux::Single0);
            match self.adc.read_single(mux, self.cfg.adc_gain, Rate::Sps860) {
                Ok(conv) => {
                    let ua = current_loop::current_ua(conv.microvolts(), self.cfg.shunt_milliohm);
                    let flags = current_loop::classify(ua, conv.is_saturated());
                    let mut bits = 0;
                    if flags.under_range {
                        bits |= loop_status::UNDER_RANGE;
                    }
                    if flags.over_range {
                        bits |= loop_status::OVER_RANGE;
                    }
                    if flags.failure {
                        bits |= loop_status::FAILURE;
                    }
                    if self.health.adc_last[c] == Some(conv.raw) {
                        self.health.adc_same[c] = self.health.adc_same[c].saturating_add(1);
                    } else {
                        self.health.adc_same[c] = 0;
                    }
                    self.health.adc_last[c] = Some(conv.raw);
                    if self.health.adc_same[c] >= FROZEN_WINDOWS {
                        bits |= loop_status::FROZEN;
                    }
                    let value = if flags.failure || !cfg.loops[c].is_valid() {
                        f32::NAN
                    } else {
                        cfg.loops[c].scale(ua)
                    };
                    self.set_in32(input::LOOP_VALUE[c], WordOrder::Abcd, value.to_bits());
                    let cur = if ua < 0 { 0 } else { ua.min(0xFFFE) as u16 };
                    self.set_in(input::LOOP_CURRENT[c], cur);
                    ls |= loop_status::shift(bits, c);
                }
                Err(_) => {
                    st |= status::ADC_FAULT;
                    ls |= loop_status::shift(loop_status::FAILURE, c);
                    self.set_in32(input::LOOP_VALUE[c], WordOrder::Abcd, f32::NAN.to_bits());
                    self.set_in(input::LOOP_CURRENT[c], invalid::U16);
                }
            }
        }
        if ls != 0 {
            st |= status::LOOP_FAULT;
        }

        self.sequence = self.sequence.wrapping_add(1);
        self.set_in(input::STATUS, st);
        self.set_in(input::LOOP_STATUS, ls);
        self.set_in(input::HEARTBEAT, self.sequence as u16);
        self.set_in32(input::SEQUENCE, WordOrder::Abcd, self.sequence);
        self.set_in32(input::UPTIME_S, WordOrder::Cdab, uptime_s);
    }

    fn read_temperature(&mut self) -> Result<i16, ()> {
        if !self.health.temp_ready {
            let cfg = tmp117::Config {
                mode: tmp117::Mode::Continuous,
                conv: 4,
                averaging: tmp117::Averaging::Avg8,
            };
            self.temp.init(cfg).map_err(|_| ())?;
            self.health.temp_ready = true;
        }
        match self.temp.read_raw() {
            Ok(raw) => Ok(raw),
            Err(millwright_drivers::Error::InvalidReading(_)) => Err(()),
            Err(_) => {
                self.health.temp_ready = false;
                Err(())
            }
        }
    }
}

/// Re-export for users that build an accelerometer interface.
pub use adxl345::{I2cInterface, SpiInterface};
