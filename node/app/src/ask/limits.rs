//! Per-operator rate limit of questions: a token bucket per operator (`[ask] rate_per_min`,
//! `burst`), pure and driven by the caller's clock, so it is tested without waiting.
//!
//! Only the arithmetic lives here; the service decides what to answer.

use std::collections::HashMap;
use std::time::Instant;

/// Operators remembered at most; full buckets are forgotten first beyond it.
const MAX_OPERATORS: usize = 10_000;

/// Token buckets per operator.
#[derive(Debug)]
pub struct RateLimiter {
    per_s: f64,
    burst: f64,
    buckets: HashMap<String, (f64, Instant)>,
}

impl RateLimiter {
    /// `rate_per_min` questions per minute after a burst of `burst`.
    pub fn new(rate_per_min: u32, burst: u32) -> Self {
        Self {
            per_s: f64::from(rate_per_min.max(1)) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes one question of `operator` at `now`: `Ok` when allowed, else the seconds until
    /// the next one is (at least 1).
    pub fn take(&mut self, operator: &str, now: Instant) -> Result<(), u64> {
        if self.buckets.len() >= MAX_OPERATORS && !self.buckets.contains_key(operator) {
            self.forget_full(now);
        }
        let (per_s, burst) = (self.per_s, self.burst);
        let (tokens, last) = self
            .buckets
            .entry(operator.to_string())
            .or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * per_s).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) / per_s).ceil() as u64).max(1))
        }
    }

    fn forget_full(&mut self, now: Instant) {
        let (per_s, burst) = (self.per_s, self.burst);
        self.buckets.retain(|_, (t, last)| {
            *t + now.saturating_duration_since(*last).as_secs_f64() * per_s < burst
        });
        if self.buckets.len() >= MAX_OPERATORS {
            self.buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate_per_operator() {
        let mut r = RateLimiter::new(6, 2); // one per 10 s after two
        let t0 = Instant::now();
        assert_eq!(r.take("ann", t0), Ok(()));
        assert_eq!(r.take("ann", t0), Ok(()));
        assert_eq!(r.take("ann", t0), Err(10));
        // Another operator has their own bucket.
        assert_eq!(r.take("bob", t0), Ok(()));
        assert_eq!(r.take("ann", t0 + Duration::from_secs(4)), Err(6));
        assert_eq!(r.take("ann", t0 + Duration::from_secs(10)), Ok(()));
        // The bucket never holds more than the burst.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(r.take("ann", later), Ok(()));
        assert_eq!(r.take("ann", later), Ok(()));
        assert!(r.take("ann", later).is_err());
    }
}
