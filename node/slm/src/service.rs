//! Serving a model to the rest of the node: a bounded request queue drained by one dedicated
//! OS thread that owns the model, so generation never blocks the async runtime.
//!
//! A full queue answers [`SlmError::Busy`] at once instead of growing memory. Answers come
//! back through a tokio oneshot (async callers) or a std channel (blocking callers); streamed
//! text goes to an optional callback run on the model thread (keep it cheap: e.g. send into
//! a channel). The thread ends when the last handle is dropped.

use millwright_core::{Completion, GenParams, LanguageModel, Prompt, SlmError};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

type Reply = Box<dyn FnOnce(Result<Completion, SlmError>) + Send>;
/// Streaming callback run on the model thread for each piece of text.
pub type TokenSink = Box<dyn FnMut(&str) + Send>;

struct Job {
    prompt: Prompt,
    params: GenParams,
    on_token: Option<TokenSink>,
    reply: Reply,
}

/// A cloneable handle to a model running on its own thread behind a bounded queue.
#[derive(Clone)]
pub struct ModelHandle {
    tx: SyncSender<Job>,
    capacity: usize,
    name: Arc<str>,
}

impl ModelHandle {
    /// Moves `model` onto a new thread that serves up to `queue` waiting requests
    /// (plus the one being generated).
    pub fn spawn(model: Box<dyn LanguageModel>, queue: usize) -> Result<Self, SlmError> {
        let name: Arc<str> = Arc::from(model.name());
        let (tx, rx) = sync_channel::<Job>(queue);
        let mut model = model;
        std::thread::Builder::new()
            .name("millwright-slm".into())
            .spawn(move || {
                while let Ok(mut job) = rx.recv() {
                    let mut sink = |s: &str| {
                        if let Some(f) = job.on_token.as_mut() {
                            f(s);
                        }
                    };
                    let res = model.generate(&job.prompt, &job.params, &mut sink);
                    (job.reply)(res);
                }
            })
            .map_err(|e| SlmError::Unavailable(format!("cannot start the model thread: {e}")))?;
        Ok(Self {
            tx,
            capacity: queue,
            name,
        })
    }

    /// Name of the served model.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn submit(
        &self,
        prompt: Prompt,
        params: GenParams,
        on_token: Option<TokenSink>,
        reply: Reply,
    ) -> Result<(), SlmError> {
        let job = Job {
            prompt,
            params,
            on_token,
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(SlmError::Busy(self.capacity)),
            Err(TrySendError::Disconnected(_)) => {
                Err(SlmError::Unavailable("model thread has stopped".into()))
            }
        }
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
