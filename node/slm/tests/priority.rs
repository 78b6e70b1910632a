//! The model's threads lower their own priority to the configured nice value; the rest of
//! the process keeps its own (read back from /proc, as the scheduler sees it). A process of
//! its own (this test file), since the setting is process-wide.

use millwright_core::{Completion, GenParams, LanguageModel, Prompt, SlmError, StopReason};
use millwright_slm::{pool::Pool, priority, ModelHandle};
use std::time::{Duration, Instant};

/// Nice values of this process's threads whose name starts with `prefix` (Linux).
fn nice_of_threads(prefix: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the name in parentheses; nice is field 19 of stat, the 17th after it.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        if let Some(n) = after
            .split_whitespace()
            .nth(16)
            .and_then(|v| v.parse().ok())
        {
            out.push(n);
        }
    }
    out
}

struct Nothing;

impl LanguageModel for Nothing {
    fn name(&self) -> &str {
        "nothing"
    }
    fn generate(
        &mut self,
        _: &Prompt,
        _: &GenParams,
        _: &mut dyn FnMut(&str),
    ) -> Result<Completion, SlmError> {
        Ok(Completion {
            text: String::new(),
            prompt_tokens: 0,
            cached_tokens: 0,
            generated_tokens: 0,
            stop_reason: StopReason::Eos,
            ttft_ms: 0.0,
            total_ms: 0.0,
            model: "nothing".into(),
        })
    }
}

#[test]
fn model_and_kernel_threads_run_at_the_configured_nice_the_caller_does_not() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let mine = priority::current_thread_nice().unwrap();
    // Above whatever the test runs at (raising needs no privilege).
    let nice = (mine + 5).min(19);
    priority::set_nice(nice);
    let pool = Pool::new(3);
    let h = ModelHandle::spawn(Box::new(Nothing), 2).unwrap();
    h.generate_blocking(Prompt::new("", "hi"), GenParams::default(), None)
        .unwrap();
    let t0 = Instant::now();
    while priority::status().applied < 3 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = priority::status();
    assert_eq!(st.nice, Some(nice), "{st:?}");
    assert_eq!((st.applied, st.failed, st.error.as_deref()), (3, 0, None));
    assert_eq!(nice_of_threads("slm-kernel-"), vec![nice, nice]);
    assert_eq!(nice_of_threads("millwright-slm"), vec![nice]);
    // The calling thread (think: the async runtime with ingest) is unchanged.
    assert_eq!(priority::current_thread_nice(), Some(mine));
    // The pool still does its work.
    let n = std::sync::atomic::AtomicUsize::new(0);
    pool.run_chunks(9, &|_| {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(n.into_inner(), 9);
}
