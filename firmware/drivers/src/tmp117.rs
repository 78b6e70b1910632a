//! TMP117-class ±0.1 °C digital temperature sensor driver (I2C, per the TI datasheet).
//!
//! 16-bit big-endian registers; temperature LSB is 7.8125 m°C (1/128 °C). Until the first
//! conversion completes, the result register holds 0x8000 (-256 °C): the driver reports that
//! as [`Error::InvalidReading`]. The device has no CRC; data validity is checked through the
//! device id, the power-on marker, and the Data_Ready / EEPROM_Busy flags of the configuration
//! register. The driver never allocates and does not sleep; waiting is bounded polling.

use embedded_hal::i2c::I2c;

use crate::Error;

/// Register addresses.
pub mod reg {
    /// Temperature result.
    pub const TEMP_RESULT: u8 = 0x00;
    /// Configuration.
    pub const CONFIGURATION: u8 = 0x01;
    /// High limit.
    pub const THIGH_LIMIT: u8 = 0x02;
    /// Low limit.
    pub const TLOW_LIMIT: u8 = 0x03;
    /// EEPROM unlock (bit 14 = EEPROM_Busy mirror, bit 15 = EUN).
    pub const EEPROM_UL: u8 = 0x04;
    /// Temperature offset (same format as the result).
    pub const TEMP_OFFSET: u8 = 0x07;
    /// Device id: bits 11:0 = 0x117, bits 15:12 = revision.
    pub const DEVICE_ID: u8 = 0x0F;
}

/// Device id in bits 11:0 of [`reg::DEVICE_ID`].
pub const DEVICE_ID: u16 = 0x0117;
/// Result register value before the first conversion (-256 °C).
pub const POWER_ON_RESULT: u16 = 0x8000;
/// Default I2C address (ADD0 to GND); 0x49 (V+), 0x4A (SDA), 0x4B (SCL) are the others.
pub const DEFAULT_ADDRESS: u8 = 0x48;

/// Configuration register bits.
pub mod cfg {
    /// Temperature above the high limit.
    pub const HIGH_ALERT: u16 = 1 << 15;
    /// Temperature below the low limit.
    pub const LOW_ALERT: u16 = 1 << 14;
    /// A conversion completed since the last read of the configuration or result register.
    pub const DATA_READY: u16 = 1 << 13;
    /// EEPROM busy (programming or power-on load).
    pub const EEPROM_BUSY: u16 = 1 << 12;
    /// Software reset (self-clearing).
    pub const SOFT_RESET: u16 = 1 << 1;
    /// Mask of the writeable bits (MOD, CONV, AVG, T/nA, POL, DR/Alert).
    pub const WRITE_MASK: u16 = 0x0FFC;
}

/// Conversion mode (`MOD[1:0]`, bits 11:10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Continuous conversion.
    Continuous = 0b00,
    /// Shutdown.
    Shutdown = 0b01,
    /// One conversion, then shutdown.
    OneShot = 0b11,
}

/// Averaging (`AVG[1:0]`, bits 6:5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Averaging {
    /// No averaging (15.5 ms conversion).
    None = 0b00,
    /// 8 averages (125 ms).
    Avg8 = 0b01,
    /// 32 averages (500 ms).
    Avg32 = 0b10,
    /// 64 averages (1 s).
    Avg64 = 0b11,
}

/// Configuration to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Conversion mode.
    pub mode: Mode,
    /// Conversion cycle bits `CONV[2:0]` (0..=7, see datasheet table 7-7).
    pub conv: u8,
    /// Averaging.
    pub averaging: Averaging,
}

impl Config {
    /// The register value (alert bits and reset zero; DR/Alert pin reports data ready).
    pub fn bits(&self) -> u16 {
        ((self.mode as u16) << 10)
            | (u16::from(self.conv & 0x7) << 7)
            | ((self.averaging as u16) << 5)
            | (1 << 2)
    }
}

/// Flags read from the configuration register (reading clears Data_Ready and the alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Data_Ready.
    pub data_ready: bool,
    /// EEPROM_Busy.
    pub eeprom_busy: bool,
    /// HIGH_Alert.
    pub high_alert: bool,
    /// LOW_Alert.
    pub low_alert: bool,
    /// The whole register.
    pub raw: u16,
}

/// Converts a raw result to milli-degrees Celsius, rounded to nearest (raw × 1000 / 128).
pub fn raw_to_millicelsius(raw: i16) -> i32 {
    let v = i32::from(raw) * 125; // × 1000/128 = × 125/16
    if v >= 0 {
        (v + 8) / 16
    } else {
        (v - 8) / 16
    }
}

/// TMP117 driver.
#[derive(Debug)]
pub struct Tmp117<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C: I2c> Tmp117<I2C> {
    /// Creates a driver at `address` (see [`DEFAULT_ADDRESS`]). No bus traffic.
    pub fn new(i2c: I2C, address: u8) -> Self {
        Self { i2c, address }
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

    /// Reads the device id register and checks bits 11:0; returns the revision (bits 15:12).
    pub fn check_device_id(&mut self) -> Result<u8, Error<I2C::Error>> {
        let id = self.read_reg(reg::DEVICE_ID)?;
        if id & 0x0FFF != DEVICE_ID {
            return Err(Error::InvalidDevice(id));
        }
        Ok((id >> 12) as u8)
    }

    /// Reads the configuration register flags.
    pub fn status(&mut self) -> Result<Status, Error<I2C::Error>> {
        let raw = self.read_reg(reg::CONFIGURATION)?;
        Ok(Status {
            data_ready: raw & cfg::DATA_READY != 0,
            eeprom_busy: raw & cfg::EEPROM_BUSY != 0,
            high_alert: raw & cfg::HIGH_ALERT != 0,
            low_alert: raw & cfg::LOW_ALERT != 0,
            raw,
        })
    }

    /// Polls EEPROM_Busy up to `max_polls` times (it is set for ~1.5 ms after power-on while
    /// the EEPROM loads, and during programming). Writing the configuration while it is busy
    /// is not allowed by the datasheet.
    pub fn wait_eeprom_ready(&mut self, max_polls: u16) -> Result<(), Error<I2C::Error>> {
        for _ in 0..max_polls {
            if !self.status()?.eeprom_busy {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    /// Checks the id, waits for the EEPROM, writes `config` and reads it back (writeable bits
    /// only) to prove the write landed.
    pub fn init(&mut self, config: Config) -> Result<(), Error<I2C::Error>> {
        self.check_device_id()?;
        self.wait_eeprom_ready(8)?;
        let bits = config.bits();
        self.write_reg(reg::CONFIGURATION, bits)?;
        let back = self.status()?.raw & cfg::WRITE_MASK;
        if back != bits & cfg::WRITE_MASK {
            return Err(Error::Mismatch(reg::CONFIGURATION, bits, back));
        }
        Ok(())
    }

    /// Reads the result register. Returns [`Error::InvalidReading`] for the power-on marker
    /// 0x8000 (-256 °C, "no conversion yet"), which no real temperature can produce.
    pub fn read_raw(&mut self) -> Result<i16, Error<I2C::Error>> {
        let raw = self.read_reg(reg::TEMP_RESULT)?;
        if raw == POWER_ON_RESULT {
            return Err(Error::InvalidReading(raw));
        }
        Ok(raw as i16)
    }

    /// Reads the temperature in milli-degrees Celsius.
    pub fn read_millicelsius(&mut self) -> Result<i32, Error<I2C::Error>> {
        Ok(raw_to_millicelsius(self.read_raw()?))
    }

    /// Reads the temperature only if Data_Ready is set; `Ok(None)` if no new conversion.
    pub fn read_if_ready(&mut self) -> Result<Option<i32>, Error<I2C::Error>> {
        if !self.status()?.data_ready {
            return Ok(None);
        }
        self.read_millicelsius().map(Some)
    }

    /// Writes the temperature offset register (m°C, rounded to 1/128 °C, range ±256 °C).
    pub fn set_offset_millicelsius(&mut self, mc: i32) -> Result<(), Error<I2C::Error>> {
        if !(-255_992..=255_992).contains(&mc) {
            return Err(Error::InvalidArgument);
        }
        let raw = (mc * 16 + if mc >= 0 { 62 } else { -62 }) / 125;
        self.write_reg(reg::TEMP_OFFSET, raw as i16 as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
    use std::vec;

    const A: u8 = 0x49;
    const CONFIG: Config = Config {
        mode: Mode::Continuous,
        conv: 4,
        averaging: Averaging::Avg8,
    };

    #[test]
    fn conversion_table_from_datasheet() {
        // Datasheet table 7-1.
        assert_eq!(raw_to_millicelsius(0x6400), 200_000);
        assert_eq!(raw_to_millicelsius(0x0C80), 25_000);
        assert_eq!(raw_to_millicelsius(0x0001), 8); // 7.8125 m°C
        assert_eq!(raw_to_millicelsius(0xFF80u16 as i16), -1_000);
        assert_eq!(raw_to_millicelsius(0xE480u16 as i16), -55_000);
    }

    #[test]
    fn init_waits_for_eeprom_then_configures() {
        let bits = CONFIG.bits();
        assert_eq!(bits, 0x0224);
        let t = [
            T::write_read(A, vec![0x0F], vec![0x01, 0x17]),
            T::write_read(A, vec![0x01], vec![0x12, 0x20]), // EEPROM busy
            T::write_read(A, vec![0x01], vec![0x02, 0x20]),
            T::write(A, vec![0x01, 0x02, 0x24]),
            T::write_read(A, vec![0x01], vec![0x22, 0x24]), // data ready + our bits
            T::write_read(A, vec![0x01], vec![0x22, 0x24]),
            T::write_read(A, vec![0x00], vec![0x0C, 0x80]),
            T::write_read(A, vec![0x01], vec![0x02, 0x24]), // no new data
        ];
        let mut i2c = Mock::new(&t);
        let mut dev = Tmp117::new(i2c.clone(), A);
        dev.init(CONFIG).unwrap();
        assert_eq!(dev.read_if_ready().unwrap(), Some(25_000));
        assert_eq!(dev.read_if_ready().unwrap(), None);
        dev.destroy();
        i2c.done();
    }

    #[test]
    fn wrong_id_eeprom_timeout_and_readback_mismatch() {
        let t = [
            T::write_read(A, vec![0x0F], vec![0x01, 0x19]),
            T::write_read(A, vec![0x0F], vec![0x21, 0x17]),
            T::write_read(A, vec![0x01], vec![0x10, 0x00]),
            T::write_read(A, vec![0x01], vec![0x10, 0x00]),
            T::write_read(A, vec![0x01], vec![0x10, 0x00]),
            T::write_read(A, vec![0x01], vec![0x10, 0x00]),
            T::write_read(A, vec![0x01], vec![0x10, 0x00]),
            T::write_read(A, vec![0x01], vec![0x10, 0x00]),
            T::write_read(A, vec![0x01], vec![0x10, 0x00]),
            T::write_read(A, vec![0x01], vec![0x10, 0x00]),
            T::write_read(A, vec![0x0F], vec![0x11, 0x17]),
            T::write_read(A, vec![0x01], vec![0x00, 0x00]),
            T::write(A, vec![0x01, 0x02, 0x24]),
            T::write_read(A, vec![0x01], vec![0x02, 0x20]),
        ];
        let mut i2c = Mock::new(&t);
        let mut dev = Tmp117::new(i2c.clone(), A);
        assert_eq!(dev.init(CONFIG), Err(Error::InvalidDevice(0x0119)));
        assert_eq!(dev.init(CONFIG), Err(Error::Timeout));
        assert_eq!(dev.init(CONFIG), Err(Error::Mismatch(0x01, 0x0224, 0x0220)));
        i2c.done();
    }

    #[test]
    fn power_on_marker_and_bus_error() {
        let t = [
            T::write_read(A, vec![0x00], vec![0x80, 0x00]),
            T::write_read(A, vec![0x00], vec![0x00, 0x00]).with_error(ErrorKind::Other),
            T::write_read(A, vec![0x00], vec![0xFF, 0x80]),
            T::write(A, vec![0x07, 0xFF, 0x00]),
        ];
        let mut i2c = Mock::new(&t);
        let mut dev = Tmp117::new(i2c.clone(), A);
        assert_eq!(dev.read_millicelsius(), Err(Error::InvalidReading(0x8000)));
        assert_eq!(dev.read_millicelsius(), Err(Error::Bus(ErrorKind::Other)));
        assert_eq!(dev.read_millicelsius(), Ok(-1_000));
        dev.set_offset_millicelsius(-2_000).unwrap();
        assert_eq!(
            dev.set_offset_millicelsius(300_000),
            Err(Error::InvalidArgument)
        );
        i2c.done();
    }
}
