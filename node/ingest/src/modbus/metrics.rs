//! Modbus counters: one [`DeviceMetrics`] per device (relaxed atomics, updated by the device's
//! poll task) and a shared poll-cycle latency histogram. Read by the node's metrics endpoint,
//! `check-config`/demo views and the `bench modbus` benchmark. No I/O here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of one device.
#[derive(Debug, Default)]
pub struct DeviceMetrics {
    /// Device name.
    pub device: String,
    /// Read requests sent (each attempt counts).
    pub requests: AtomicU64,
    /// Requests answered with a Modbus exception.
    pub exceptions: AtomicU64,
    /// Requests that timed out.
    pub timeouts: AtomicU64,
    /// Requests that failed in transport (connect, I/O, framing).
    pub transport_errors: AtomicU64,
    /// Connections (re)established.
    pub connects: AtomicU64,
    /// Poll cycles completed.
    pub cycles: AtomicU64,
    /// Registers and coils received in good responses.
    pub items_read: AtomicU64,
    /// Good readings produced.
    pub readings_good: AtomicU64,
    /// Bad-quality readings produced.
    pub readings_bad: AtomicU64,
    /// Batches dropped because the reading bus stayed full for a whole poll interval.
    pub dropped_batches: AtomicU64,
    /// Times the device went offline.
    pub offline_events: AtomicU64,
    /// Reads after a split (the plan in use; starts at the planner's count).
    pub plan_requests: AtomicU64,
    /// Duration of the last poll cycle, microseconds.
    pub last_cycle_us: AtomicU64,
    /// Whether the device is currently offline.
    pub offline: AtomicBool,
}

impl DeviceMetrics {
    /// Fresh counters for `device`.
    pub fn new(device: impl Into<String>) -> Self {
        Self {
            device: device.into(),
            ..Self::default()
        }
    }
    /// Whether the device is currently offline.
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Relaxed)
    }
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Log-linear histogram of durations in microseconds: 16 sub-buckets per power of two
/// (≤ 6.25 % relative error), lock-free.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
}

const SUB: u32 = 16;
const POWERS: u32 = 40;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..(SUB * POWERS)).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl LatencyHistogram {
    fn index(us: u64) -> usize {
        if us < u64::from(SUB) {
            return usize::try_from(us).unwrap_or(0);
        }
        let p = 63 - us.leading_zeros(); // floor(log2)
        let shift = p - 4; // keep 5 significant bits: 16..=31
        let sub = (us >> shift) - u64::from(SUB);
        let idx = u64::from((p - 3) * SUB) + sub;
        usize::try_from(idx.min(u64::from(SUB * POWERS - 1))).unwrap_or(0)
    }
    /// Lower bound of bucket `i` in microseconds.
    fn lower(i: usize) -> u64 {
        let i = u64::try_from(i).unwrap_or(0);
        let sub = u64::from(SUB);
        if i < sub {
            return i;
        }
        let p = i / sub + 3;
        let s = i % sub;
        (sub + s) << (p - 4)
    }
    /// Records one duration.
    pub fn record_us(&self, us: u64) {
        if let Some(b) = self.buckets.get(Self::index(us)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
    /// The `q` quantile (0..=1) in microseconds (the lower bound of its bucket), 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::lower(i);
            }
        }
        Self::lower(counts.len() - 1)
    }
    /// Forgets all samples (benchmarks reset after warm-up).
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }
}

/// Counters of all Modbus devices of a node.
#[derive(Debug, Default)]
pub struct ModbusMetrics {
    /// Per device, in config order.
    pub devices: Vec<Arc<DeviceMetrics>>,
    /// Poll-cycle durations of all devices (start of the first read to the last answer).
    pub cycle_time: LatencyHistogram,
}

impl ModbusMetrics {
    /// Sum of one counter over all devices.
    pub fn total(&self, f: impl Fn(&DeviceMetrics) -> &AtomicU64) -> u64 {
        self.devices
            .iter()
            .map(|d| f(d).load(Ordering::Relaxed))
            .sum()
    }
    /// Devices currently offline.
    pub fn offline_devices(&self) -> Vec<String> {
        self.devices
            .iter()
            .filter(|d| d.is_offline())
            .map(|d| d.device.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let h = LatencyHistogram::default();
        for us in 1..=10_000u64 {
            h.record_us(us);
        }
        assert_eq!(h.count(), 10_000);
        let p50 = h.quantile_us(0.5) as f64;
        let p99 = h.quantile_us(0.99) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.07, "p50 {p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.07, "p99 {p99}");
        assert_eq!(h.quantile_us(0.0), 1);
        h.reset();
        assert_eq!(h.quantile_us(0.5), 0);
    }

    #[test]
    fn bucket_bounds_are_monotone() {
        let mut last = 0;
        for i in 1..(SUB * POWERS) as usize {
            let l = LatencyHistogram::lower(i);
            assert!(l > last, "bucket {i}");
            assert_eq!(LatencyHistogram::index(l), i);
            last = l;
        }
    }
}
