//! InfluxDB 2 output: batches readings and records into line-protocol bodies and writes them
//! over HTTP (reqwest, gzip, rustls with a custom CA and client certificate).
//!
//! - `config`: [`InfluxConfig`] (`[influxdb]`) and its validation.
//! - `backlog`: [`Backlog`], the pure batching / retry / drop state machine (unit-tested).
//! - `http`: [`HttpWriter`], the write call; `answer`: what InfluxDB's answers mean
//!   ([`Answer`], [`Delivery`], error counters by kind); `split`: [`Splitter`], the pure rule that isolates bad points (400) and cuts
//!   bodies that are too large (413).
//! - `writer`: [`InfluxWriter`], the thin async task that drives the backlog.
//!
//! Failed batches wait in a bounded backlog and are retried oldest first with exponential
//! back-off, so ingest, detection and the local store never stall on the database. Only when
//! the backlog exceeds `max_backlog_points` are the oldest batches dropped — counted in
//! `dropped_points` and logged as an error. With `[influxdb.outbox]` every batch goes through
//! the durable disk outbox instead (`outbox/`): acknowledged to the source once on disk, bounded
//! in bytes and age, with `block_ingest` or `drop_oldest` when full. Encoding is
//! `crate::line`'s, never here.

pub mod answer;
pub mod backlog;
pub mod config;
pub mod http;
pub mod outbox;
pub mod split;
pub mod writer;

pub use answer::{Answer, Delivery, ErrorKind, WriteErrors};
pub use backlog::{Backlog, BacklogCounters, BacklogLimits, Outcome, Request, WriteResult};
pub use config::InfluxConfig;
pub use http::HttpWriter;
pub use outbox::{OutboxConfig, OutboxPolicy};
pub use split::{Rejection, Splitter};
pub use writer::{AckFn, InfluxWriter, SinkError, SinkItem, SinkStatus};
