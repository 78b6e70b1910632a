//! Modbus ingest: polls devices over Modbus TCP, RTU (serial) and RTU over TCP and turns their
//! registers into readings.
//!
//! - [`config`]: the `[modbus]` config section; `validate.rs`: its pure validation
//!   ([`ModbusConfig::validate`]).
//! - [`decode`]: raw registers → typed values for every type × byte/word order (pure).
//! - [`plan`]: coalescing fields into the fewest reads, splitting after an exception (pure).
//! - [`transport`]: connections (shared by units behind one gateway / serial line).
//! - [`poller`]: one task per device, offline detection, back-off; [`spawn_devices`] starts them.
//! - [`metrics`]: per-device counters and the cycle-time histogram.
//! - [`probe`]: the commissioning aid's ranking of decodings (pure).
//! - `server` (cargo feature `test-server` only): a register-image Modbus server for tests,
//!   benchmarks and demos.
//!
//! This module only produces readings into the bounded bus; it never writes to sinks.

pub mod config;
pub mod decode;
pub mod metrics;
pub mod plan;
pub mod poller;
pub mod probe;
#[cfg(feature = "test-server")]
pub mod server;
pub mod transport;
mod validate;

pub use config::{DeviceConfig, FieldConfig, ModbusConfig};
pub use metrics::{DeviceMetrics, ModbusMetrics};
/// The device status signal the pollers emit (defined with the node's other names in core).
pub use millwright_core::schema::DEVICE_ONLINE_SIGNAL;
pub use poller::{spawn_devices, ModbusError, ModbusPollers};
