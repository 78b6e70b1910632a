//! Machine simulator for Millwright: simulated pumps, motors and compressors whose sensors sit
//! on simulated embedded-hal buses, read by the REAL `millwright-drivers` and
//! `millwright-sensor` code, and served over Modbus TCP (tokio-modbus server).
//!
//! - [`config`]: [`MachineKind`], [`FaultKind`], [`Fault`], [`MachineConfig`], CLI/TOML parsing.
//! - [`operation`]: normal operating changes: [`OperatingEvent`]s (load steps, stop/start,
//!   setpoints) and the [`AmbientCycle`].
//! - [`physics`]: the machine models, operating changes and fault effects (no I/O).
//! - [`devices`]: simulated ADXL345 (SPI), TMP117 and ADS1115 (I2C) implementing embedded-hal.
//! - [`map`]: [`register_map`], the per-machine register map as data.
//! - [`server`]: [`MachineServer`], one machine behind one Modbus TCP listener.
//!
//! Nothing here panics on bad input: parse errors are [`ConfigError`]s naming the offending
//! text, server errors are `std::io::Error`s.

#![deny(missing_docs)]

pub mod config;
pub mod devices;
pub mod machine;
pub mod map;
pub mod operation;
pub mod physics;
pub mod server;

pub use config::{ConfigError, Fault, FaultKind, MachineConfig, MachineKind, SimFile};
pub use map::{loop_channels, register_map, LoopChannel};
pub use millwright_sensor::registers::{Function, RegisterDef, RegisterValueType, WordOrder};
pub use operation::{AmbientCycle, OperatingEvent, OperatingKind};
pub use server::MachineServer;
