//! The node's memory budget (`[node] memory_budget_mb`) and the caps derived from it.
//!
//! One number sizes every in-memory queue of the data path, so a publisher flooding large
//! payloads (or many distinct series) cannot push the node past it:
//!
//! | share | what | when full |
//! |---|---|---|
//! | 1/16 | reading bus (MQTT and Modbus → pipeline), bytes | the source waits: MQTT stops reading, the broker keeps the messages |
//! | 1/16 | InfluxDB writer inbox, bytes | the pipeline waits (so does the bus) |
//! | 1/32 | analytics tap, bytes | the batch skips analytics (stored and written anyway), counted |
//! | 1/8 | in-memory InfluxDB backlog (no outbox), points × [`BACKLOG_POINT_BYTES`] | `influxdb.max_backlog_points` lowered to fit: oldest dropped and counted |
//! | 1/64 | largest MQTT packet accepted | `mqtt.max_packet_bytes` lowered to fit: a larger packet ends the connection (rumqttc), counted as a connection error |
//! | ≤ 1/2 | the local store at its fullest ([`store_bytes`]) | a config problem (`check-config`) |
//!
//! Up to 10 × 1/64 more: the MQTT client's read-ahead (rumqttc decodes up to 10 packets per
//! network read), so the shares and the read-ahead add up to 15/16 of the budget at most.
//! The rest is the program itself (~15 MiB resident) and the decoding of
//! one message (JSON arrays go element by element into readings and stop at the readings cap). The language model's weights come on top (their resident size is
//! on `/metrics`). The series count is capped by `store.max_sensors` (readings of more sensors
//! are counted in `millwright_store_rejected_readings_total`); name lengths by the decoders.

use crate::config::Config;
use millwright_core::budget::ByteBudget;
use millwright_core::ValidationError;
use std::sync::Arc;

/// Default `[node] memory_budget_mb`.
pub const DEFAULT_BUDGET_MB: usize = 1024;
/// Smallest and largest accepted budget, in MB.
pub const BUDGET_RANGE_MB: std::ops::RangeInclusive<usize> = 32..=65_536;
/// Bytes one point takes in the in-memory InfluxDB backlog (line protocol with the tags).
pub const BACKLOG_POINT_BYTES: usize = 128;

const MB: usize = 1024 * 1024;

/// The local store at its fullest: every sensor's ring of samples at the capacity it grows to
/// (a power of two) for `max_points_per_sensor`.
pub fn store_bytes(s: &millwright_store::StoreConfig) -> usize {
    s.max_sensors
        .saturating_mul(s.max_points_per_sensor.next_power_of_two())
        .saturating_mul(std::mem::size_of::<millwright_core::history::Sample>())
}

/// The caps derived from a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryCaps {
    /// The whole budget.
    pub budget_bytes: usize,
    /// Reading bus.
    pub bus_bytes: usize,
    /// InfluxDB writer inbox.
    pub writer_inbox_bytes: usize,
    /// Analytics tap.
    pub tap_bytes: usize,
    /// In-memory InfluxDB backlog.
    pub backlog_bytes: usize,
    /// Largest MQTT packet.
    pub mqtt_packet_bytes: usize,
    /// Most the local store may be sized to.
    pub store_bytes: usize,
}

impl MemoryCaps {
    /// The caps of `budget_mb`.
    pub fn of_mb(budget_mb: usize) -> Self {
        let b = budget_mb.saturating_mul(MB);
        Self {
            budget_bytes: b,
            bus_bytes: b / 16,
            writer_inbox_bytes: b / 16,
            tap_bytes: b / 32,
            backlog_bytes: b / 8,
            mqtt_packet_bytes: b / 64,
            store_bytes: b / 2,
        }
    }

    /// The caps of a config.
    pub fn of(cfg: &Config) -> Self {
        Self::of_mb(cfg.node.memory_budget_mb)
    }

    /// Most points of the in-memory InfluxDB backlog.
    pub fn backlog_points(&self) -> usize {
        self.backlog_bytes / BACKLOG_POINT_BYTES
    }

    /// Problems of `cfg` against its budget (for [`Config::validate`]).
    pub fn validate(cfg: &Config) -> Vec<ValidationError> {
        let mut e = Vec::new();
        let mb = cfg.node.memory_budget_mb;
        if !BUDGET_RANGE_MB.contains(&mb) {
            e.push(ValidationError::new(
                "node.memory_budget_mb",
                format!(
                    "must be {}–{} (MB)",
                    BUDGET_RANGE_MB.start(),
                    BUDGET_RANGE_MB.end()
                ),
            ));
            return e;
        }
        let caps = Self::of_mb(mb);
        let store = store_bytes(&cfg.store);
        if store > caps.store_bytes {
            e.push(ValidationError::new(
                "store.max_sensors",
                format!(
                    "store.max_sensors × store.max_points_per_sensor take up to {} MiB, more than \
                     half of node.memory_budget_mb = {mb} ({} MiB): lower them or raise the budget",
                    store / MB,
                    caps.store_bytes / MB
                ),
            ));
        }
        if let Some(i) = &cfg.influxdb {
            if i.outbox.is_none() && caps.backlog_points() < i.batch_size {
                e.push(ValidationError::new(
                    "influxdb.batch_size",
                    format!(
                        "{} points do not fit the in-memory backlog node.memory_budget_mb = {mb} \
                         allows ({} points)",
                        i.batch_size,
                        caps.backlog_points()
                    ),
                ));
            }
        }
        e
    }

    /// `cfg` with the limits the budget lowers: `mqtt.max_packet_bytes` and, without an outbox,
    /// `influxdb.max_backlog_points`. Returns what was lowered, one line each.
    pub fn apply(&self, cfg: &mut Config) -> Vec<String> {
        let mut lowered = Vec::new();
        if let Some(m) = &mut cfg.mqtt {
            if m.max_packet_bytes > self.mqtt_packet_bytes {
                lowered.push(format!(
                    "mqtt.max_packet_bytes {} → {} (1/64 of node.memory_budget_mb)",
                    m.max_packet_bytes, self.mqtt_packet_bytes
                ));
                m.max_packet_bytes = self.mqtt_packet_bytes;
            }
        }
        if let Some(i) = &mut cfg.influxdb {
            let most = self.backlog_points().max(i.batch_size);
            if i.outbox.is_none() && i.max_backlog_points > most {
                lowered.push(format!(
                    "influxdb.max_backlog_points {} → {most} (1/8 of node.memory_budget_mb at {} \
                     bytes a point)",
                    i.max_backlog_points, BACKLOG_POINT_BYTES
                ));
                i.max_backlog_points = most;
            }
        }
        lowered
    }

    /// One line for `check-config` and the start log.
    pub fn summary(&self) -> String {
        let mib = |b: usize| b as f64 / MB as f64;
        format!(
            "budget {:.0} MiB: bus {:.1} MiB, writer inbox {:.1} MiB, analytics tap {:.1} MiB, \
             InfluxDB backlog {} points, MQTT packets ≤ {:.1} MiB, store ≤ {:.0} MiB",
            mib(self.budget_bytes),
            mib(self.bus_bytes),
            mib(self.writer_inbox_bytes),
            mib(self.tap_bytes),
            self.backlog_points(),
            mib(self.mqtt_packet_bytes),
            mib(self.store_bytes)
        )
    }
}

/// The byte budgets of a running node's queues (shared with `/metrics` and `/health`).
#[derive(Clone, Debug)]
pub struct Budgets {
    /// The caps they came from.
    pub caps: MemoryCaps,
    /// Reading bus (MQTT deliveries and Modbus batches share it).
    pub bus: Arc<ByteBudget>,
    /// InfluxDB writer inbox.
    pub writer_inbox: Arc<ByteBudget>,
    /// Analytics tap.
    pub analytics_tap: Arc<ByteBudget>,
}

impl Budgets {
    /// Fresh budgets of `caps`.
    pub fn new(caps: MemoryCaps) -> Self {
        Self {
            caps,
            bus: ByteBudget::new("bus", caps.bus_bytes),
            writer_inbox: ByteBudget::new("writer_inbox", caps.writer_inbox_bytes),
            analytics_tap: ByteBudget::new("analytics_tap", caps.tap_bytes),
        }
    }

    /// Every budget, in a fixed order.
    pub fn all(&self) -> [&Arc<ByteBudget>; 3] {
        [&self.bus, &self.writer_inbox, &self.analytics_tap]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[site]
name = "s"
[mqtt]
host = "127.0.0.1"
[[mqtt.subscriptions]]
topic = "p/{asset}/{signal}"
[influxdb]
url = "http://127.0.0.1:8086"
org = "o"
bucket = "b"
"#;

    #[test]
    fn the_default_budget_keeps_the_defaults() {
        let mut cfg = Config::parse(CFG).unwrap();
        assert_eq!(cfg.node.memory_budget_mb, DEFAULT_BUDGET_MB);
        let caps = MemoryCaps::of(&cfg);
        assert_eq!(caps.mqtt_packet_bytes, 16 * MB);
        assert_eq!(caps.bus_bytes, 64 * MB);
        // The default store (1,000 sensors × 16,384-sample rings × 24 B = 375 MiB) fits.
        assert!(store_bytes(&cfg.store) <= caps.store_bytes);
        assert!(caps.apply(&mut cfg).is_empty());
        assert_eq!(cfg.influxdb.as_ref().unwrap().max_backlog_points, 1_000_000);
        assert_eq!(cfg.mqtt.as_ref().unwrap().max_packet_bytes, 16 * MB);
    }

    #[test]
    fn a_small_budget_lowers_the_packet_limit_and_refuses_a_large_store() {
        let text = format!("{CFG}[node]\nmemory_budget_mb = 64\n");
        let err = Config::parse(&text).unwrap_err();
        assert!(
            err.iter()
                .any(|p| p.path == "store.max_sensors" && p.message.contains("375 MiB")),
            "{err:?}"
        );
        let mut cfg = Config::parse(&format!(
            "{text}[store]\nmax_sensors = 200\nmax_points_per_sensor = 1000\n"
        ))
        .unwrap();
        let caps = MemoryCaps::of(&cfg);
        let lowered = caps.apply(&mut cfg);
        assert_eq!(lowered.len(), 2, "{lowered:?}");
        assert!(lowered[0].starts_with("mqtt.max_packet_bytes 16777216 → 1048576"));
        assert_eq!(cfg.mqtt.as_ref().unwrap().max_packet_bytes, MB);
        assert!(caps.summary().starts_with("budget 64 MiB: bus 4.0 MiB"));
    }

    #[test]
    fn the_budget_range_is_checked() {
        for (mb, ok) in [(31, false), (32, true), (65_536, true), (65_537, false)] {
            let text = format!(
                "{CFG}[node]\nmemory_budget_mb = {mb}\n[store]\nmax_sensors = 10\nmax_points_per_sensor = 100\n"
            );
            let r = Config::parse(&text);
            assert_eq!(r.is_ok(), ok, "{mb}: {r:?}");
            if let Err(p) = r {
                assert_eq!(p[0].path, "node.memory_budget_mb");
            }
        }
    }
}
