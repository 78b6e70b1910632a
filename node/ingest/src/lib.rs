//! Millwright ingest: sources that turn field data into [`millwright_core::Reading`]s.
//!
//! - [`mqtt`]: subscribes to a broker (MQTT 3.1.1 or 5) and decodes JSON and InfluxDB line
//!   protocol payloads; bad payloads are counted per subscription and never stop ingest.
//!
//! Sources only produce readings into a bounded channel; they never write to sinks themselves.

pub mod metrics;
pub mod modbus;
pub mod mqtt;
pub mod time;

/// Installs the process-wide TLS crypto provider (ring) once; TLS connections need it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
