//! ADS1115-class 16-bit delta-sigma ADC driver (I2C, per the TI datasheet), single-shot mode.
//!
//! A conversion is started by writing the config register with OS = 1 and the chosen input
//! multiplexer (MUX), gain (PGA) and data rate; the driver then polls OS until it reads 1
//! ("not converting") and reads the two's complement conversion register. The device has no id
//! register: after each config write the driver reads the register back and treats a mismatch
//! in the static bits as [`Error::Mismatch`]. No allocation, no sleeping (bounded polling).

use embedded_hal::i2c::I2c;

use crate::Error;

/// Register pointer values.
pub mod reg {
    /// Conversion result.
    pub const CONVERSION: u8 = 0x00;
    /// Configuration.
    pub const CONFIG: u8 = 0x01;
    /// Comparator low threshold.
    pub const LO_THRESH: u8 = 0x02;
    /// Comparator high threshold.
    pub const HI_THRESH: u8 = 0x03;
}

/// Default I2C address (ADDR to GND).
pub const DEFAULT_ADDRESS: u8 = 0x48;
/// Config register reset value.
pub const CONFIG_RESET: u16 = 0x8583;
/// OS bit: write 1 starts a single conversion; reads 1 when no conversion is in progress.
pub const OS: u16 = 1 << 15;
/// MODE bit: 1 = single-shot / power-down.
pub const MODE_SINGLE: u16 = 1 << 8;
/// Comparator disabled (COMP_QUE = 11).
pub const COMP_DISABLE: u16 = 0b11;

/// Input multiplexer (`MUX[2:0]`, bits 14:12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mux {
    /// AIN0 − AIN1.
    Diff01 = 0b000,
    /// AIN0 − AIN3.
    Diff03 = 0b001,
    /// AIN1 − AIN3.
    Diff13 = 0b010,
    /// AIN2 − AIN3.
    Diff23 = 0b011,
    /// AIN0 − GND.
    Single0 = 0b100,
    /// AIN1 − GND.
    Single1 = 0b101,
    /// AIN2 − GND.
    Single2 = 0b110,
    /// AIN3 − GND.
    Single3 = 0b111,
}

impl Mux {
    /// Single-ended input `ch` (0..=3).
    pub fn single(ch: u8) -> Option<Mux> {
        match ch {
            0 => Some(Mux::Single0),
            1 => Some(Mux::Single1),
            2 => Some(Mux::Single2),
            3 => Some(Mux::Single3),
            _ => None,
        }
    }
}

/// Programmable gain: full-scale range (`PGA[2:0]`, bits 11:9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gain {
    /// ±6.144 V.
    Fsr6_144 = 0b000,
    /// ±4.096 V.
    Fsr4_096 = 0b001,
    /// ±2.048 V (reset default).
    Fsr2_048 = 0b010,
    /// ±1.024 V.
    Fsr1_024 = 0b011,
    /// ±0.512 V.
    Fsr0_512 = 0b100,
    /// ±0.256 V.
    Fsr0_256 = 0b101,
}

impl Gain {
    /// Full-scale range in microvolts.
    pub const fn full_scale_uv(self) -> i64 {
        match self {
            Gain::Fsr6_144 => 6_144_000,
            Gain::Fsr4_096 => 4_096_000,
            Gain::Fsr2_048 => 2_048_000,
            Gain::Fsr1_024 => 1_024_000,
            Gain::Fsr0_512 => 512_000,
            Gain::Fsr0_256 => 256_000,
        }
    }
}

/// Data rate (`DR[2:0]`, bits 7:5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// 8 samples/s.
    Sps8 = 0b000,
    /// 16 samples/s.
    Sps16 = 0b001,
    /// 32 samples/s.
    Sps32 = 0b010,
    /// 64 samples/s.
    Sps64 = 0b011,
    /// 128 samples/s (reset default).
    Sps128 = 0b100,
    /// 250 samples/s.
    Sps250 = 0b101,
    /// 475 samples/s.
    Sps475 = 0b110,
    /// 860 samples/s.
    Sps860 = 0b111,
}

/// The config word for a single-shot conversion (OS = 1, comparator disabled).
pub fn single_shot_config(mux: Mux, gain: Gain, rate: Rate) -> u16 {
    OS | ((mux as u16) << 12)
        | ((gain as u16) << 9)
        | MODE_SINGLE
        | ((rate as u16) << 5)
        | COMP_DISABLE
}

/// One conversion result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversion {
    /// Two's complement code.
    pub raw: i16,
    /// Gain used.
    pub gain: Gain,
}

impl Conversion {
    /// The input voltage in microvolts (raw × FSR / 32768, rounded toward zero).
    pub fn microvolts(&self) -> i32 {
        (i64::from(self.raw) * self.gain.full_scale_uv() / 32_768) as i32
    }

    /// Whether the code sits at a rail (the input is at or beyond the full-scale range).
    pub fn is_saturated(&self) -> bool {
        self.raw == i16::MAX || self.raw == i16::MIN
    }
}

/// ADS1115 driver.
#[derive(Debug)]
pub struct Ads1115<I2C> {
    i2c: I2C,
    address: u8,
    max_polls: u16,
}

impl<I2C: I2c> Ads1115<I2C> {
    /// Creates a driver at `address` (0x48..=0x4B). No bus traffic.
    pub fn new(i2c: I2C, address: u8) -> Self {
        Self {
            i2c,
            address,
            max_polls: 16,
        }
    }

    /// Sets how many times the OS bit is polled before [`Error::Timeout`] (at least 1).
    pub fn set_max_polls(&mut self, polls: u16) {
        self.max_polls = polls.max(1);
    }

    /// Releases the bus.
    pub fn destroy(self) -> I2C {
        self.i2c
    }

    fn read_reg(&mut self, reg: u8) -> Result<u16, Error<I2C::Error>> {
        let mut b = [0u8; 2];
        self.i2c.write_read(self.address, &[reg], &mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    fn write_reg(&mut self, reg: u8, value: u16) -> Result<(), Error<I2C::Error>> {
        let [hi, lo] = value.to_be_bytes();
        self.i2c.write(self.address, &[reg, hi, lo])?;
        Ok(())
    }

    /// Starts one conversion on `mux` and waits (bounded polls of OS) for the result.
    ///
    /// Each poll also checks that the static config bits read back as written; a device that
    /// does not behave like an ADS1115 yields [`Error::Mismatch`].
    pub fn read_single(
        &mut self,
        mux: Mux,
        gain: Gain,
        rate: Rate,
    ) -> Result<Conversion, Error<I2C::Error>> {
        let word = single_shot_config(mux, gain, rate);
        self.write_reg(reg::CONFIG, word)?;
        for _ in 0..self.max_polls {
            let back = self.read_reg(reg::CONFIG)?;
            if back & !OS != word & !OS {
                return Err(Error::Mismatch(reg::CONFIG, word, back));
            }
            if back & OS != 0 {
                let raw = self.read_reg(reg::CONVERSION)? as i16;
                return Ok(Conversion { raw, gain });
            }
        }
        Err(Error::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
    use std::vec;

    const A: u8 = DEFAULT_ADDRESS;

    #[test]
    fn config_word_matches_datasheet_fields() {
        // AIN0-GND, ±2.048 V, 128 SPS, single shot, comparator off: 0xC583.
        assert_eq!(
            single_shot_config(Mux::Single0, Gain::Fsr2_048, Rate::Sps128),
            0xC583
        );
        assert_eq!(
            single_shot_config(Mux::Single3, Gain::Fsr6_144, Rate::Sps860),
            0xF1E3
        );
    }

    #[test]
    fn single_shot_polls_os_then_reads() {
        let t = [
            T::write(A, vec![0x01, 0xD5, 0x83]),
            T::write_read(A, vec![0x01], vec![0x55, 0x83]), // converting
            T::write_read(A, vec![0x01], vec![0xD5, 0x83]), // done
            T::write_read(A, vec![0x00], vec![0x32, 0x00]), // 12800 codes
        ];
        let mut i2c = Mock::new(&t);
        let mut adc = Ads1115::new(i2c.clone(), A);
        let c = adc
            .read_single(Mux::Single1, Gain::Fsr2_048, Rate::Sps128)
            .unwrap();
        assert_eq!(c.raw, 12_800);
        assert_eq!(c.microvolts(), 800_000); // 12800 × 62.5 µV
        assert!(!c.is_saturated());
        adc.destroy();
        i2c.done();
    }

    #[test]
    fn timeout_mismatch_and_bus_error() {
        let t = [
            T::write(A, vec![0x01, 0xC5, 0x83]),
            T::write_read(A, vec![0x01], vec![0x45, 0x83]),
            T::write_read(A, vec![0x01], vec![0x45, 0x83]),
            T::write(A, vec![0x01, 0xC5, 0x83]),
            T::write_read(A, vec![0x01], vec![0x85, 0x83]), // MUX reads back wrong
            T::write(A, vec![0x01, 0xC5, 0x83]).with_error(ErrorKind::NoAcknowledge(
                embedded_hal::i2c::NoAcknowledgeSource::Address,
            )),
        ];
        let mut i2c = Mock::new(&t);
        let mut adc = Ads1115::new(i2c.clone(), A);
        adc.set_max_polls(2);
        assert_eq!(
            adc.read_single(Mux::Single0, Gain::Fsr2_048, Rate::Sps128),
            Err(Error::Timeout)
        );
        assert_eq!(
            adc.read_single(Mux::Single0, Gain::Fsr2_048, Rate::Sps128),
            Err(Error::Mismatch(0x01, 0xC583, 0x8583))
        );
        assert!(matches!(
            adc.read_single(Mux::Single0, Gain::Fsr2_048, Rate::Sps128),
            Err(Error::Bus(ErrorKind::NoAcknowledge(_)))
        ));
        i2c.done();
    }

    #[test]
    fn saturation_and_negative_codes() {
        let c = Conversion {
            raw: i16::MAX,
            gain: Gain::Fsr4_096,
        };
        assert!(c.is_saturated());
        assert_eq!(c.microvolts(), 4_095_875);
        let n = Conversion {
            raw: -16_384,
            gain: Gain::Fsr0_256,
        };
        assert_eq!(n.microvolts(), -128_000);
    }
}
