//! How cards leave the node as pure data: the JSON payload for MQTT `alerts/<asset>` (reports'
//! JSON is `report::to_json`).
//!
//! The InfluxDB line protocol of cards and reports is encoded in one place only, the sinks'
//! encoder (`millwright-sinks`, `line.rs`); nothing here does I/O or formats line protocol.

use millwright_core::ExplanationCard;

/// The card as JSON for MQTT `alerts/<asset>`.
pub fn card_json(card: &ExplanationCard) -> Result<String, serde_json::Error> {
    serde_json::to_string(card)
}
