//! Serving a model to the rest of the node: a bounded request queue drained by one dedicated
//! OS thread that owns the model, so generation never blocks the async runtime.
//!
//! A full queue answers [`SlmError::Busy`] at once instead of growing memory. Answers come
//! back through a tokio oneshot (async callers) or a std channel (blocking callers); streamed
//! text goes to an optional callback run on the model thread (keep it cheap: e.g. send into
//! a channel). Any other work with the model (an explanation with its retry) is a
//! [`ModelJob`] handed over with [`ModelHandle::try_run`]. The model may be loaded on the
//! thread itself ([`ModelHandle::spawn_with`]), so loading never runs on the caller's thread
//! either. The thread ends when the last handle is dropped.
//!
//! Batching: when the thread takes a generation request off the queue it also takes the
//! generation requests already waiting behind it (up to [`MAX_BATCH`], stopping at the first
//! [`ModelJob`], which runs alone after them) and runs them together with
//! [`LanguageModel::generate_batch`]; a lone request runs with [`LanguageModel::generate`].
//! Queue capacity and `Busy` are unchanged: a request counts against the queue until the
//! thread takes it.

use millwright_core::{Completion, GenParams, LanguageModel, Prompt, SlmError};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

type Reply = Box<dyn FnOnce(Result<Completion, SlmError>) + Send>;
/// Streaming callback run on the model thread for each piece of text.
pub type TokenSink = Box<dyn FnMut(&str) + Send>;
/// Work run on the model thread with the model (send results out through a channel).
pub type ModelJob = Box<dyn FnOnce(&mut dyn LanguageModel) + Send>;

/// Most generation requests run together in one batch.
pub const MAX_BATCH: usize = 16;

/// A generation request waiting on the queue.
struct GenRequest {
    prompt: Prompt,
    params: GenParams,
    on_token: Option<TokenSink>,
    reply: Reply,
}

/// What the queue holds.
enum Work {
    Generate(GenRequest),
    Job(ModelJob),
}

/// The model thread's loop: batches waiting generation requests, runs jobs alone.
fn serve(model: &mut dyn LanguageModel, rx: &Receiver<Work>, max_batch: usize) {
    let mut next = rx.recv().ok();
    while let Some(work) = next.take() {
        match work {
            Work::Job(job) => job(model),
            Work::Generate(first) => {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(Work::Generate(g)) => batch.push(g),
                        Ok(job) => {
                            next = Some(job);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                run_batch(model, batch);
            }
        }
        if next.is_none() {
            next = rx.recv().ok();
        }
    }
}

fn run_batch(model: &mut dyn LanguageModel, mut batch: Vec<GenRequest>) {
    if batch.len() == 1 {
        if let Some(mut g) = batch.pop() {
            let mut sink = |s: &str| {
                if let Some(f) = g.on_token.as_mut() {
                    f(s);
                }
            };
            (g.reply)(model.generate(&g.prompt, &g.params, &mut sink));
        }
        return;
    }
    let mut requests = Vec::with_capacity(batch.len());
    let mut sinks = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for g in batch {
        requests.push((g.prompt, g.params));
        sinks.push(g.on_token);
        replies.push(g.reply);
    }
    let results = model.generate_batch(&requests, &mut |i, s| {
        if let Some(Some(f)) = sinks.get_mut(i) {
            f(s);
        }
    });
    let mut results = results.into_iter();
    for reply in replies {
        reply(results.next().unwrap_or_else(|| {
            Err(SlmError::Inference(
                "the model returned fewer answers than requests".into(),
            ))
        }));
    }
}

/// A cloneable handle to a model running on its own thread behind a bounded queue.
#[derive(Clone)]
pub struct ModelHandle {
    tx: SyncSender<Work>,
    capacity: usize,
    name: Arc<OnceLock<String>>,
}

impl ModelHandle {
    /// Moves `model` onto a new thread that serves up to `queue` waiting requests
    /// (plus the one being generated).
    pub fn spawn(model: Box<dyn LanguageModel>, queue: usize) -> Result<Self, SlmError> {
        let name = model.name().to_string();
        let h = Self::spawn_with(move || model, queue)?;
        let _ = h.name.set(name);
        Ok(h)
    }

    /// Starts the model thread, which first runs `loader` (reading a model file can take
    /// seconds: it never runs on the caller's thread), then serves up to `queue` waiting
    /// requests (plus the one running). Requests queued while it loads wait for it.
    pub fn spawn_with<F>(loader: F, queue: usize) -> Result<Self, SlmError>
    where
        F: FnOnce() -> Box<dyn LanguageModel> + Send + 'static,
    {
        let name: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
        let (tx, rx) = sync_channel::<Work>(queue);
        let loaded = name.clone();
        std::thread::Builder::new()
            .name("millwright-slm".into())
            .spawn(move || {
                // Below ingest when `[model] nice` says so (see `crate::priority`); the
                // kernel pool's workers, started from here, do the same.
                let _ = crate::priority::lower_current_thread();
                let mut model = loader();
                let _ = loaded.set(model.name().to_string());
                serve(&mut *model, &rx, MAX_BATCH);
            })
            .map_err(|e| SlmError::Unavailable(format!("cannot start the model thread: {e}")))?;
        Ok(Self {
            tx,
            capacity: queue,
            name,
        })
    }

    /// Name of the served model (`loading` until [`ModelHandle::spawn_with`]'s loader is done).
    pub fn name(&self) -> &str {
        self.name.get().map(String::as_str).unwrap_or("loading")
    }

    /// Queues `job` to run on the model thread with the model, without waiting for it.
    /// Returns `Busy` at once when the queue is full (the job is dropped unrun).
    pub fn try_run(&self, job: ModelJob) -> Result<(), SlmError> {
        self.send(Work::Job(job))
    }

    fn send(&self, work: Work) -> Result<(), SlmError> {
        match self.tx.try_send(work) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(SlmError::Busy(self.capacity)),
            Err(TrySendError::Disconnected(_)) => {
                Err(SlmError::Unavailable("model thread has stopped".into()))
            }
        }
    }

    fn submit(
        &self,
        prompt: Prompt,
        params: GenParams,
        on_token: Option<TokenSink>,
        reply: Reply,
    ) -> Result<(), SlmError> {
        self.send(Work::Generate(GenRequest {
            prompt,
            params,
            on_token,
            reply,
        }))
    }

    /// Queues a request and waits for the answer without blocking the async runtime.
    /// Returns `Busy` at once when the queue is full.
    pub async fn generate(
        &self,
        prompt: Prompt,
        params: GenParams,
    ) -> Result<Completion, SlmError> {
        self.generate_streaming(prompt, params, None).await
    }

    /// Like [`ModelHandle::generate`], calling `on_token` on the model thread with each piece.
    pub async fn generate_streaming(
        &self,
        prompt: Prompt,
        params: GenParams,
        on_token: Option<TokenSink>,
    ) -> Result<Completion, SlmError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(
            prompt,
            params,
            on_token,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.await
            .map_err(|_| SlmError::Unavailable("model thread dropped the request".into()))?
    }

    /// Queues a request and blocks the calling (non-async) thread until the answer.
    pub fn generate_blocking(
        &self,
        prompt: Prompt,
        params: GenParams,
        on_token: Option<TokenSink>,
    ) -> Result<Completion, SlmError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(
            prompt,
            params,
            on_token,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.recv()
            .map_err(|_| SlmError::Unavailable("model thread dropped the request".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwright_core::StopReason;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    /// Echoes the user prompt after waiting `delay`.
    struct Echo {
        delay: Duration,
    }

    impl LanguageModel for Echo {
        fn name(&self) -> &str {
            "echo"
        }
        fn generate(
            &mut self,
            prompt: &Prompt,
            _: &GenParams,
            on_token: &mut dyn FnMut(&str),
        ) -> Result<Completion, SlmError> {
            std::thread::sleep(self.delay);
            let user = prompt
                .messages
                .last()
                .map(|m| m.content.clone())
                .unwrap_or_default();
            on_token(&user);
            Ok(Completion {
                text: user,
                prompt_tokens: 0,
                cached_tokens: 0,
                generated_tokens: 1,
                stop_reason: StopReason::Eos,
                ttft_ms: 0.0,
                total_ms: 0.0,
                model: "echo".into(),
            })
        }
    }

    #[test]
    fn jobs_run_on_the_model_thread_and_a_full_queue_is_busy() {
        let h = ModelHandle::spawn(
            Box::new(Echo {
                delay: Duration::from_millis(300),
            }),
            1,
        )
        .unwrap();
        assert_eq!(h.name(), "echo");
        let (tx, rx) = channel();
        let (started_tx, started) = channel();
        let caller = std::thread::current().id();
        let mut results = Vec::new();
        for i in 0..4 {
            let (tx, started_tx) = (tx.clone(), started_tx.clone());
            results.push(h.try_run(Box::new(move |m: &mut dyn LanguageModel| {
                let _ = started_tx.send(i);
                let p = Prompt::new("", format!("job {i}"));
                let text = m.generate(&p, &GenParams::default(), &mut |_| {});
                let _ = tx.send((text.map(|c| c.text).ok(), std::thread::current().id()));
            })));
            if i == 0 {
                // The thread took the first job off the queue.
                assert_eq!(started.recv_timeout(Duration::from_secs(10)), Ok(0));
            }
        }
        // One running, one waiting; the rest are refused at once.
        assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
        assert!(matches!(results[2], Err(SlmError::Busy(1))), "{results:?}");
        let (text, thread) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(text.as_deref(), Some("job 0"));
        assert_ne!(thread, caller);
        let (text, _) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(text.as_deref(), Some("job 1"));
        assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
    }

    #[test]
    fn the_loader_runs_on_the_model_thread_and_requests_wait_for_it() {
        let caller = std::thread::current().id();
        let (tx, rx) = channel();
        let h = ModelHandle::spawn_with(
            move || {
                let _ = tx.send(std::thread::current().id());
                std::thread::sleep(Duration::from_millis(200));
                Box::new(Echo {
                    delay: Duration::ZERO,
                })
            },
            2,
        )
        .unwrap();
        assert_eq!(h.name(), "loading");
        let c = h
            .generate_blocking(Prompt::new("", "hi"), GenParams::default(), None)
            .unwrap();
        assert_eq!(c.text, "hi");
        assert_eq!(h.name(), "echo");
        assert_ne!(rx.recv().unwrap(), caller);
    }

    /// Echoes each user prompt; records the size of every `generate_batch` call.
    struct Counting {
        batches: Arc<std::sync::Mutex<Vec<usize>>>,
    }

    impl LanguageModel for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn generate(
            &mut self,
            prompt: &Prompt,
            params: &GenParams,
            on_token: &mut dyn FnMut(&str),
        ) -> Result<Completion, SlmError> {
            Echo {
                delay: Duration::ZERO,
            }
            .generate(prompt, params, on_token)
        }
        fn generate_batch(
            &mut self,
            requests: &[(Prompt, GenParams)],
            on_token: &mut dyn FnMut(usize, &str),
        ) -> Vec<Result<Completion, SlmError>> {
            self.batches.lock().unwrap().push(requests.len());
            // answer in reverse order so that a mix-up of results would show
            let mut out: Vec<_> = requests
                .iter()
                .enumerate()
                .rev()
                .map(|(i, (p, g))| self.generate(p, g, &mut |s| on_token(i, s)))
                .collect();
            out.reverse();
            out
        }
    }

    #[test]
    fn waiting_requests_run_as_one_batch_and_each_gets_its_answer() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = ModelHandle::spawn(
            Box::new(Counting {
                batches: batches.clone(),
            }),
            32,
        )
        .unwrap();
        // hold the model thread so that requests pile up behind it
        let (release, wait) = channel::<()>();
        h.try_run(Box::new(move |_: &mut dyn LanguageModel| {
            let _ = wait.recv();
        }))
        .unwrap();
        let mut askers = Vec::new();
        for i in 0..6 {
            let h = h.clone();
            askers.push(std::thread::spawn(move || {
                let streamed = Arc::new(std::sync::Mutex::new(String::new()));
                let s2 = streamed.clone();
                let sink: TokenSink = Box::new(move |t: &str| s2.lock().unwrap().push_str(t));
                let c = h
                    .generate_blocking(
                        Prompt::new("", format!("question {i}")),
                        GenParams::default(),
                        Some(sink),
                    )
                    .unwrap();
                let s = streamed.lock().unwrap().clone();
                (i, c.text, s)
            }));
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        release.send(()).unwrap();
        for a in askers {
            let (i, text, streamed) = a.join().unwrap();
            assert_eq!(text, format!("question {i}"));
            assert_eq!(streamed, text);
        }
        assert_eq!(*batches.lock().unwrap(), vec![6]);
        // a lone request runs alone (no batch call)
        let c = h
            .generate_blocking(Prompt::new("", "alone"), GenParams::default(), None)
            .unwrap();
        assert_eq!(c.text, "alone");
        assert_eq!(*batches.lock().unwrap(), vec![6]);
    }

    #[test]
    fn a_job_splits_the_batch_and_runs_alone_in_its_place() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = ModelHandle::spawn(
            Box::new(Counting {
                batches: batches.clone(),
            }),
            16,
        )
        .unwrap();
        let (release, wait) = channel::<()>();
        h.try_run(Box::new(move |_: &mut dyn LanguageModel| {
            let _ = wait.recv();
        }))
        .unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let mut askers = Vec::new();
        let ask = |name: &'static str| {
            let h = h.clone();
            let order = order.clone();
            std::thread::spawn(move || {
                // the stream runs on the model thread: it records the order of the work there
                let sink: TokenSink = Box::new(move |t: &str| order.lock().unwrap().push(t.into()));
                let c = h
                    .generate_blocking(Prompt::new("", name), GenParams::default(), Some(sink))
                    .unwrap();
                assert_eq!(c.text, name);
            })
        };
        askers.push(ask("a"));
        std::thread::sleep(Duration::from_millis(50));
        askers.push(ask("b"));
        std::thread::sleep(Duration::from_millis(50));
        let (done, job_done) = channel();
        let o2 = order.clone();
        h.try_run(Box::new(move |m: &mut dyn LanguageModel| {
            o2.lock().unwrap().push(format!("job on {}", m.name()));
            let _ = done.send(());
        }))
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        askers.push(ask("c"));
        askers.push(ask("d"));
        std::thread::sleep(Duration::from_millis(200));
        release.send(()).unwrap();
        for a in askers {
            a.join().unwrap();
        }
        job_done.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(*batches.lock().unwrap(), vec![2, 2]);
        let order = order.lock().unwrap();
        let job_at = order.iter().position(|s| s == "job on counting").unwrap();
        assert_eq!(job_at, 2, "{order:?}");
    }
}
