//! Millwright sinks: where readings, anomalies, cards and reports leave the node.
//!
//! - [`line`]: the one InfluxDB line-protocol encoder, for every [`millwright_core::Record`].
//! - [`influx`]: InfluxDB 2 writer (reqwest, gzip, rustls, custom CA), batched, retried,
//!   split around bad points, counted, drained on close.
//! - [`mqtt`]: the node's MQTT publisher (alerts, reports, retained status with last will,
//!   request topics in), counted.
//!
//! Sinks never block the reading bus: they buffer in bounded memory and report what they could
//! not deliver. Nothing here reads the node's config file or decides what to publish.

pub mod influx;
pub mod line;
pub mod mqtt;

pub use influx::{InfluxConfig, InfluxWriter, OutboxConfig, OutboxPolicy, SinkStatus};
pub use mqtt::{MqttPublisher, MqttRequest, PublisherConfig, PublisherStatus};
