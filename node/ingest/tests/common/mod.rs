//! Helpers shared by this crate's integration tests against the real services.
#![allow(clippy::expect_used)]

/// The test Mosquitto's (host, port) from `MILLWRIGHT_TEST_MQTT` (set by `make test`).
pub fn broker() -> (String, u16) {
    let hp = std::env::var("MILLWRIGHT_TEST_MQTT").expect(
        "MILLWRIGHT_TEST_MQTT (host:port of a Mosquitto) is not set: run `make test`, or start \
         mosquitto and export MILLWRIGHT_TEST_MQTT=127.0.0.1:<port>",
    );
    let (h, p) = hp.rsplit_once(':').expect("host:port");
    (h.to_string(), p.parse().expect("port"))
}
