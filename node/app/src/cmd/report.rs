//! `millwright report --config FILE --asset A`: asks the running node (over the site's MQTT
//! broker) for a maintenance report of an asset and prints its Markdown.

use crate::cli::ReportArgs;
use crate::config::Config;
use anyhow::Context;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Requests the report and prints it.
pub async fn run(a: &ReportArgs) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let m = cfg
        .mqtt
        .as_ref()
        .context("the config has no [mqtt] section: reports are requested over MQTT")?;
    let base = format!(
        "{}/{}/{}",
        cfg.site.topic_root,
        cfg.site.name,
        millwright_core::schema::topics::REPORTS
    );
    let answer = format!("{base}/{}/markdown", a.asset);
    // The same egress policy as the node's: the broker must be on site unless allowed.
    crate::egress::EgressGuard::new(&cfg)
        .check_all()
        .map_err(|why| anyhow::anyhow!("egress refused: {why}"))?;
    let opts = m
        .connection()
        .with_client_id(format!("{}-report-{}", m.client_id, std::process::id()))
        .v4_options()?
        .into_inner();
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 16);
    let deadline = Instant::now() + Duration::from_secs(a.timeout_s);
    let mut requested = false;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = match tokio::time::timeout(left, el.poll()).await {
            Ok(ev) => ev,
            Err(_) => break,
        };
        match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                client
                    .try_subscribe(answer.clone(), rumqttc::QoS::AtLeastOnce)
                    .context("subscribing to the report topic")?;
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) if !requested => {
                requested = true;
                client
                    .try_publish(
                        format!("{base}/request"),
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        a.asset.clone(),
                    )
                    .context("publishing the report request")?;
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) if p.topic == answer => {
                println!("{}", String::from_utf8_lossy(&p.payload));
                return Ok(ExitCode::SUCCESS);
            }
            Ok(_) => {}
            Err(e) => anyhow::bail!("MQTT broker {}:{}: {e}", m.host, m.port),
        }
    }
    eprintln!(
        "no report for `{}` within {} s: is the node running with this asset in [[assets]]?",
        a.asset, a.timeout_s
    );
    Ok(ExitCode::FAILURE)
}
