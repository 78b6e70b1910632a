//! Simulated sensor chips on simulated buses, implementing the embedded-hal 1.0 traits so the
//! real drivers run unchanged: an ADXL345 on SPI ([`SimSpi`], a [`SpiDevice`]) and a TMP117
//! (address 0x49) plus an ADS1115 (address 0x48) on one I2C bus ([`SimI2c`], an [`I2c`]).
//!
//! The chips model the datasheet registers the drivers touch (ids, configuration, data-ready,
//! EEPROM busy after power-on, OS bit and conversion time, power-on result marker). The values
//! they convert come from [`Sensors`], which the machine model fills once per window. No
//! panics: a poisoned lock is recovered, unknown addresses are NACKed.

use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::i2c::{self, I2c, NoAcknowledgeSource};
use embedded_hal::spi::{self, Operation, SpiDevice};

use crate::physics::{Measurements, Rng};

/// I2C address of the simulated TMP117 (ADD0 to V+).
pub const TMP117_ADDR: u8 = 0x49;
/// I2C address of the simulated ADS1115 (ADDR to GND).
pub const ADS1115_ADDR: u8 = 0x48;
/// Loop shunt, ohms.
pub const SHUNT_OHMS: f64 = 100.0;

/// What the chips see: the accelerometer samples of the current window and the slow values.
#[derive(Debug)]
pub struct Sensors {
    /// Accelerometer samples for the current window (codes).
    pub accel: Vec<[i16; 3]>,
    /// Next sample to hand out.
    pub accel_pos: usize,
    /// Slow measurements (temperature, loop currents).
    pub meas: Measurements,
    /// A TMP117 conversion completed since the last read (Data_Ready).
    pub temp_new: bool,
    rng: Rng,
}

impl Sensors {
    /// Empty sensors with a noise seed.
    pub fn new(seed: u64) -> Self {
        Sensors {
            accel: Vec::new(),
            accel_pos: 0,
            meas: Measurements {
                temp_c: 25.0,
                loops_ma: [4.0; 4],
                frozen_temp_code: None,
                frozen_loop0: false,
            },
            temp_new: false,
            rng: Rng::new(seed ^ 0xADC),
        }
    }
}

/// Shared handle to [`Sensors`].
pub type SharedSensors = Arc<Mutex<Sensors>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Error of the simulated SPI bus (never produced by the model itself; present for the trait).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSpiError;

impl spi::Error for SimSpiError {
    fn kind(&self) -> spi::ErrorKind {
        spi::ErrorKind::Other
    }
}

/// Simulated ADXL345 on a 4-wire SPI bus.
#[derive(Debug)]
pub struct SimSpi {
    sensors: SharedSensors,
    regs: [u8; 64],
    latched: [u8; 6],
}

impl SimSpi {
    /// A powered-on ADXL345 (standby, reset register values).
    pub fn new(sensors: SharedSensors) -> Self {
        let mut regs = [0u8; 64];
        regs[0x00] = 0xE5;
        regs[0x2C] = 0x0A;
        SimSpi {
            sensors,
            regs,
            latched: [0; 6],
        }
    }

    fn measuring(&self) -> bool {
        self.regs[0x2D] & 0x08 != 0
    }

    fn read_reg(&mut self, addr: u8) -> u8 {
        let a = usize::from(addr & 0x3F);
        match a {
            0x30 => {
                let s = lock(&self.sensors);
                if self.measuring() && s.accel_pos < s.accel.len() {
                    0x80 | 0x02 // DATA_READY, WATERMARK-style filler bit
                } else {
                    0x02
                }
            }
            0x32 => {
                // Reading DATAX0 latches a whole sample, as the burst read requires.
                let mut s = lock(&self.sensors);
                let sample = if self.measuring() && s.accel_pos < s.accel.len() {
                    let v = s.accel[s.accel_pos];
                    s.accel_pos += 1;
                    v
                } else {
                    [0; 3]
                };
                drop(s);
                // Full resolution keeps the LSB at 3.9 mg; the sim generates ±16 g codes.
                for (i, v) in sample.iter().enumerate() {
                    let b = v.to_le_bytes();
                    self.latched[2 * i] = b[0];
                    self.latched[2 * i + 1] = b[1];
                }
                self.latched[0]
            }
            0x33..=0x37 => self.latched[a - 0x32],
            _ => self.regs[a],
        }
    }
}

impl spi::ErrorType for SimSpi {
    type Error = SimSpiError;
}

impl SpiDevice for SimSpi {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        let mut cmd: Option<u8> = None;
        let mut addr: u8 = 0;
        for op in operations.iter_mut() {
            match op {
                Operation::Write(bytes) => {
                    let Some((&c, rest)) = bytes.split_first() else {
                        continue;
                    };
                    if cmd.is_none() {
                        cmd = Some(c);
                        addr = c & 0x3F;
                        if c & 0x80 == 0 {
                            for (i, &b) in rest.iter().enumerate() {
                                let a = usize::from(addr) + i;
                                // DEVID and the data registers are read-only.
                                if a < 64 && a != 0 && !(0x30..=0x37).contains(&a) {
                                    self.regs[a] = b;
                                }
                            }
                        }
                    }
                }
                Operation::Read(buf) => {
                    if cmd.is_some_and(|c| c & 0x80 != 0) {
                        for b in buf.iter_mut() {
                            *b = self.read_reg(addr);
                            addr = (addr + 1) & 0x3F;
                        }
                    } else {
                        buf.fill(0);
                    }
                }
                Operation::Transfer(read, _) => read.fill(0),
                Operation::TransferInPlace(buf) => buf.fill(0),
                Operation::DelayNs(_) => {}
            }
        }
        Ok(())
    }
}

/// Error of the simulated I2C bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimI2cError(pub i2c::ErrorKind);

impl i2c::Error for SimI2cError {
    fn kind(&self) -> i2c::ErrorKind {
        self.0
    }
}

#[derive(Debug)]
struct Tmp117Model {
    pointer: u8,
    config: u16,
    eeprom_busy_reads: u8,
    converted: bool,
    thigh: u16,
    tlow: u16,
    offset: u16,
}

#[derive(Debug)]
struct Ads1115Model {
    pointer: u8,
    config: u16,
    busy_polls: u8,
    conversion: i16,
    lo: u16,
    hi: u16,
}

#[derive(Debug)]
struct I2cBus {
    sensors: SharedSensors,
    tmp: Tmp117Model,
    ads: Ads1115Model,
}

/// Simulated I2C bus with a TMP117 and an ADS1115. Clones are handles to the same bus.
#[derive(Debug, Clone)]
pub struct SimI2c {
    bus: Arc<Mutex<I2cBus>>,
}

impl SimI2c {
    /// A bus with both chips freshly powered on.
    pub fn new(sensors: SharedSensors) -> Self {
        SimI2c {
            bus: Arc::new(Mutex::new(I2cBus {
                sensors,
                tmp: Tmp117Model {
                    pointer: 0,
                    config: 0x0220,
                    eeprom_busy_reads: 1,
                    converted: false,
                    thigh: 0x6000,
                    tlow: 0x8000,
                    offset: 0,
                },
                ads: Ads1115Model {
                    pointer: 0,
                    config: 0x8583,
                    busy_polls: 0,
                    conversion: 0,
                    lo: 0x8000,
                    hi: 0x7FFF,
                },
            })),
        }
    }
}

impl I2cBus {
    fn tmp_write(&mut self, bytes: &[u8]) {
        let Some((&p, rest)) = bytes.split_first() else {
            return;
        };
        self.tmp.pointer = p;
        if rest.len() >= 2 {
            let v = u16::from_be_bytes([rest[0], rest[1]]);
            match p {
                0x01 => {
                    if v & 0x0002 != 0 {
                        self.tmp.config = 0x0220; // soft reset
                        self.tmp.converted = false;
                    } else {
                        self.tmp.config = v & 0x0FFC;
                    }
                }
                0x02 => self.tmp.thigh = v,
                0x03 => self.tmp.tlow = v,
                0x07 => self.tmp.offset = v,
                _ => {}
            }
        }
    }

    fn tmp_read(&mut self) -> u16 {
        let mut s = lock(&self.sensors);
        match self.tmp.pointer {
            0x00 => {
                if !self.tmp.converted {
                    return 0x8000;
                }
                s.temp_new = false;
                let code = s.meas.frozen_temp_code.unwrap_or_else(|| {
                    (s.meas.temp_c * 128.0).round().clamp(-32767.0, 32767.0) as i16
                });
                code.wrapping_add(self.tmp.offset as i16) as u16
            }
            0x01 => {
                let mut v = self.tmp.config;
                if self.tmp.eeprom_busy_reads > 0 {
                    self.tmp.eeprom_busy_reads -= 1;
                    v |= 1 << 12;
                } else {
                    self.tmp.converted = true;
                }
                if s.temp_new {
                    v |= 1 << 13;
                    s.temp_new = false;
                }
                v
            }
            0x02 => self.tmp.thigh,
            0x03 => self.tmp.tlow,
            0x07 => self.tmp.offset,
            0x0F => 0x1117,
            _ => 0,
        }
    }

    fn ads_write(&mut self, bytes: &[u8]) {
        let Some((&p, rest)) = bytes.split_first() else {
            return;
        };
        self.ads.pointer = p & 0x03;
        if rest.len() >= 2 {
            let v = u16::from_be_bytes([rest[0], rest[1]]);
            match p & 0x03 {
                0x01 => {
                    self.ads.config = v & 0x7FFF;
                    if v & 0x8000 != 0 {
                        self.convert();
                        self.ads.busy_polls = 1;
                    }
                }
                0x02 => self.ads.lo = v,
                0x03 => self.ads.hi = v,
                _ => {}
            }
        }
    }

    fn convert(&mut self) {
        let mut s = lock(&self.sensors);
        let v = |ch: usize, s: &Sensors| s.meas.loops_ma[ch] * 1e-3 * SHUNT_OHMS;
        let volts = match (self.ads.config >> 12) & 0x7 {
            0 => v(0, &s) - v(1, &s),
            1 => v(0, &s) - v(3, &s),
            2 => v(1, &s) - v(3, &s),
            3 => v(2, &s) - v(3, &s),
            m => v(usize::from(m - 4), &s),
        };
        let fsr = match (self.ads.config >> 9) & 0x7 {
            0 => 6.144,
            1 => 4.096,
            2 => 2.048,
            3 => 1.024,
            4 => 0.512,
            _ => 0.256,
        };
        let mux = (self.ads.config >> 12) & 0x7;
        let noise = if mux == 4 && s.meas.frozen_loop0 {
            0.0
        } else {
            s.rng.gauss() * 0.7
        };
        let code = (volts / fsr * 32768.0 + noise)
            .round()
            .clamp(-32768.0, 32767.0);
        self.ads.conversion = code as i16;
    }

    fn ads_read(&mut self) -> u16 {
        match self.ads.pointer {
            0x00 => self.ads.conversion as u16,
            0x01 => {
                if self.ads.busy_polls > 0 {
                    self.ads.busy_polls -= 1;
                    self.ads.config
                } else {
                    self.ads.config | 0x8000
                }
            }
            0x02 => self.ads.lo,
            _ => self.ads.hi,
        }
    }
}

impl i2c::ErrorType for SimI2c {
    type Error = SimI2cError;
}

impl I2c for SimI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [i2c::Operation<'_>],
    ) -> Result<(), Self::Error> {
        let mut bus = lock(&self.bus);
        if address != TMP117_ADDR && address != ADS1115_ADDR {
            return Err(SimI2cError(i2c::ErrorKind::NoAcknowledge(
                NoAcknowledgeSource::Address,
            )));
        }
        for op in operations.iter_mut() {
            match op {
                i2c::Operation::Write(bytes) => {
                    if address == TMP117_ADDR {
                        bus.tmp_write(bytes);
                    } else {
                        bus.ads_write(bytes);
                    }
                }
                i2c::Operation::Read(buf) => {
                    // 16-bit registers, big-endian; longer reads repeat the register.
                    let v = if address == TMP117_ADDR {
                        bus.tmp_read()
                    } else {
                        bus.ads_read()
                    };
                    let b = v.to_be_bytes();
                    for (i, out) in buf.iter_mut().enumerate() {
                        *out = b[i % 2];
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_drivers::ads1115::{Ads1115, Gain, Mux, Rate};
    use millwright_drivers::adxl345::{Adxl345, DataRate, Range};
    use millwright_drivers::tmp117::{Averaging, Config, Mode, Tmp117};

    #[test]
    fn real_drivers_run_on_simulated_chips() {
        let sensors: SharedSensors = Arc::new(Mutex::new(Sensors::new(1)));
        {
            let mut s = lock(&sensors);
            s.accel = vec![[10, -20, 256], [11, -21, 257]];
            s.meas = Measurements {
                temp_c: 42.5,
                loops_ma: [12.0, 4.0, 20.0, 0.0],
                frozen_temp_code: None,
                frozen_loop0: false,
            };
            s.temp_new = true;
        }
        let mut acc = Adxl345::new_spi(SimSpi::new(sensors.clone()));
        acc.init(Range::G16, DataRate::Hz1600).unwrap();
        assert!(acc.data_ready().unwrap());
        let s = acc.read_raw().unwrap();
        assert_eq!((s.x, s.y, s.z), (10, -20, 256));
        acc.read_raw().unwrap();
        assert!(!acc.data_ready().unwrap(), "window exhausted");

        let bus = SimI2c::new(sensors.clone());
        let mut tmp = Tmp117::new(bus.clone(), TMP117_ADDR);
        assert_eq!(
            tmp.read_raw(),
            Err(millwright_drivers::Error::InvalidReading(0x8000))
        );
        tmp.init(Config {
            mode: Mode::Continuous,
            conv: 4,
            averaging: Averaging::Avg8,
        })
        .unwrap();
        assert_eq!(tmp.read_millicelsius().unwrap(), 42_500);

        let mut adc = Ads1115::new(bus.clone(), ADS1115_ADDR);
        let c = adc
            .read_single(Mux::Single0, Gain::Fsr4_096, Rate::Sps860)
            .unwrap();
        assert!((i32::from(c.raw) - 9600).abs() <= 3, "{c:?}");
        let c = adc
            .read_single(Mux::Single3, Gain::Fsr4_096, Rate::Sps860)
            .unwrap();
        assert!(c.raw.abs() <= 3, "{c:?}");

        let mut nobody = Tmp117::new(bus, 0x4A);
        assert!(matches!(
            nobody.check_device_id(),
            Err(millwright_drivers::Error::Bus(_))
        ));
    }
}
