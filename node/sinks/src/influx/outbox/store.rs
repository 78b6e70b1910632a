//! [`Outbox`]: the durable queue of line-protocol batches bound for InfluxDB.
//!
//! Appends go to the active segment file (one `write` per record, no fsync); [`Outbox::sync`]
//! makes everything appended so far durable with one `fdatasync` (group commit: the writer calls
//! it once per round of received items, then acknowledges them). Records are handed out in
//! order with [`Outbox::next_request`] and marked delivered with [`Outbox::on_ok`]; a cursor
//! file (`cursor`: segment and offset of the first undelivered record, replaced atomically)
//! says where a restart resumes, and segment files wholly before it are deleted. A cursor that
//! lags after a crash only resends delivered batches (InfluxDB overwrites identical points).
//!
//! Replay after an outage: when writes succeed again after failures while records wait, the
//! records appended from then on are *live* and go first; the older ones (*replay*) are sent
//! in the gaps, limited to `replay_points_per_s` by a token bucket.
//!
//! Budget: `max_bytes` of undelivered records and `max_age_s`. [`Outbox::is_full`] tells the
//! writer to stop taking data (`block_ingest`); under `drop_oldest`, [`Outbox::enforce`] drops
//! the oldest undelivered records (never the one in flight, never the newest), counted.
//! Too-old records are dropped under either policy, counted.
//!
//! Blocking file I/O, called from the writer task (appends are page-cache writes; the one
//! fsync per round takes a few ms). The on-disk format is `segment.rs`'s.

use super::config::{OutboxConfig, OutboxPolicy};
use super::segment::{self, RecMeta};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Pending,
    InFlight,
    Done,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    meta: RecMeta,
    state: State,
}

/// Cumulative counters of an outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounters {
    /// Points appended.
    pub appended_points: u64,
    /// Points dropped by the policy (`drop_oldest`) or for age.
    pub dropped_points: u64,
    /// Of those, dropped because older than `max_age_s`.
    pub dropped_age_points: u64,
    /// Torn records found (and cut off) when the outbox was opened.
    pub torn_records: u64,
    /// Bytes cut off with them.
    pub torn_bytes: u64,
    /// Records recovered from disk when the outbox was opened.
    pub recovered_records: u64,
    /// Points in them.
    pub recovered_points: u64,
    /// Points delivered from the replay region (after an outage).
    pub replayed_points: u64,
}

/// A request body made of consecutive records.
#[derive(Debug)]
pub struct OutRequest {
    /// Line protocol.
    pub body: String,
    /// Points in it.
    pub points: usize,
    /// True when this is backlog replayed after an outage (throttled).
    pub replay: bool,
    ids: Vec<u64>,
}

/// The durable queue (see the module doc).
pub struct Outbox {
    dir: PathBuf,
    cfg: OutboxConfig,
    /// Undelivered records (and delivered ones not yet at the front), oldest first.
    records: VecDeque<Entry>,
    /// Id of `records.front()`; ids are consecutive.
    front_id: u64,
    /// Segment numbers on disk, oldest first; the last one is the active one.
    segments: VecDeque<(u64, u64)>,
    active: File,
    active_seg: u64,
    active_len: u64,
    /// Segment files held open for reading.
    reader: Option<(u64, File)>,
    pending_points: u64,
    pending_bytes: u64,
    unsynced: bool,
    dir_unsynced: bool,
    live_mark: Option<u64>,
    /// Id from which the next pending live record is looked for.
    live_next: u64,
    /// True while a request is out.
    in_flight: bool,
    tokens: f64,
    refilled: Instant,
    counters: OutboxCounters,
    scratch: Vec<u8>,
}

fn io_ctx(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("outbox {what} {}: {e}", p.display()))
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`: reads the cursor, checks every undelivered
    /// record, cuts off a torn tail (counted) and starts a new segment for appends.
    pub fn open(dir: &Path, cfg: OutboxConfig) -> io::Result<Outbox> {
        std::fs::create_dir_all(dir).map_err(|e| io_ctx(e, "cannot create", dir))?;
        let cursor = read_cursor(dir);
        let mut counters = OutboxCounters::default();
        let mut records = VecDeque::new();
        let mut segments = VecDeque::new();
        let mut last = 0u64;
        for n in segment::list_segments(dir).map_err(|e| io_ctx(e, "cannot list", dir))? {
            last = n;
            let p = segment::seg_path(dir, n);
            let start = match cursor {
                Some((cs, _)) if n < cs => {
                    std::fs::remove_file(&p).map_err(|e| io_ctx(e, "cannot delete", &p))?;
                    continue;
                }
                Some((cs, co)) if n == cs => co,
                _ => 0,
            };
            let s = segment::scan(dir, n, start).map_err(|e| io_ctx(e, "cannot read", &p))?;
            if s.torn {
                counters.torn_records += 1;
                counters.torn_bytes += s.torn_bytes;
                tracing::warn!(segment = %p.display(), valid_bytes = s.valid_end, torn_bytes = s.torn_bytes, "outbox: torn record after a crash; cut off");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| io_ctx(e, "cannot open", &p))?;
                f.set_len(s.valid_end)
                    .map_err(|e| io_ctx(e, "cannot truncate", &p))?;
                f.sync_all().map_err(|e| io_ctx(e, "cannot sync", &p))?;
            }
            for r in s.records {
                counters.recovered_records += 1;
                counters.recovered_points += u64::from(r.points);
                records.push_back(Entry {
                    meta: r,
                    state: State::Pending,
                });
            }
            segments.push_back((n, s.valid_end));
        }
        let active_seg = last + 1;
        let p = segment::seg_path(dir, active_seg);
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| io_ctx(e, "cannot create", &p))?;
        segments.push_back((active_seg, 0));
        let pending_points = records.iter().map(|e| u64::from(e.meta.points)).sum();
        let pending_bytes = records.iter().map(|e| e.meta.disk_bytes()).sum();
        let mut o = Outbox {
            dir: dir.to_path_buf(),
            tokens: cfg.replay_points_per_s as f64,
            cfg,
            records,
            front_id: 0,
            segments,
            active,
            active_seg,
            active_len: 0,
            reader: None,
            pending_points,
            pending_bytes,
            unsynced: false,
            dir_unsynced: true,
            live_mark: None,
            live_next: 0,
            in_flight: false,
            refilled: Instant::now(),
            counters,
            scratch: Vec::new(),
        };
        o.sync()?;
        // Recovered records are a backlog: replayed throttled behind live data.
        if !o.records.is_empty() {
            o.live_mark = Some(o.next_id());
            o.live_next = o.next_id();
        }
        o.collect();
        Ok(o)
    }

    fn next_id(&self) -> u64 {
        self.front_id + self.records.len() as u64
    }

    /// Appends one record (not yet durable: see [`Outbox::sync`]).
    pub fn append(&mut self, body: &[u8], points: u32, now_ms: u64) -> io::Result<()> {
        if body.is_empty() || points == 0 {
            return Ok(());
        }
        if self.active_len > 0
            && self.active_len + (segment::HEADER + body.len()) as u64 > self.cfg.segment_bytes
        {
            self.rotate()?;
        }
        self.scratch.clear();
        segment::encode(&mut self.scratch, body, points, now_ms);
        self.active.write_all(&self.scratch).map_err(|e| {
            io_ctx(
                e,
                "cannot append to",
                &segment::seg_path(&self.dir, self.active_seg),
            )
        })?;
        let meta = RecMeta {
            seg: self.active_seg,
            offset: self.active_len,
            len: body.len() as u32,
            points,
            appended_ms: now_ms,
        };
        self.active_len += meta.disk_bytes();
        if let Some(s) = self.segments.back_mut() {
            s.1 = self.active_len;
        }
        self.pending_points += u64::from(points);
        self.pending_bytes += meta.disk_bytes();
        self.counters.appended_points += u64::from(points);
        self.records.push_back(Entry {
            meta,
            state: State::Pending,
        });
        self.unsynced = true;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        self.active_seg += 1;
        let p = segment::seg_path(&self.dir, self.active_seg);
        self.active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| io_ctx(e, "cannot create", &p))?;
        self.active_len = 0;
        self.segments.push_back((self.active_seg, 0));
        self.dir_unsynced = true;
        Ok(())
    }

    /// Makes every append so far durable (one fdatasync; the folder too after a new segment).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.active
                .sync_data()
                .map_err(|e| io_ctx(e, "cannot sync", &self.dir))?;
            self.unsynced = false;
        }
        if self.dir_unsynced {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_ctx(e, "cannot sync folder", &self.dir))?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    /// True when the undelivered bytes reached `max_bytes`.
    pub fn is_full(&self) -> bool {
        self.pending_bytes >= self.cfg.max_bytes
    }

    /// The configured policy.
    pub fn policy(&self) -> OutboxPolicy {
        self.cfg.policy
    }

    /// Drops undelivered records older than `max_age_s` and, under `drop_oldest`, the oldest
    /// ones while over `max_bytes` (never one in flight, never the newest). Returns the points
    /// dropped.
    pub fn enforce(&mut self, now_ms: u64) -> u64 {
        let mut dropped = 0u64;
        let cutoff = now_ms.saturating_sub(self.cfg.max_age_s.saturating_mul(1000));
        let n = self.records.len();
        for i in 0..n.saturating_sub(1) {
            let over = self.cfg.policy == OutboxPolicy::DropOldest
                && self.pending_bytes > self.cfg.max_bytes;
            let Some(e) = self.records.get_mut(i) else {
                break;
            };
            let old = e.meta.appended_ms < cutoff;
            if !over && !old {
                break;
            }
            if e.state != State::Pending {
                continue;
            }
            e.state = State::Done;
            let (p, b) = (u64::from(e.meta.points), e.meta.disk_bytes());
            self.pending_points -= p;
            self.pending_bytes -= b;
            dropped += p;
            if old {
                self.counters.dropped_age_points += p;
            }
        }
        self.counters.dropped_points += dropped;
        if dropped > 0 {
            self.collect();
        }
        dropped
    }

    /// Writes are succeeding again after failures: what waits now is replayed (throttled)
    /// behind what arrives from now on.
    pub fn on_recovered(&mut self) {
        if self.pending_points > 0 {
            self.live_mark = Some(self.next_id());
            self.live_next = self.next_id();
            self.refilled = Instant::now();
            self.tokens = self.tokens.min(self.cfg.replay_points_per_s as f64);
        }
    }

    fn refill(&mut self, now: Instant) {
        let r = self.cfg.replay_points_per_s as f64;
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + dt * r).min(r.max(1.0));
    }

    /// The next request of at most `max_points` points (at least one record), or None when
    /// nothing waits, a request is out, or the replay budget must refill first
    /// ([`Outbox::replay_wait`]).
    pub fn next_request(
        &mut self,
        max_points: usize,
        now: Instant,
    ) -> io::Result<Option<OutRequest>> {
        if self.in_flight {
            return Ok(None);
        }
        // The front is never a delivered record: past the mark, no backlog is left.
        if self.live_mark.is_some_and(|m| self.front_id >= m) {
            self.live_mark = None;
        }
        let len = self.records.len();
        let (picked, points, replay) = match self.live_mark {
            Some(m) => {
                let split = usize::try_from(m.saturating_sub(self.front_id))
                    .unwrap_or(usize::MAX)
                    .min(len);
                let hint = usize::try_from(self.live_next.saturating_sub(self.front_id))
                    .unwrap_or(usize::MAX)
                    .min(len);
                let (picked, points) = self.pick(split.max(hint), len, max_points);
                if let Some(&last) = picked.last() {
                    self.live_next = self.front_id + last as u64 + 1;
                    (picked, points, false)
                } else {
                    self.live_next = self.front_id + len as u64;
                    let (picked, points) = self.pick(0, split, max_points);
                    (picked, points, true)
                }
            }
            None => {
                let (picked, points) = self.pick(0, len, max_points);
                (picked, points, false)
            }
        };
        if picked.is_empty() {
            return Ok(None);
        }
        if replay && self.cfg.replay_points_per_s > 0 {
            self.refill(now);
            let need = (points as f64).min(self.cfg.replay_points_per_s as f64);
            if self.tokens < need {
                return Ok(None);
            }
            self.tokens -= points as f64;
        }
        let mut body = Vec::new();
        for &i in &picked {
            let Some(e) = self.records.get(i).copied() else {
                continue;
            };
            body.extend_from_slice(&self.read(&e.meta)?);
        }
        let ids = picked
            .iter()
            .map(|&i| self.front_id + i as u64)
            .collect::<Vec<_>>();
        for &i in &picked {
            if let Some(e) = self.records.get_mut(i) {
                e.state = State::InFlight;
            }
        }
        self.in_flight = true;
        let body = String::from_utf8(body).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, "outbox record is not UTF-8")
        })?;
        Ok(Some(OutRequest {
            body,
            points,
            replay,
            ids,
        }))
    }

    /// Pending records in `start..end`, consecutive but for delivered ones, up to
    /// `max_points` (at least one).
    fn pick(&self, start: usize, end: usize, max_points: usize) -> (Vec<usize>, usize) {
        let mut picked = Vec::new();
        let mut points = 0usize;
        for i in start..end {
            let Some(e) = self.records.get(i) else { break };
            if e.state != State::Pending {
                continue;
            }
            let p = e.meta.points as usize;
            if !picked.is_empty() && points + p > max_points {
                break;
            }
            picked.push(i);
            points += p;
            if points >= max_points {
                break;
            }
        }
        (picked, points)
    }

    /// When the replay budget allows the next replay request (None: not waiting on it).
    pub fn replay_wait(&self, max_points: usize) -> Option<Duration> {
        let r = self.cfg.replay_points_per_s as f64;
        if self.live_mark.is_none() || r <= 0.0 {
            return None;
        }
        let need = (max_points as f64).min(r);
        (self.tokens < need).then(|| Duration::from_secs_f64(((need - self.tokens) / r).max(0.001)))
    }

    fn read(&mut self, r: &RecMeta) -> io::Result<Vec<u8>> {
        if self.reader.as_ref().is_none_or(|(s, _)| *s != r.seg) {
            let p = segment::seg_path(&self.dir, r.seg);
            let f = File::open(&p).map_err(|e| io_ctx(e, "cannot open", &p))?;
            self.reader = Some((r.seg, f));
        }
        match &self.reader {
            Some((_, f)) => segment::read_body(f, r),
            None => Err(io::Error::other("outbox reader")),
        }
    }

    fn finish(&mut self, req: &OutRequest, delivered: bool) {
        self.in_flight = false;
        for &id in &req.ids {
            let Some(e) = usize::try_from(id.wrapping_sub(self.front_id))
                .ok()
                .and_then(|i| self.records.get_mut(i))
            else {
                continue;
            };
            if e.state == State::InFlight {
                e.state = State::Done;
                self.pending_points -= u64::from(e.meta.points);
                self.pending_bytes -= e.meta.disk_bytes();
            }
        }
        if delivered && req.replay {
            self.counters.replayed_points += req.points as u64;
        }
        self.collect();
    }

    /// The request was written: its records are delivered.
    pub fn on_ok(&mut self, req: &OutRequest) {
        self.finish(req, true);
    }

    /// The request was rejected for good (malformed): its records are removed (the caller
    /// counts them).
    pub fn on_reject(&mut self, req: &OutRequest) {
        self.finish(req, false);
    }

    /// The request failed transiently: its records wait again.
    pub fn on_retry(&mut self, req: &OutRequest) {
        self.in_flight = false;
        if let Some(&first) = req.ids.first() {
            self.live_next = self.live_next.min(first);
        }
        for &id in &req.ids {
            if let Some(e) = usize::try_from(id.wrapping_sub(self.front_id))
                .ok()
                .and_then(|i| self.records.get_mut(i))
            {
                if e.state == State::InFlight {
                    e.state = State::Pending;
                }
            }
        }
        if req.replay {
            self.tokens += req.points as f64;
        }
    }

    /// Pops delivered records off the front, moves the cursor, deletes passed segments.
    fn collect(&mut self) {
        let before = self.front_id;
        while self.records.front().is_some_and(|e| e.state == State::Done) {
            self.records.pop_front();
            self.front_id += 1;
        }
        if self.front_id == before {
            return;
        }
        let (cs, co) = match self.records.front() {
            Some(e) => (e.meta.seg, e.meta.offset),
            None => (self.active_seg, self.active_len),
        };
        if let Err(e) = write_cursor(&self.dir, cs, co) {
            tracing::warn!(error = %e, "outbox: cannot write the cursor (a restart resends delivered data)");
        }
        while self.segments.front().is_some_and(|&(n, _)| n < cs) {
            if let Some((n, _)) = self.segments.pop_front() {
                if self.reader.as_ref().is_some_and(|(s, _)| *s == n) {
                    self.reader = None;
                }
                let p = segment::seg_path(&self.dir, n);
                if let Err(e) = std::fs::remove_file(&p) {
                    tracing::warn!(segment = %p.display(), error = %e, "outbox: cannot delete a delivered segment");
                }
            }
        }
    }

    /// Points not yet delivered.
    pub fn pending_points(&self) -> u64 {
        self.pending_points
    }

    /// Bytes of records not yet delivered.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Bytes of segment files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.1).sum()
    }

    /// Append time (Unix ms) of the oldest undelivered record.
    pub fn oldest_ms(&self) -> Option<u64> {
        self.records
            .iter()
            .find(|e| e.state != State::Done)
            .map(|e| e.meta.appended_ms)
    }

    /// True while backlog from before the last recovery waits behind live data.
    pub fn replaying(&self) -> bool {
        self.live_mark.is_some()
    }

    /// The cumulative counters.
    pub fn counters(&self) -> OutboxCounters {
        self.counters
    }
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let t = std::fs::read_to_string(dir.join("cursor")).ok()?;
    let mut it = t.split_whitespace();
    let s = u64::from_str_radix(it.next()?, 16).ok()?;
    let o = it.next()?.parse().ok()?;
    Some((s, o))
}

fn write_cursor(dir: &Path, seg: u64, offset: u64) -> io::Result<()> {
    let tmp = dir.join("cursor.tmp");
    std::fs::write(&tmp, format!("{seg:016x} {offset}\n"))?;
    std::fs::rename(&tmp, dir.join("cursor"))
}
