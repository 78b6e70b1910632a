//! MQTT source: subscriptions, topic patterns, payload codecs and the client task.

mod acks;
pub mod codec;
pub mod config;
pub mod source;
pub mod topic;
pub mod watch;

pub use codec::{Decoder, PayloadError, PayloadFormat};
pub use config::{MqttConfig, MqttProtocol, SubscriptionConfig, TlsConfig};
pub use source::{Ack, AckMode, BusSender, Delivery, MqttSetupError, MqttSource, SourceStatus};
pub use topic::TopicPattern;
