//! The one error type shared by all drivers, generic over the bus error.
//!
//! No formatting machinery beyond `core::fmt`; no allocation.

use core::fmt;

/// Errors returned by the drivers in this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The bus reported an error (NACK, arbitration loss, SPI fault, ...).
    Bus(E),
    /// The device identification register did not hold the expected value; the value read
    /// is attached.
    InvalidDevice(u16),
    /// The device returned a value the datasheet defines as invalid (e.g. the TMP117 power-on
    /// marker of -256 °C before the first conversion); the raw value is attached.
    InvalidReading(u16),
    /// A register read back differs from what was written: the device is not the one we think
    /// or the bus corrupts data. Holds (register, written, read back).
    Mismatch(u8, u16, u16),
    /// A conversion or EEPROM operation did not complete within the allowed number of polls.
    Timeout,
    /// An argument was out of the range the device accepts.
    InvalidArgument,
}

impl<E> From<E> for Error<E> {
    fn from(e: E) -> Self {
        Error::Bus(e)
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bus(e) => write!(f, "bus error: {e:?}"),
            Error::InvalidDevice(id) => write!(f, "unexpected device id 0x{id:04x}"),
            Error::InvalidReading(raw) => write!(f, "device returned invalid reading 0x{raw:04x}"),
            Error::Mismatch(reg, w, r) => write!(
                f,
                "register 0x{reg:02x} read back 0x{r:04x} after writing 0x{w:04x}"
            ),
            Error::Timeout => write!(f, "device did not finish in time"),
            Error::InvalidArgument => write!(f, "argument out of range"),
        }
    }
}
