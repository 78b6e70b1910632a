//! Fuzz target: the config parsers of the library crates: asset profiles, `[mqtt]` and
//! `[modbus]` sections (parse + validate) and topic patterns. (The node's whole `Config` lives
//! in the `millwright` binary; its parser is property-tested there.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = millwright_profile::Profile::from_toml_str(text, "fuzz");
    if let Ok(c) = toml::from_str::<millwright_ingest::mqtt::MqttConfig>(text) {
        let _ = c.validate("mqtt");
    }
    if let Ok(c) = toml::from_str::<millwright_ingest::modbus::ModbusConfig>(text) {
        let _ = c.validate();
    }
    let _ = millwright_ingest::mqtt::TopicPattern::parse(text);
});
