//! The Sparkplug B payload as `prost` messages, written by hand from the vendored
//! `sparkplug_b.proto` (Sparkplug 3.0, EPL-2.0; see `NOTICE.md`) so that no `protoc` is needed
//! at build time. Field numbers and types are the `.proto`'s.
//!
//! Deliberate simplifications, all wire-compatible: the DataSet, Template, MetaData,
//! PropertySet-valued properties and extension values are kept as opaque bytes (the node skips
//! datasets and templates, and never needs their insides), which also means a hostile, deeply
//! nested template cannot make the decoder recurse. Nothing else lives here.

/// `Payload` (the whole message).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// Time of sending, ms since the epoch.
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// Sequence number 0..=255 (not on NDEATH).
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
    /// Schema UUID.
    #[prost(string, optional, tag = "4")]
    pub uuid: Option<String>,
    /// Opaque body.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub body: Option<Vec<u8>>,
}

/// `Payload.Metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// Name (on births; DATA may use the alias alone).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Alias, bound to the name by the birth.
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    /// Acquisition time, ms since the epoch.
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    /// Datatype index (see [`DataType`](super::DataType)).
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    /// Historical value.
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    /// Not to be stored.
    #[prost(bool, optional, tag = "6")]
    pub is_transient: Option<bool>,
    /// Explicit null.
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    /// `MetaData`, opaque.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub metadata: Option<Vec<u8>>,
    /// Properties (engineering unit and others).
    #[prost(message, optional, tag = "9")]
    pub properties: Option<PropertySet>,
    /// The value.
    #[prost(oneof = "MetricValue", tags = "10, 11, 12, 13, 14, 15, 16, 17, 18, 19")]
    pub value: Option<MetricValue>,
}

/// `Payload.Metric.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MetricValue {
    /// Int8..Int32, UInt8..UInt32 (two's complement in 32 bits for the signed ones).
    #[prost(uint32, tag = "10")]
    IntValue(u32),
    /// Int64, UInt64, DateTime (and UInt32 from some encoders).
    #[prost(uint64, tag = "11")]
    LongValue(u64),
    /// Float.
    #[prost(float, tag = "12")]
    FloatValue(f32),
    /// Double.
    #[prost(double, tag = "13")]
    DoubleValue(f64),
    /// Boolean.
    #[prost(bool, tag = "14")]
    BooleanValue(bool),
    /// String, Text, UUID.
    #[prost(string, tag = "15")]
    StringValue(String),
    /// Bytes, File.
    #[prost(bytes = "vec", tag = "16")]
    BytesValue(Vec<u8>),
    /// `DataSet`, opaque.
    #[prost(bytes = "vec", tag = "17")]
    DatasetValue(Vec<u8>),
    /// `Template`, opaque.
    #[prost(bytes = "vec", tag = "18")]
    TemplateValue(Vec<u8>),
    /// `MetricValueExtension`, opaque.
    #[prost(bytes = "vec", tag = "19")]
    ExtensionValue(Vec<u8>),
}

/// `Payload.PropertySet`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertySet {
    /// Property names.
    #[prost(string, repeated, tag = "1")]
    pub keys: Vec<String>,
    /// Property values, in the order of `keys`.
    #[prost(message, repeated, tag = "2")]
    pub values: Vec<PropertyValue>,
}

/// `Payload.PropertyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertyValue {
    /// Datatype index.
    #[prost(uint32, optional, tag = "1")]
    pub r#type: Option<u32>,
    /// Explicit null.
    #[prost(bool, optional, tag = "2")]
    pub is_null: Option<bool>,
    /// The value.
    #[prost(oneof = "PropertyValueValue", tags = "3, 4, 5, 6, 7, 8, 9, 10, 11")]
    pub value: Option<PropertyValueValue>,
}

/// `Payload.PropertyValue.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PropertyValueValue {
    /// Int8..UInt32.
    #[prost(uint32, tag = "3")]
    IntValue(u32),
    /// Int64, UInt64, DateTime.
    #[prost(uint64, tag = "4")]
    LongValue(u64),
    /// Float.
    #[prost(float, tag = "5")]
    FloatValue(f32),
    /// Double.
    #[prost(double, tag = "6")]
    DoubleValue(f64),
    /// Boolean.
    #[prost(bool, tag = "7")]
    BooleanValue(bool),
    /// String, Text.
    #[prost(string, tag = "8")]
    StringValue(String),
    /// `PropertySet`, opaque.
    #[prost(bytes = "vec", tag = "9")]
    PropertysetValue(Vec<u8>),
    /// `PropertySetList`, opaque.
    #[prost(bytes = "vec", tag = "10")]
    PropertysetsValue(Vec<u8>),
    /// `PropertyValueExtension`, opaque.
    #[prost(bytes = "vec", tag = "11")]
    ExtensionValue(Vec<u8>),
}
