//! A small persistent thread pool for the model's kernels.
//!
//! A decode step runs about 120 matrix-vector products of tens of microseconds each, so the
//! cost of handing work to the other threads must be well under a microsecond. The workers
//! spin briefly on an epoch counter before they sleep on a condition variable, so back-to-back
//! jobs within one token are handed over without a system call, while an idle node's model
//! threads sleep instead of burning a core that ingest needs. Every thread, the caller
//! included, takes chunks of a job from a shared counter: when a worker's core is busy with
//! other work (ingest, another process), the caller does that share instead of spinning on a
//! thread that is not running.
//!
//! The number of threads is fixed when the pool is first used ([`set_threads`] before that,
//! else all cores). Jobs never block the async runtime: the engine calls the pool from its own
//! thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins for the next job before it sleeps.
const SPIN: Duration = Duration::from_micros(400);

type Job<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped to publish a job.
    epoch: AtomicUsize,
    /// The epoch whose job may still be joined (0: none).
    open: AtomicUsize,
    job: AtomicPtr<()>,
    chunks: AtomicUsize,
    next: AtomicUsize,
    done: AtomicUsize,
    /// Workers between joining a job and leaving it.
    active: AtomicUsize,
    sleepers: AtomicUsize,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Shared {
    /// Takes chunks of the current job until none are left.
    fn take_chunks(&self, job: Job<'_>) {
        let n = self.chunks.load(Ordering::Acquire);
        loop {
            let c = self.next.fetch_add(1, Ordering::AcqRel);
            if c >= n {
                return;
            }
            // A panicking job must still be counted, or the caller would wait forever.
            let _ = catch_unwind(AssertUnwindSafe(|| job(c)));
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Waits (spinning, then yielding the core) until `cond` holds.
fn wait_until(cond: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !cond() {
        spins = spins.saturating_add(1);
        if spins < 2_000 {
            std::hint::spin_loop();
        } else {
            // The thread we wait for was descheduled (another process has the core).
            std::thread::yield_now();
        }
    }
}

/// A fixed set of kernel threads; the calling thread takes part in every job.
///
/// A job is split into chunks that every thread takes from a shared counter, so when a worker
/// is slow to wake (its core is busy with something else) the others, the caller included,
/// do its share instead of waiting for it.
pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    /// One job at a time (several engines in one process take turns).
    run_lock: Mutex<()>,
    handles: Vec<JoinHandle<()>>,
    /// Jobs still to run on the calling thread alone after the workers were found descheduled.
    solo_left: AtomicUsize,
    /// How many jobs the next solo stretch lasts (doubles while the cores stay busy).
    solo_len: AtomicUsize,
    /// Times the pool switched to solo (for benchmarks and diagnostics).
    solo_switches: AtomicUsize,
}

/// A worker that keeps the caller waiting longer than this (and than twice the time the
/// caller itself worked on the job) is taken as descheduled.
const STRAGGLE: Duration = Duration::from_micros(150);
/// Jobs whose share on the caller takes less than this are the ones watched for stragglers.
const SHORT_JOB: Duration = Duration::from_millis(1);
/// Solo stretches: from one or two tokens' worth of jobs up to a few dozen tokens'.
const SOLO_MIN: usize = 256;
const SOLO_MAX: usize = 8192;

static CONFIGURED: AtomicUsize = AtomicUsize::new(0);
static GLOBAL: OnceLock<Pool> = OnceLock::new();

/// Sets the kernel thread count of the process-wide pool; has no effect once it is running.
pub fn set_threads(n: usize) {
    if n > 0 {
        CONFIGURED.store(n, Ordering::SeqCst);
    }
}

/// The process-wide kernel pool (started on first use).
pub fn global() -> &'static Pool {
    GLOBAL.get_or_init(|| {
        let n = match CONFIGURED.load(Ordering::SeqCst) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Pool::new(n)
    })
}

impl Pool {
    /// A pool of `threads` threads in all (the caller plus `threads - 1` workers). If a worker
    /// cannot be started the pool runs with the ones it has.
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            chunks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut handles = Vec::new();
        for i in 1..threads.max(1) {
            let s = shared.clone();
            match std::thread::Builder::new()
                .name(format!("slm-kernel-{i}"))
                .spawn(move || {
                    // Below ingest when `[model] nice` says so (see `crate::priority`).
                    let _ = crate::priority::lower_current_thread();
                    worker(&s)
                }) {
                Ok(h) => handles.push(h),
                Err(_) => break,
            }
        }
        Self {
            threads: handles.len() + 1,
            shared,
            run_lock: Mutex::new(()),
            handles,
            solo_left: AtomicUsize::new(0),
            solo_len: AtomicUsize::new(SOLO_MIN),
            solo_switches: AtomicUsize::new(0),
        }
    }

    /// Threads a job is split over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How often a job found a worker descheduled, so that the following jobs ran on the
    /// calling thread alone for a while.
    pub fn solo_switches(&self) -> usize {
        self.solo_switches.load(Ordering::Relaxed)
    }

    /// Runs `f(c)` for every chunk `c` in `0..chunks`, each exactly once, on whichever
    /// threads are free, and returns when all have finished.
    pub fn run_chunks(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 || chunks <= 1 {
            (0..chunks).for_each(f);
            return;
        }
        let _turn = self.run_lock.lock().unwrap_or_else(PoisonError::into_inner);
        // The other cores are busy (another process, ingest under load): waiting for workers
        // that are not running costs more than doing the work here, so do it here for a while.
        let solo = self.solo_left.load(Ordering::Relaxed);
        if solo > 0 {
            self.solo_left.store(solo - 1, Ordering::Relaxed);
            (0..chunks).for_each(f);
            return;
        }
        let s = &*self.shared;
        let job: Job<'_> = f;
        // Workers use this pointer only while they are counted in `active`, and this function
        // waits for `active` to drop to zero after closing the job, before `job` goes away.
        s.job
            .store(&job as *const Job<'_> as *mut (), Ordering::SeqCst);
        s.chunks.store(chunks, Ordering::SeqCst);
        s.next.store(0, Ordering::SeqCst);
        s.done.store(0, Ordering::SeqCst);
        let e = s.epoch.load(Ordering::SeqCst).wrapping_add(1).max(1);
        s.open.store(e, Ordering::SeqCst);
        s.epoch.store(e, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(PoisonError::into_inner);
            s.wake.notify_all();
        }
        let started = Instant::now();
        s.take_chunks(job);
        let mine = started.elapsed();
        let mine_done = Instant::now();
        wait_until(|| s.done.load(Ordering::Acquire) >= chunks);
        // Short jobs (a decode step's) end within microseconds of each other unless a worker
        // was not running. Long jobs (a prompt's) can end a chunk apart, and a late worker
        // costs them proportionally little, so they never switch to solo.
        let waited = mine_done.elapsed();
        if mine < SHORT_JOB && waited > STRAGGLE.max(mine * 2) {
            self.solo_switches.fetch_add(1, Ordering::Relaxed);
            let len = self.solo_len.load(Ordering::Relaxed);
            self.solo_left.store(len, Ordering::Relaxed);
            self.solo_len
                .store((len * 2).min(SOLO_MAX), Ordering::Relaxed);
        } else {
            self.solo_len.store(SOLO_MIN, Ordering::Relaxed);
        }
        s.open.store(0, Ordering::SeqCst);
        wait_until(|| s.active.load(Ordering::SeqCst) == 0);
        s.job.store(std::ptr::null_mut(), Ordering::SeqCst);
    }

    /// Splits `0..n` into contiguous parts whose bounds are multiples of `align` (except the
    /// end), a few per thread, and runs `f(range)` for each in parallel.
    pub fn for_ranges(&self, n: usize, align: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        let align = align.max(1);
        if self.threads == 1 || n <= align {
            f(0..n);
            return;
        }
        let units = n.div_ceil(align);
        let parts = units.min(self.threads * 4);
        self.run_chunks(parts, &|c| {
            let a = (units * c / parts * align).min(n);
            let b = (units * (c + 1) / parts * align).min(n);
            if a < b {
                f(a..b);
            }
        });
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _g = self
                .shared
                .lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(s: &Shared) {
    // The epoch the pool was created with: a job published before this thread got going
    // must still be seen as new.
    let mut seen = 0;
    loop {
        let mut since = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) || since.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let mut g = s.lock.lock().unwrap_or_else(PoisonError::into_inner);
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            while s.epoch.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst) {
                g = s.wake.wait(g).unwrap_or_else(PoisonError::into_inner);
            }
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
            since = Instant::now();
        }
        s.active.fetch_add(1, Ordering::SeqCst);
        if s.open.load(Ordering::SeqCst) == seen {
            let p = s.job.load(Ordering::SeqCst) as *const Job<'_>;
            if !p.is_null() {
                // SAFETY: the job is open and this thread is counted in `active`, so the
                // caller of `run_chunks` keeps the job alive until we leave.
                let job = unsafe { *p };
                s.take_chunks(job);
            }
        }
        s.active.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_chunk_runs_once_per_job() {
        let p = Pool::new(3);
        assert_eq!(p.threads(), 3);
        let hits: Vec<AtomicU64> = (0..7).map(|_| AtomicU64::new(0)).collect();
        for _ in 0..1000 {
            p.run_chunks(7, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        for h in &hits {
            assert_eq!(h.load(Ordering::Relaxed), 1000);
        }
    }

    #[test]
    fn ranges_cover_everything_once_and_respect_alignment() {
        let p = Pool::new(2);
        for n in [0usize, 1, 5, 8, 9, 100, 577] {
            let seen: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            p.for_ranges(n, 4, &|r| {
                assert!(r.start.is_multiple_of(4));
                for i in r {
                    seen[i].fetch_add(1, Ordering::Relaxed);
                }
            });
            assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1), "n={n}");
        }
    }

    #[test]
    fn workers_wake_after_sleeping() {
        let p = Pool::new(2);
        let n = AtomicU64::new(0);
        p.run_chunks(5, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(20)); // workers are asleep now
        p.run_chunks(5, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 10);
    }
}
