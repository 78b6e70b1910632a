//! Embedded MQTT broker (rumqttd) on loopback, for the demo and benchmarks: nothing to install.
//!
//! Production nodes use the site's broker (Mosquitto, EMQX, HiveMQ …) named in the config.

use anyhow::Context;
use std::net::{SocketAddr, TcpListener};

/// Picks a free TCP port on loopback.
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(l.local_addr()?.port())
}

/// Starts rumqttd on `127.0.0.1:port` in its own thread and waits until it accepts connections.
pub fn start_embedded(port: u16) -> anyhow::Result<SocketAddr> {
    start_embedded_v5(port).map(|(addr, _)| addr)
}

/// Like [`start_embedded`]; also returns the port of its MQTT 5 listener (operator questions).
pub fn start_embedded_v5(port: u16) -> anyhow::Result<(SocketAddr, u16)> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let port5 = free_port()?;
    let toml_cfg = format!(
        r#"
id = 0
[router]
max_connections = 1000
max_outgoing_packet_count = 2000
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 16777216
max_inflight_count = 500
dynamic_filters = true

[v5.1]
name = "v5-1"
listen = "127.0.0.1:{port5}"
next_connection_delay_ms = 1
[v5.1.connections]
connection_timeout_ms = 60000
max_payload_size = 16777216
max_inflight_count = 500
dynamic_filters = true
"#,
    );
    let cfg: rumqttd::Config = toml::from_str(&toml_cfg).context("embedded broker config")?;
    std::thread::Builder::new()
        .name("embedded-mqtt".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(cfg);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .context("starting the embedded broker thread")?;
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", port5)).is_ok()
        {
            return Ok((addr, port5));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    anyhow::bail!("embedded MQTT broker did not start listening on {addr}")
}
