//! Fault injection for the node's supervision tests (feature `fault-inject`, never in a
//! production build): with `MILLWRIGHT_FAULT_INJECT=mqtt_source:<topic>` in the environment,
//! a message on exactly `<topic>` makes the MQTT source task panic, so a test can see the
//! panic noticed, reported and the source restarted. Nothing else lives here.

use std::sync::OnceLock;

/// The environment variable read once.
pub const ENV: &str = "MILLWRIGHT_FAULT_INJECT";

fn target() -> Option<&'static str> {
    static T: OnceLock<Option<String>> = OnceLock::new();
    T.get_or_init(|| {
        std::env::var(ENV)
            .ok()
            .and_then(|v| v.strip_prefix("mqtt_source:").map(str::to_string))
    })
    .as_deref()
}

/// Panics when `topic` is the injected one.
#[allow(clippy::panic)] // the whole point: a test-only panic
pub fn mqtt_message(topic: &str) {
    if target() == Some(topic) {
        panic!("fault injected: mqtt source panics on a message on {topic}");
    }
}
