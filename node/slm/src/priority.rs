//! Scheduling priority of the model's threads: ingest and detection come first.
//!
//! The model thread ([`crate::ModelHandle`]) and the kernel pool's workers ([`crate::pool`])
//! lower their own priority when they start, to the nice value set with [`set_nice`] (the
//! node's `[model] nice`; nothing changes until it is set, or when it is 0). On Linux the nice
//! value is per thread: `setpriority(PRIO_PROCESS, tid, nice)` changes only the calling
//! thread, so the rest of the process (the async runtime with ingest, the analytics thread)
//! keeps its priority. When the cores are contended the scheduler then gives the model's
//! threads a small share (nice 10: about a tenth of a nice-0 thread's) and runs ingest first;
//! when the node is otherwise idle the model still gets every core.
//!
//! Raising a thread's nice value needs no privilege; lowering it below the process's does
//! (`EPERM`). A failure leaves the thread as it was and is counted, with the first error kept
//! for `/health` ([`status`]). Elsewhere than Linux nothing is changed.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Not set: threads keep the priority they were created with.
const UNSET: i32 = i32::MIN;

static NICE: AtomicI32 = AtomicI32::new(UNSET);
static APPLIED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);
static FIRST_ERROR: OnceLock<String> = OnceLock::new();

/// Sets the nice value (clamped to 0–19) the model's threads take when they start; 0 leaves
/// them as the process is. Threads already running keep theirs, so set it before the model
/// thread starts.
pub fn set_nice(nice: i32) {
    NICE.store(nice.clamp(0, 19), Ordering::SeqCst);
}

/// The configured nice value, if any (and not 0).
pub fn configured() -> Option<i32> {
    match NICE.load(Ordering::SeqCst) {
        UNSET | 0 => None,
        n => Some(n),
    }
}

/// What was applied to the model's threads so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriorityStatus {
    /// The configured nice value (None: unchanged).
    pub nice: Option<i32>,
    /// Threads that run at it.
    pub applied: usize,
    /// Threads that could not be changed (they run at the process's priority).
    pub failed: usize,
    /// The first failure.
    pub error: Option<String>,
}

/// The priority of the model's threads.
pub fn status() -> PriorityStatus {
    PriorityStatus {
        nice: configured(),
        applied: APPLIED.load(Ordering::Relaxed),
        failed: FAILED.load(Ordering::Relaxed),
        error: FIRST_ERROR.get().cloned(),
    }
}

/// Lowers the calling thread to the configured nice value (called by the model's threads
/// themselves when they start). `Ok(None)`: nothing configured.
pub fn lower_current_thread() -> Result<Option<i32>, String> {
    let Some(nice) = configured() else {
        return Ok(None);
    };
    match set_current_thread_nice(nice) {
        Ok(()) => {
            APPLIED.fetch_add(1, Ordering::Relaxed);
            Ok(Some(nice))
        }
        Err(e) => {
            FAILED.fetch_add(1, Ordering::Relaxed);
            let _ = FIRST_ERROR.set(e.clone());
            Err(e)
        }
    }
}

/// The calling thread's nice value (None where unknown).
pub fn current_thread_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions. getpriority only reads; -1 is also a valid
        // nice value, so errno is cleared first and checked after.
        unsafe {
            let tid = libc::gettid();
            *libc::__errno_location() = 0;
            let n = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            (*libc::__errno_location() == 0).then_some(n)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(target_os = "linux")]
fn set_current_thread_nice(nice: i32) -> Result<(), String> {
    // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS and a thread id of
    // this process changes only that thread's nice value and touches no memory of ours.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = std::io::Error::last_os_error();
        Err(format!("setpriority(nice {nice}) of a model thread: {e}"))
    }
}

#[cfg(not(target_os = "linux"))]
fn set_current_thread_nice(_nice: i32) -> Result<(), String> {
    Err("thread priorities are only changed on Linux".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_read_the_calling_threads_nice_value() {
        // In a thread of its own: the test runner's threads stay as they are.
        let r = std::thread::spawn(|| {
            let before = current_thread_nice();
            let target = before.map_or(12, |b| (b + 3).min(19));
            let set = set_current_thread_nice(target);
            (before, target, set, current_thread_nice())
        })
        .join();
        let Ok((before, target, set, after)) = r else {
            panic!("thread failed");
        };
        if cfg!(target_os = "linux") {
            assert!(before.is_some());
            assert_eq!(set, Ok(()));
            assert_eq!(after, Some(target));
            // the main thread was not changed
            assert_eq!(current_thread_nice(), before);
        } else {
            assert!(set.is_err());
        }
    }

    #[test]
    fn raising_priority_without_privilege_is_an_error_not_a_panic() {
        let r = std::thread::spawn(|| {
            // Up to 19 is always allowed; back down to a lower value needs CAP_SYS_NICE (or
            // RLIMIT_NICE), so it either works (privileged) or reports EPERM.
            let up = set_current_thread_nice(19);
            let down = set_current_thread_nice(0);
            (up, down, current_thread_nice())
        })
        .join();
        let Ok((up, down, now)) = r else {
            panic!("thread failed");
        };
        if cfg!(target_os = "linux") {
            assert_eq!(up, Ok(()));
            match down {
                Ok(()) => assert_eq!(now, Some(0)),
                Err(e) => {
                    assert!(e.contains("nice 0"), "{e}");
                    assert_eq!(now, Some(19));
                }
            }
        }
    }
}
