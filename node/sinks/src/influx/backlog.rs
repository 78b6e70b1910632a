//! [`Backlog`]: what the InfluxDB writer holds in memory, as a pure state machine.
//!
//! Encoded lines are pushed with their point counts and collected into batches of at most
//! `batch_size` points (a batch is sealed when full or when the caller flushes it). Sealed
//! batches are sent oldest first, one at a time: [`Backlog::next_request`] hands out the next
//! body, [`Backlog::on_result`] takes the outcome — `Ok` removes the batch, `Retry` keeps it and
//! waits with exponential back-off, `Reject` (the server says the data is malformed) removes it
//! and counts it. When more than `max_points` wait in sealed batches, the oldest batches that are
//! not in flight are dropped and counted (the newest batch is always kept).
//!
//! No I/O, no async, no clock: time comes in as an `Instant` argument, so every rule here is
//! unit-tested without a server. The driver that sends the requests is `writer.rs`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits of a [`Backlog`] (from `InfluxConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BacklogLimits {
    /// Most points in one request body (a single push larger than this is sent whole).
    pub batch_size: usize,
    /// Most points kept in sealed batches before the oldest are dropped.
    pub max_points: usize,
    /// First retry delay after a failed request.
    pub retry_min: Duration,
    /// Longest retry delay (the delay doubles per failure up to this).
    pub retry_max: Duration,
}

/// The next request to send: a shared body (cheap to clone for retries) and its point count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Line protocol, one point per line.
    pub body: Arc<String>,
    /// Points in `body`.
    pub points: usize,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteResult {
    /// The server stored the batch.
    Ok,
    /// A transient failure (connection, timeout, 5xx, 429): keep the batch and retry later.
    Retry,
    /// Like `Retry`, but the server said when (`Retry-After`): wait exactly this long.
    RetryAfter(Duration),
    /// The server rejected the batch as malformed (HTTP 400): retrying cannot help.
    Reject,
    /// The batch is done: all of it stored but `rejected` points refused for good (the writer
    /// split it around the bad points, `split.rs`).
    Partial {
        /// Points refused for good.
        rejected: usize,
    },
}

/// What [`Backlog::on_result`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The batch of this many points was written.
    Written(usize),
    /// The batch stays; the next attempt waits this long.
    RetryIn(Duration),
    /// The batch of this many points was rejected and removed.
    Rejected(usize),
    /// No request was in flight: nothing changed.
    NotInFlight,
}

/// Cumulative counters of a backlog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BacklogCounters {
    /// Points the server accepted.
    pub written_points: u64,
    /// Successful requests.
    pub write_requests: u64,
    /// Failed requests (retried or rejected).
    pub failed_requests: u64,
    /// Points dropped because the backlog was full (or abandoned at the end of a drain).
    pub dropped_points: u64,
    /// Points rejected by the server as malformed.
    pub rejected_points: u64,
}

/// Batches waiting to be written, oldest first (see the module doc).
#[derive(Debug)]
pub struct Backlog {
    limits: BacklogLimits,
    /// The batch being filled.
    open: String,
    open_points: usize,
    /// Sealed batches, oldest first.
    sealed: VecDeque<Request>,
    sealed_points: usize,
    /// True while the front of `sealed` has been handed out and no result came back.
    in_flight: bool,
    retry_delay: Duration,
    retry_at: Option<Instant>,
    counters: BacklogCounters,
}

impl Backlog {
    /// An empty backlog.
    pub fn new(limits: BacklogLimits) -> Self {
        Self {
            limits,
            open: String::new(),
            open_points: 0,
            sealed: VecDeque::new(),
            sealed_points: 0,
            in_flight: false,
            retry_delay: limits.retry_min,
            retry_at: None,
            counters: BacklogCounters::default(),
        }
    }

    /// Appends what `encode` writes (whole lines ending in `\n`) as one push; `encode` returns
    /// how many points it wrote. When the open batch cannot take them without passing
    /// `batch_size`, it is sealed first; when it is full afterwards, it is sealed too.
    /// Returns the points dropped to keep the backlog bounded (0 almost always).
    pub fn push_with(
        &mut self,
        points_hint: usize,
        encode: impl FnOnce(&mut String) -> usize,
    ) -> u64 {
        if self.open_points > 0 && self.open_points + points_hint.max(1) > self.limits.batch_size {
            self.seal_open();
        }
        let before = self.open.len();
        let n = encode(&mut self.open);
        if n == 0 {
            self.open.truncate(before);
            return self.enforce_bound();
        }
        if !self.open.ends_with('\n') {
            self.open.push('\n');
        }
        self.open_points += n;
        if self.open_points >= self.limits.batch_size {
            self.seal_open();
        }
        self.enforce_bound()
    }

    /// Appends ready line protocol holding `points` points (see [`Backlog::push_with`]).
    pub fn push_lines(&mut self, lines: &str, points: usize) -> u64 {
        self.push_with(points, |b| {
            b.push_str(lines);
            points
        })
    }

    /// Seals the open batch (flush interval passed, or the writer is closing); returns the
    /// points dropped to keep the backlog bounded.
    pub fn flush(&mut self) -> u64 {
        self.seal_open();
        self.enforce_bound()
    }

    /// The next body to send, if nothing is in flight, a sealed batch waits and no retry delay
    /// is running at `now`. Marks it in flight until [`Backlog::on_result`].
    pub fn next_request(&mut self, now: Instant) -> Option<Request> {
        if self.in_flight || self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        let r = self.sealed.front()?.clone();
        self.retry_at = None;
        self.in_flight = true;
        Some(r)
    }

    /// Takes the outcome of the request handed out last.
    pub fn on_result(&mut self, result: WriteResult, now: Instant) -> Outcome {
        if !self.in_flight {
            return Outcome::NotInFlight;
        }
        self.in_flight = false;
        match result {
            WriteResult::Ok => {
                let n = self.pop_front();
                self.counters.written_points += n as u64;
                self.counters.write_requests += 1;
                self.retry_delay = self.limits.retry_min;
                self.retry_at = None;
                Outcome::Written(n)
            }
            WriteResult::RetryAfter(wait) => {
                self.counters.failed_requests += 1;
                self.retry_at = Some(now + wait);
                self.enforce_bound();
                Outcome::RetryIn(wait)
            }
            WriteResult::Partial { rejected } => {
                let n = self.pop_front();
                let rejected = rejected.min(n);
                self.counters.written_points += (n - rejected) as u64;
                self.counters.rejected_points += rejected as u64;
                self.counters.write_requests += 1;
                self.counters.failed_requests += u64::from(rejected > 0);
                self.retry_delay = self.limits.retry_min;
                self.retry_at = None;
                Outcome::Written(n - rejected)
            }
            WriteResult::Retry => {
                self.counters.failed_requests += 1;
                let wait = self.retry_delay;
                self.retry_at = Some(now + wait);
                self.retry_delay = (self.retry_delay * 2).min(self.limits.retry_max);
                // The batch that failed may have been the only one keeping older ones in.
                self.enforce_bound();
                Outcome::RetryIn(wait)
            }
            WriteResult::Reject => {
                let n = self.pop_front();
                self.counters.failed_requests += 1;
                self.counters.rejected_points += n as u64;
                Outcome::Rejected(n)
            }
        }
    }

    /// When the next request may go out after a failure (None: now, if one waits).
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// True while a request is out.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// True when a sealed batch is waiting (in flight or not).
    pub fn has_sealed(&self) -> bool {
        !self.sealed.is_empty()
    }

    /// Points held: sealed batches (the one in flight included) and the open batch.
    pub fn pending_points(&self) -> usize {
        self.sealed_points + self.open_points
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pending_points() == 0
    }

    /// The cumulative counters.
    pub fn counters(&self) -> BacklogCounters {
        self.counters
    }

    /// Gives up on everything held (the drain deadline passed): counts it as dropped and
    /// returns how many points that was.
    pub fn abandon(&mut self) -> usize {
        let n = self.pending_points();
        self.counters.dropped_points += n as u64;
        self.sealed.clear();
        self.sealed_points = 0;
        self.open.clear();
        self.open_points = 0;
        self.in_flight = false;
        n
    }

    fn seal_open(&mut self) {
        if self.open_points == 0 {
            return;
        }
        let body = std::mem::take(&mut self.open);
        self.sealed.push_back(Request {
            body: Arc::new(body),
            points: self.open_points,
        });
        self.sealed_points += self.open_points;
        self.open_points = 0;
    }

    fn pop_front(&mut self) -> usize {
        match self.sealed.pop_front() {
            Some(r) => {
                self.sealed_points -= r.points;
                r.points
            }
            None => 0,
        }
    }

    /// Drops the oldest batches that are not in flight while more than `max_points` wait in
    /// sealed batches, always keeping the newest; returns the points dropped.
    fn enforce_bound(&mut self) -> u64 {
        let mut dropped = 0u64;
        while self.sealed_points > self.limits.max_points && self.sealed.len() > 1 {
            // The batch in flight (the front) stays: its result is still to come.
            let i = usize::from(self.in_flight);
            if i + 1 >= self.sealed.len() {
                break;
            }
            let Some(r) = self.sealed.remove(i) else {
                break;
            };
            self.sealed_points -= r.points;
            dropped += r.points as u64;
        }
        self.counters.dropped_points += dropped;
        dropped
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limits(batch_size: usize, max_points: usize) -> BacklogLimits {
        BacklogLimits {
            batch_size,
            max_points,
            retry_min: 100 * MS,
            retry_max: 1000 * MS,
        }
    }

    fn line(i: usize) -> String {
        format!("m v={i} {i}\n")
    }

    fn push_points(b: &mut Backlog, range: std::ops::Range<usize>) -> u64 {
        range.map(|i| b.push_lines(&line(i), 1)).sum()
    }

    /// Point numbers in a body, in order.
    fn ids(r: &Request) -> Vec<usize> {
        r.body
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn batches_are_sent_oldest_first_and_hold_at_most_batch_size() {
        let t = Instant::now();
        let mut b = Backlog::new(limits(3, 100));
        push_points(&mut b, 0..7);
        assert_eq!(b.pending_points(), 7);
        // Two full batches sealed on their own; the 7th point waits for a flush.
        let r = b.next_request(t).unwrap();
        assert_eq!((ids(&r), r.points), (vec![0, 1, 2], 3));
        assert_eq!(b.next_request(t), None, "one request at a time");
        assert_eq!(b.on_result(WriteResult::Ok, t), Outcome::Written(3));
        let r = b.next_request(t).unwrap();
        assert_eq!(ids(&r), vec![3, 4, 5]);
        assert_eq!(b.on_result(WriteResult::Ok, t), Outcome::Written(3));
        assert_eq!(
            b.next_request(t),
            None,
            "the open batch is not sent before a flush"
        );
        b.flush();
        let r = b.next_request(t).unwrap();
        assert_eq!((ids(&r), r.points), (vec![6], 1));
        b.on_result(WriteResult::Ok, t);
        assert!(b.is_empty());
        let c = b.counters();
        assert_eq!(
            (c.written_points, c.write_requests, c.failed_requests),
            (7, 3, 0)
        );
    }

    #[test]
    fn a_push_that_does_not_fit_starts_a_new_batch_and_a_big_one_goes_whole() {
        let t = Instant::now();
        let mut b = Backlog::new(limits(4, 100));
        b.push_lines(&(0..3).map(line).collect::<String>(), 3);
        b.push_lines(&(3..5).map(line).collect::<String>(), 2);
        b.push_lines(&(5..15).map(line).collect::<String>(), 10);
        b.flush();
        let mut sizes = Vec::new();
        while let Some(r) = b.next_request(t) {
            sizes.push(r.points);
            assert_eq!(ids(&r).len(), r.points);
            b.on_result(WriteResult::Ok, t);
        }
        assert_eq!(sizes, vec![3, 2, 10]);
    }

    #[test]
    fn retry_keeps_the_data_and_backs_off_exponentially() {
        let t = Instant::now();
        let mut b = Backlog::new(limits(2, 100));
        push_points(&mut b, 0..4);
        let first = b.next_request(t).unwrap();
        assert_eq!(
            b.on_result(WriteResult::Retry, t),
            Outcome::RetryIn(100 * MS)
        );
        assert_eq!(b.retry_at(), Some(t + 100 * MS));
        assert_eq!(b.next_request(t + 99 * MS), None, "waits out the back-off");
        let again = b.next_request(t + 100 * MS).unwrap();
        assert_eq!(again, first, "the same batch, same body");
        let t2 = t + 100 * MS;
        assert_eq!(
            b.on_result(WriteResult::Retry, t2),
            Outcome::RetryIn(200 * MS)
        );
        b.next_request(t2 + 200 * MS).unwrap();
        assert_eq!(
            b.on_result(WriteResult::Retry, t2),
            Outcome::RetryIn(400 * MS)
        );
        b.next_request(t2 + 400 * MS).unwrap();
        assert_eq!(
            b.on_result(WriteResult::Retry, t2),
            Outcome::RetryIn(800 * MS)
        );
        b.next_request(t2 + 800 * MS).unwrap();
        assert_eq!(
            b.on_result(WriteResult::Retry, t2),
            Outcome::RetryIn(1000 * MS),
            "capped"
        );
        assert_eq!(b.pending_points(), 4, "nothing lost while failing");
        // Success resets the back-off; order is kept.
        let r = b.next_request(t2 + 1000 * MS).unwrap();
        assert_eq!(ids(&r), vec![0, 1]);
        b.on_result(WriteResult::Ok, t2);
        let r = b.next_request(t2).unwrap();
        assert_eq!(ids(&r), vec![2, 3]);
        assert_eq!(
            b.on_result(WriteResult::Retry, t2),
            Outcome::RetryIn(100 * MS)
        );
        let c = b.counters();
        assert_eq!(
            (c.written_points, c.write_requests, c.failed_requests),
            (2, 1, 6)
        );
        assert_eq!((c.dropped_points, c.rejected_points), (0, 0));
    }

    #[test]
    fn reject_drops_the_batch_counts_it_and_moves_on() {
        let t = Instant::now();
        let mut b = Backlog::new(limits(2, 100));
        push_points(&mut b, 0..4);
        b.next_request(t).unwrap();
        assert_eq!(b.on_result(WriteResult::Reject, t), Outcome::Rejected(2));
        let r = b.next_request(t).unwrap();
        assert_eq!(ids(&r), vec![2, 3], "no back-off after a reject");
        b.on_result(WriteResult::Ok, t);
        let c = b.counters();
        assert_eq!(
            (c.rejected_points, c.failed_requests, c.written_points),
            (2, 1, 2)
        );
        assert_eq!(b.on_result(WriteResult::Ok, t), Outcome::NotInFlight);
        assert_eq!(
            b.counters(),
            c,
            "a result without a request changes nothing"
        );
    }

    #[test]
    fn partial_counts_the_rejected_and_retry_after_waits_what_the_server_said() {
        let t = Instant::now();
        let mut b = Backlog::new(limits(5, 100));
        push_points(&mut b, 0..10);
        b.next_request(t).unwrap();
        assert_eq!(
            b.on_result(WriteResult::Partial { rejected: 2 }, t),
            Outcome::Written(3)
        );
        let c = b.counters();
        assert_eq!((c.written_points, c.rejected_points), (3, 2));
        b.next_request(t).unwrap();
        assert_eq!(
            b.on_result(WriteResult::RetryAfter(7000 * MS), t),
            Outcome::RetryIn(7000 * MS),
            "the server's delay, not the back-off"
        );
        assert_eq!(b.next_request(t + 6999 * MS), None);
        let r = b.next_request(t + 7000 * MS).unwrap();
        assert_eq!(ids(&r), vec![5, 6, 7, 8, 9], "the same batch");
        assert_eq!(
            b.on_result(WriteResult::Retry, t),
            Outcome::RetryIn(100 * MS),
            "the back-off was not raised by Retry-After"
        );
    }

    #[test]
    fn the_bound_drops_the_oldest_batches_but_never_the_one_in_flight_or_the_newest() {
        let t = Instant::now();
        let mut b = Backlog::new(limits(2, 4));
        assert_eq!(push_points(&mut b, 0..4), 0, "4 points fit");
        let inflight = b.next_request(t).unwrap();
        assert_eq!(ids(&inflight), vec![0, 1]);
        // Batches [4,5] and [6,7] push the sealed points to 8 > 4: [2,3] and [4,5] go, the
        // batch in flight stays.
        assert_eq!(push_points(&mut b, 4..8), 4);
        assert_eq!(b.counters().dropped_points, 4);
        assert_eq!(b.pending_points(), 4);
        assert_eq!(b.on_result(WriteResult::Ok, t), Outcome::Written(2));
        let r = b.next_request(t).unwrap();
        assert_eq!(ids(&r), vec![6, 7]);
        b.on_result(WriteResult::Ok, t);
        assert!(b.is_empty());
        let c = b.counters();
        assert_eq!((c.written_points, c.dropped_points), (4, 4));
        // One batch larger than the bound is still kept (and sent whole).
        let mut b = Backlog::new(limits(10, 10));
        b.push_lines(&(0..12).map(line).collect::<String>(), 12);
        assert_eq!(b.pending_points(), 12);
        assert_eq!(b.next_request(t).unwrap().points, 12);
    }

    #[test]
    fn an_empty_push_and_an_empty_flush_change_nothing() {
        let t = Instant::now();
        let mut b = Backlog::new(limits(2, 10));
        assert_eq!(b.push_with(1, |_| 0), 0);
        b.flush();
        assert!(b.is_empty() && !b.has_sealed());
        assert_eq!(b.next_request(t), None);
        // Lines without a final newline get one.
        b.push_lines("m v=1 1", 1);
        b.push_lines("m v=2 2", 1);
        assert_eq!(&*b.next_request(t).unwrap().body, "m v=1 1\nm v=2 2\n");
    }

    #[test]
    fn abandon_counts_what_is_left_as_dropped() {
        let t = Instant::now();
        let mut b = Backlog::new(limits(2, 10));
        push_points(&mut b, 0..5);
        b.next_request(t).unwrap();
        assert_eq!(b.abandon(), 5);
        assert!(b.is_empty() && !b.in_flight());
        assert_eq!(b.counters().dropped_points, 5);
        assert_eq!(b.on_result(WriteResult::Ok, t), Outcome::NotInFlight);
    }
}
