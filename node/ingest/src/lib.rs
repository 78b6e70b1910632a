//! Millwright ingest: sources that turn field data into [`millwright_core::Reading`]s.
//!
//! - [`mqtt`]: subscribes to a broker (MQTT 3.1.1 or 5) and decodes JSON (the node's schema or
//!   a configured mapping), InfluxDB line protocol and Sparkplug B payloads (answering sequence
//!   gaps with rebirth requests); bad payloads are counted per subscription and reason and
//!   never stop ingest. The
//!   broker connection itself (options, TLS, back-off) is `millwright-mqtt`'s.
//! - [`modbus`]: polls Modbus TCP / RTU devices.
//! - [`metrics`]: per-source counters.
//!
//! Sources only produce readings into a bounded channel; they never write to sinks themselves.

#[cfg(feature = "fault-inject")]
pub mod fault;
pub mod metrics;
pub mod modbus;
pub mod mqtt;
