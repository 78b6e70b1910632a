//! Millwright sinks: where readings, anomalies and reports leave the node.
//!
//! - [`influx`]: InfluxDB 2 writer (influxdb2 crate, gzip, rustls), batched, retried, counted.
//!
//! Sinks never block the reading bus: they buffer in bounded memory and report what they could
//! not deliver.

pub mod influx;
pub mod line;

pub use influx::{InfluxConfig, InfluxWriter, SinkStatus};
