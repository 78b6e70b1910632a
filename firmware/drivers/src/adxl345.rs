//! ADXL345-class 3-axis digital accelerometer driver (register level, per the ADI datasheet).
//!
//! The device is reached through an [`Interface`]: [`SpiInterface`] (4-wire SPI, the idiomatic
//! choice, read bit 0x80 and multi-byte bit 0x40) or [`I2cInterface`] (7-bit address 0x53 with
//! ALT ADDRESS low, 0x1D high). The driver always runs the device in full-resolution mode, so the
//! scale is a constant 3.9 mg/LSB at every range. It does not buffer samples and never allocates.

use embedded_hal::i2c::I2c;
use embedded_hal::spi::{Operation, SpiDevice};

use crate::Error;

/// Register addresses (datasheet table 19).
pub mod reg {
    /// Device ID, fixed 0xE5.
    pub const DEVID: u8 = 0x00;
    /// Data rate and power mode control.
    pub const BW_RATE: u8 = 0x2C;
    /// Power-saving features control (bit 3 = Measure).
    pub const POWER_CTL: u8 = 0x2D;
    /// Interrupt enable control.
    pub const INT_ENABLE: u8 = 0x2E;
    /// Source of interrupts (bit 7 = DATA_READY).
    pub const INT_SOURCE: u8 = 0x30;
    /// Data format control (FULL_RES bit 3, range bits 1:0).
    pub const DATA_FORMAT: u8 = 0x31;
    /// X-axis data 0; X1, Y0, Y1, Z0, Z1 follow.
    pub const DATAX0: u8 = 0x32;
    /// FIFO control.
    pub const FIFO_CTL: u8 = 0x38;
}

/// The value of [`reg::DEVID`] on every ADXL345.
pub const DEVICE_ID: u8 = 0xE5;
/// POWER_CTL Measure bit.
pub const POWER_CTL_MEASURE: u8 = 0x08;
/// DATA_FORMAT FULL_RES bit.
pub const DATA_FORMAT_FULL_RES: u8 = 0x08;
/// INT_SOURCE DATA_READY bit.
pub const INT_SOURCE_DATA_READY: u8 = 0x80;
/// Scale in full-resolution mode: micro-g per LSB (3.9 mg/LSB typical).
pub const MICRO_G_PER_LSB: i32 = 3900;
/// I2C address with ALT ADDRESS pin low.
pub const I2C_ADDR_ALT_LOW: u8 = 0x53;
/// I2C address with ALT ADDRESS pin high.
pub const I2C_ADDR_ALT_HIGH: u8 = 0x1D;

/// SPI command bit: read.
const SPI_READ: u8 = 0x80;
/// SPI command bit: multi-byte.
const SPI_MB: u8 = 0x40;

/// Measurement range (DATA_FORMAT bits 1:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// ±2 g.
    G2 = 0,
    /// ±4 g.
    G4 = 1,
    /// ±8 g.
    G8 = 2,
    /// ±16 g.
    G16 = 3,
}

impl Range {
    /// Largest magnitude of a raw full-resolution sample at this range (10 to 13 bits).
    pub const fn max_raw(self) -> i16 {
        match self {
            Range::G2 => 511,
            Range::G4 => 1023,
            Range::G8 => 2047,
            Range::G16 => 4095,
        }
    }
}

/// Output data rate (BW_RATE bits 3:0, normal power).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataRate {
    /// 100 Hz.
    Hz100 = 0x0A,
    /// 200 Hz.
    Hz200 = 0x0B,
    /// 400 Hz.
    Hz400 = 0x0C,
    /// 800 Hz.
    Hz800 = 0x0D,
    /// 1600 Hz.
    Hz1600 = 0x0E,
    /// 3200 Hz.
    Hz3200 = 0x0F,
}

impl DataRate {
    /// The rate in Hz.
    pub const fn hz(self) -> u32 {
        match self {
            DataRate::Hz100 => 100,
            DataRate::Hz200 => 200,
            DataRate::Hz400 => 400,
            DataRate::Hz800 => 800,
            DataRate::Hz1600 => 1600,
            DataRate::Hz3200 => 3200,
        }
    }
}

/// One raw sample of the three axes, in LSB (3.9 mg each in full resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawSample {
    /// X axis.
    pub x: i16,
    /// Y axis.
    pub y: i16,
    /// Z axis.
    pub z: i16,
}

impl RawSample {
    /// The sample in micro-g per axis.
    pub fn micro_g(&self) -> [i32; 3] {
        [
            i32::from(self.x) * MICRO_G_PER_LSB,
            i32::from(self.y) * MICRO_G_PER_LSB,
            i32::from(self.z) * MICRO_G_PER_LSB,
        ]
    }
}

/// Register access to an ADXL345 over some bus.
pub trait Interface {
    /// The bus error.
    type Error;
    /// Writes one register.
    fn write_register(&mut self, reg: u8, value: u8) -> Result<(), Self::Error>;
    /// Reads `buf.len()` consecutive registers starting at `reg`.
    fn read_registers(&mut self, reg: u8, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// 4-wire SPI access (mode 3). Owns the [`SpiDevice`].
#[derive(Debug)]
pub struct SpiInterface<SPI> {
    spi: SPI,
}

impl<SPI> SpiInterface<SPI> {
    /// Wraps an SPI device.
    pub fn new(spi: SPI) -> Self {
        Self { spi }
    }
}

impl<SPI: SpiDevice> Interface for SpiInterface<SPI> {
    type Error = SPI::Error;

    fn write_register(&mut self, reg: u8, value: u8) -> Result<(), Self::Error> {
        self.spi.write(&[reg & 0x3F, value])
    }

    fn read_registers(&mut self, reg: u8, buf: &mut [u8]) -> Result<(), Self::Error> {
        let mut cmd = SPI_READ | (reg & 0x3F);
        if buf.len() > 1 {
            cmd |= SPI_MB;
        }
        self.spi
            .transaction(&mut [Operation::Write(&[cmd]), Operation::Read(buf)])
    }
}

/// I2C access. Owns the [`I2c`] bus.
#[derive(Debug)]
pub struct I2cInterface<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C> I2cInterface<I2C> {
    /// Wraps an I2C bus; `address` is [`I2C_ADDR_ALT_LOW`] or [`I2C_ADDR_ALT_HIGH`].
    pub fn new(i2c: I2C, address: u8) -> Self {
        Self { i2c, address }
    }
}

impl<I2C: I2c> Interface for I2cInterface<I2C> {
    type Error = I2C::Error;

    fn write_register(&mut self, reg: u8, value: u8) -> Result<(), Self::Error> {
        self.i2c.write(self.address, &[reg, value])
    }

    fn read_registers(&mut self, reg: u8, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.i2c.write_read(self.address, &[reg], buf)
    }
}

/// ADXL345 driver.
#[derive(Debug)]
pub struct Adxl345<IF> {
    iface: IF,
    range: Range,
}

impl<SPI: SpiDevice> Adxl345<SpiInterface<SPI>> {
    /// Creates a driver on an SPI device. No bus traffic until [`Adxl345::init`].
    pub fn new_spi(spi: SPI) -> Self {
        Self::new(SpiInterface::new(spi))
    }
}

impl<I2C: I2c> Adxl345<I2cInterface<I2C>> {
    /// Creates a driver on an I2C bus at `address`. No bus traffic until [`Adxl345::init`].
    pub fn new_i2c(i2c: I2C, address: u8) -> Self {
        Self::new(I2cInterface::new(i2c, address))
    }
}

impl<SPI> Adxl345<SpiInterface<SPI>> {
    /// Releases the SPI device.
    pub fn destroy(self) -> SPI {
        self.iface.spi
    }
}

impl<I2C> Adxl345<I2cInterface<I2C>> {
    /// Releases the I2C bus.
    pub fn destroy(self) -> I2C {
        self.iface.i2c
    }
}

impl<IF: Interface> Adxl345<IF> {
    /// Creates a driver on any [`Interface`].
    pub fn new(iface: IF) -> Self {
        Self {
            iface,
            range: Range::G2,
        }
    }

    /// Reads the device id and returns it.
    pub fn device_id(&mut self) -> Result<u8, Error<IF::Error>> {
        let mut b = [0u8; 1];
        self.iface.read_registers(reg::DEVID, &mut b)?;
        Ok(b[0])
    }

    /// Checks the device id, sets full resolution at `range`, the output data rate, bypass
    /// FIFO, and starts measuring. Writes in the datasheet's order: configuration first,
    /// Measure bit last.
    pub fn init(&mut self, range: Range, rate: DataRate) -> Result<(), Error<IF::Error>> {
        let id = self.device_id()?;
        if id != DEVICE_ID {
            return Err(Error::InvalidDevice(u16::from(id)));
        }
        self.iface.write_register(reg::POWER_CTL, 0x00)?;
        self.iface.write_register(reg::BW_RATE, rate as u8)?;
        self.iface
            .write_register(reg::DATA_FORMAT, DATA_FORMAT_FULL_RES | range as u8)?;
        self.iface.write_register(reg::FIFO_CTL, 0x00)?;
        self.iface
            .write_register(reg::POWER_CTL, POWER_CTL_MEASURE)?;
        self.range = range;
        Ok(())
    }

    /// The range set by [`Adxl345::init`].
    pub fn range(&self) -> Range {
        self.range
    }

    /// Whether a new sample is ready (INT_SOURCE DATA_READY).
    pub fn data_ready(&mut self) -> Result<bool, Error<IF::Error>> {
        let mut b = [0u8; 1];
        self.iface.read_registers(reg::INT_SOURCE, &mut b)?;
        Ok(b[0] & INT_SOURCE_DATA_READY != 0)
    }

    /// Reads the six data registers in one multi-byte burst (as the datasheet asks, so the
    /// axes belong to the same sample). Little-endian, two's complement.
    ///
    /// A value beyond the full-resolution range of the configured [`Range`] cannot come from
    /// the device and is returned as [`Error::InvalidReading`].
    pub fn read_raw(&mut self) -> Result<RawSample, Error<IF::Error>> {
        let mut b = [0u8; 6];
        self.iface.read_registers(reg::DATAX0, &mut b)?;
        let s = RawSample {
            x: i16::from_le_bytes([b[0], b[1]]),
            y: i16::from_le_bytes([b[2], b[3]]),
            z: i16::from_le_bytes([b[4], b[5]]),
        };
        let max = self.range.max_raw();
        for v in [s.x, s.y, s.z] {
            // Full resolution: the sign-extended value spans -(max+1)..=max.
            if v > max || v < -max - 1 {
                return Err(Error::InvalidReading(v as u16));
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cT};
    use embedded_hal_mock::eh1::spi::{Mock as SpiMock, Transaction as SpiT};
    use std::{vec, vec::Vec};

    fn spi_write(reg: u8, v: u8) -> [SpiT<u8>; 3] {
        [
            SpiT::transaction_start(),
            SpiT::write_vec(vec![reg, v]),
            SpiT::transaction_end(),
        ]
    }

    fn spi_init_script(range_bits: u8, rate: u8) -> Vec<SpiT<u8>> {
        let mut t = vec![
            SpiT::transaction_start(),
            SpiT::write_vec(vec![0x80]),
            SpiT::read_vec(vec![0xE5]),
            SpiT::transaction_end(),
        ];
        t.extend(spi_write(0x2D, 0x00));
        t.extend(spi_write(0x2C, rate));
        t.extend(spi_write(0x31, 0x08 | range_bits));
        t.extend(spi_write(0x38, 0x00));
        t.extend(spi_write(0x2D, 0x08));
        t
    }

    #[test]
    fn spi_init_and_read_sample() {
        let mut t = spi_init_script(3, 0x0E);
        t.extend([
            SpiT::transaction_start(),
            SpiT::write_vec(vec![0xB0]),
            SpiT::read_vec(vec![0x83]),
            SpiT::transaction_end(),
            SpiT::transaction_start(),
            SpiT::write_vec(vec![0xF2]),
            // x = 256 (1 g), y = -1, z = -4096
            SpiT::read_vec(vec![0x00, 0x01, 0xFF, 0xFF, 0x00, 0xF0]),
            SpiT::transaction_end(),
        ]);
        let mut spi = SpiMock::new(&t);
        let mut dev = Adxl345::new_spi(spi.clone());
        dev.init(Range::G16, DataRate::Hz1600).unwrap();
        assert!(dev.data_ready().unwrap());
        let s = dev.read_raw().unwrap();
        assert_eq!(
            s,
            RawSample {
                x: 256,
                y: -1,
                z: -4096
            }
        );
        assert_eq!(s.micro_g(), [998_400, -3900, -15_974_400]);
        dev.destroy();
        spi.done();
    }

    #[test]
    fn wrong_device_id_is_rejected_and_nothing_written() {
        let t = [
            SpiT::transaction_start(),
            SpiT::write_vec(vec![0x80]),
            SpiT::read_vec(vec![0xE6]),
            SpiT::transaction_end(),
        ];
        let mut spi = SpiMock::new(&t);
        let mut dev = Adxl345::new_spi(spi.clone());
        assert_eq!(
            dev.init(Range::G2, DataRate::Hz100),
            Err(Error::InvalidDevice(0xE6))
        );
        spi.done();
    }

    #[test]
    fn i2c_init_read_and_out_of_range_sample() {
        let a = I2C_ADDR_ALT_LOW;
        let t = [
            I2cT::write_read(a, vec![0x00], vec![0xE5]),
            I2cT::write(a, vec![0x2D, 0x00]),
            I2cT::write(a, vec![0x2C, 0x0A]),
            I2cT::write(a, vec![0x31, 0x08]),
            I2cT::write(a, vec![0x38, 0x00]),
            I2cT::write(a, vec![0x2D, 0x08]),
            I2cT::write_read(a, vec![0x32], vec![0x10, 0x00, 0x00, 0x00, 0x00, 0xFE]),
            // x = 600 > 511 at ±2 g: impossible in full resolution.
            I2cT::write_read(a, vec![0x32], vec![0x58, 0x02, 0x00, 0x00, 0x00, 0x00]),
        ];
        let mut i2c = I2cMock::new(&t);
        let mut dev = Adxl345::new_i2c(i2c.clone(), a);
        dev.init(Range::G2, DataRate::Hz100).unwrap();
        assert_eq!(
            dev.read_raw().unwrap(),
            RawSample {
                x: 16,
                y: 0,
                z: -512
            }
        );
        assert_eq!(dev.read_raw(), Err(Error::InvalidReading(600)));
        dev.destroy();
        i2c.done();
    }

    #[test]
    fn bus_error_is_reported() {
        let a = I2C_ADDR_ALT_HIGH;
        let t = [I2cT::write_read(a, vec![0x32], vec![0; 6]).with_error(ErrorKind::Other)];
        let mut i2c = I2cMock::new(&t);
        let mut dev = Adxl345::new_i2c(i2c.clone(), a);
        assert_eq!(dev.read_raw(), Err(Error::Bus(ErrorKind::Other)));
        i2c.done();
    }
}
