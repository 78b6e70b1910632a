//! `no_std` embedded-hal 1.0 sensor drivers for the Millwright sensor node.
//!
//! Three register-level drivers, each generic over its bus and returning the bus from
//! `destroy()`:
//! - [`adxl345`]: ADXL345-class 3-axis accelerometer, over SPI ([`adxl345::SpiInterface`]) or
//!   I2C ([`adxl345::I2cInterface`]).
//! - [`tmp117`]: TMP117-class precision temperature sensor (I2C).
//! - [`ads1115`]: ADS1115-class 16-bit delta-sigma ADC (I2C), used for 4–20 mA loops.
//!
//! Every fallible call returns [`Error<E>`], generic over the bus error `E`. Values are
//! fixed-point integers (milli-degrees, microvolts, micro-g); nothing here allocates, uses
//! floating point or panics. This crate must not depend on `std`.
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(test)]
extern crate std;

pub mod ads1115;
pub mod adxl345;
pub mod tmp117;

mod error;
pub use error::Error;
