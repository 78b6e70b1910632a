//! `no_std` sensor-node logic for the Millwright edge sensor.
//!
//! - [`features`]: fixed-point vibration features (RMS velocity, RMS/peak acceleration, crest
//!   factor, kurtosis) over one window of accelerometer samples.
//! - [`current_loop`]: 4–20 mA loop conversion with NAMUR NE43 flags.
//! - [`limits`]: fault-detection limits the node applies and the register map documents.
//! - [`registers`]: the Modbus register map the node exposes, and the generator of
//!   `REGISTERS.md`.
//! - [`node`]: [`node::SensorNode`], which drives the `millwright-drivers` devices, computes the
//!   features per window and maintains the register image.
//!
//! No `std`, no allocation, no panicking calls; the only dependencies are `embedded-hal` and
//! `millwright-drivers`, both `no_std`. The `no_std_build` test checks the normal dependency
//! tree and links this crate into `nostd-check/`, a `#![no_std]` static library with its own
//! `#[panic_handler]`, which cannot link if `std` is anywhere in the graph.
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(test)]
extern crate std;

pub mod current_loop;
pub mod features;
pub mod limits;
pub mod node;
pub mod registers;
