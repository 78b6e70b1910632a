//! Wall-clock helpers for sources (the only place ingest reads the clock: to stamp readings
//! whose payload carries no time).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now as nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
