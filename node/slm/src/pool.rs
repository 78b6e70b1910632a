//! A small persistent thread pool for the model's kernels.
//!
//! A decode step runs about 120 matrix-vector products of a few hundred microseconds each, so
//! the cost of handing work to the other threads must be a few microseconds, not the tens that
//! a general-purpose pool (or spawning) costs. The caller runs its own share of every job and
//! the workers spin briefly on an epoch counter before they sleep on a condition variable, so
//! back-to-back jobs within one token are handed over without a system call, while an idle
//! node's model threads sleep instead of burning a core that ingest needs.
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
    epoch: AtomicUsize,
    job: AtomicPtr<()>,
    pending: AtomicUsize,
    sleepers: AtomicUsize,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// A fixed set of kernel threads; the calling thread is thread 0 of every job.
pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    /// One job at a time (several engines in one process take turns).
    run_lock: Mutex<()>,
    handles: Vec<JoinHandle<()>>,
}

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
            job: AtomicPtr::new(std::ptr::null_mut()),
            pending: AtomicUsize::new(0),
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
                .spawn(move || worker(&s, i))
            {
                Ok(h) => handles.push(h),
                Err(_) => break,
            }
        }
        Self {
            threads: handles.len() + 1,
            shared,
            run_lock: Mutex::new(()),
            handles,
        }
    }

    /// Threads a job is split over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(i)` for every thread index `i` in `0..threads()` (index 0 on the calling
    /// thread) and returns when all have finished.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 {
            f(0);
            return;
        }
        let _turn = self.run_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let s = &*self.shared;
        let job: Job<'_> = f;
        // The workers read the job through this pointer only until `pending` reaches zero,
        // which happens before this function returns (and `job` goes out of scope).
        s.job
            .store(&job as *const Job<'_> as *mut (), Ordering::Release);
        s.pending.store(self.threads - 1, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(PoisonError::into_inner);
            s.wake.notify_all();
        }
        f(0);
        let mut spins = 0u32;
        while s.pending.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins < 20_000 {
                std::hint::spin_loop();
            } else {
                // A worker was descheduled (another process has the core): let it run.
                std::thread::yield_now();
            }
        }
        s.job.store(std::ptr::null_mut(), Ordering::Release);
    }

    /// Splits `0..n` into `threads()` contiguous parts whose bounds are multiples of `align`
    /// (except the end) and runs `f(range)` for each in parallel.
    pub fn for_ranges(&self, n: usize, align: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        let t = self.threads;
        let align = align.max(1);
        if t == 1 || n <= align {
            f(0..n);
            return;
        }
        let units = n.div_ceil(align);
        self.run(&|i| {
            let a = (units * i / t * align).min(n);
            let b = (units * (i + 1) / t * align).min(n);
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

fn worker(s: &Shared, index: usize) {
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
        let p = s.job.load(Ordering::Acquire) as *const Job<'_>;
        if !p.is_null() {
            // SAFETY: `run` published a pointer to a live `Job` and waits for `pending` to
            // reach zero (below) before the job goes out of scope.
            let job = unsafe { *p };
            // A panicking job must still be counted, or the caller would wait forever.
            let _ = catch_unwind(AssertUnwindSafe(|| job(index)));
        }
        s.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_index_runs_once_per_job() {
        let p = Pool::new(3);
        assert_eq!(p.threads(), 3);
        let hits: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
        for _ in 0..1000 {
            p.run(&|i| {
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
        p.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(20)); // workers are asleep now
        p.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }
}
