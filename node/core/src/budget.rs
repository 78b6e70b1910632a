//! Byte budgets of the node's in-memory queues (`[node] memory_budget_mb`).
//!
//! A [`ByteBudget`] is a cap in bytes on what one queue holds. A sender takes the approximate
//! size of its item ([`ByteSize`]) before the item goes in and the receiver gives it back when
//! it takes the item out. Two ways to use it:
//!
//! - [`channel`]: a bounded `mpsc` channel that is also capped in bytes. [`Sender::send`]
//!   waits while the budget is spent (back-pressure: the MQTT source stops reading, the broker
//!   keeps the messages); each time a sender has to wait is a *hit*.
//! - [`ByteBudget::try_take`]: for a lossy queue (the analytics tap): no room, no item; the
//!   caller drops and counts it, and the hit is counted here.
//!
//! An item larger than the whole cap is let through alone once the queue is empty (it is
//! counted as taking the whole cap), so one oversized batch cannot wedge a queue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Accounting unit: the semaphore counts KiB so caps up to 4 TiB fit its `u32` requests.
const UNIT: usize = 1024;

/// Approximate heap + inline size of a value in a queue, in bytes.
pub trait ByteSize {
    /// Bytes this value holds (an estimate that errs on the large side).
    fn byte_size(&self) -> usize;
}

impl ByteSize for crate::Reading {
    fn byte_size(&self) -> usize {
        // Names are `Arc<str>`: shared between readings of one message, but counted per
        // reading here (a flood of distinct names is exactly when they are not shared).
        std::mem::size_of::<Self>()
            + self.sensor.asset.len()
            + self.sensor.signal.len()
            + self.unit.0.len()
            + 48
    }
}

impl<T: ByteSize> ByteSize for Vec<T> {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.iter().map(ByteSize::byte_size).sum::<usize>()
    }
}

/// A byte cap on one queue, its use now and the times it was hit.
#[derive(Debug)]
pub struct ByteBudget {
    name: &'static str,
    cap: usize,
    units: u32,
    sem: Arc<Semaphore>,
    queued: AtomicUsize,
    peak: AtomicUsize,
    hits: AtomicU64,
}

impl ByteBudget {
    /// A budget of `cap_bytes` (at least 1 KiB) for the queue called `name` (a metric label).
    pub fn new(name: &'static str, cap_bytes: usize) -> Arc<Self> {
        let units = u32::try_from(cap_bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        Arc::new(Self {
            name,
            cap: units as usize * UNIT,
            units,
            sem: Arc::new(Semaphore::new(units as usize)),
            queued: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
        })
    }

    /// The queue's name (`bus`, `writer_inbox`, `analytics_tap`).
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// The cap in bytes.
    pub fn cap_bytes(&self) -> usize {
        self.cap
    }
    /// Bytes held now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
    /// Most bytes held at once so far.
    pub fn peak_bytes(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
    /// Times a sender found the budget spent (and waited, or dropped its item).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    fn units_of(&self, bytes: usize) -> (u32, usize) {
        let u = u32::try_from(bytes.div_ceil(UNIT).max(1))
            .unwrap_or(u32::MAX)
            .min(self.units);
        (u, bytes)
    }

    fn held(self: &Arc<Self>, permit: OwnedSemaphorePermit, bytes: usize) -> Held {
        let now = self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Held {
            budget: self.clone(),
            bytes,
            _permit: permit,
        }
    }

    /// Takes `bytes` if there is room now; `None` (a hit) when the budget is spent.
    pub fn try_take(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let (u, bytes) = self.units_of(bytes);
        match self.sem.clone().try_acquire_many_owned(u) {
            Ok(p) => Some(self.held(p, bytes)),
            Err(_) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Takes `bytes`, waiting for room (the first failed try counts as a hit); `None` only
    /// if the budget was closed.
    pub async fn take(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let (u, bytes) = self.units_of(bytes);
        let p = match self.sem.clone().try_acquire_many_owned(u) {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                self.sem.clone().acquire_many_owned(u).await.ok()?
            }
            Err(TryAcquireError::Closed) => return None,
        };
        Some(self.held(p, bytes))
    }
}

/// Bytes taken from a budget; given back when dropped.
#[derive(Debug)]
pub struct Held {
    budget: Arc<ByteBudget>,
    bytes: usize,
    _permit: OwnedSemaphorePermit,
}

impl Held {
    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.queued.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The sending end of a byte-capped channel ([`channel`]).
#[derive(Debug)]
pub struct Sender<T> {
    tx: mpsc::Sender<(T, Held)>,
    budget: Arc<ByteBudget>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            budget: self.budget.clone(),
        }
    }
}

/// The receiving end of a byte-capped channel ([`channel`]).
#[derive(Debug)]
pub struct Receiver<T> {
    rx: mpsc::Receiver<(T, Held)>,
}

/// The channel is closed; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<T>(pub T);

/// Why [`Sender::try_send`] did not send; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel (count or bytes) is full now.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// A channel of at most `capacity` items and at most `budget`'s bytes.
pub fn channel<T: ByteSize>(capacity: usize, budget: Arc<ByteBudget>) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Sender { tx, budget }, Receiver { rx })
}

impl<T: ByteSize> Sender<T> {
    /// Sends `value`, waiting for room in count and bytes.
    pub async fn send(&self, value: T) -> Result<(), Closed<T>> {
        let Some(held) = self.budget.take(value.byte_size()).await else {
            return Err(Closed(value));
        };
        self.tx
            .send((value, held))
            .await
            .map_err(|e| Closed(e.0 .0))
    }

    /// Sends `value` if there is room now.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        if self.tx.is_closed() {
            return Err(TrySendError::Closed(value));
        }
        let Some(held) = self.budget.try_take(value.byte_size()) else {
            return Err(TrySendError::Full(value));
        };
        self.tx.try_send((value, held)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(v) => TrySendError::Full(v.0),
            mpsc::error::TrySendError::Closed(v) => TrySendError::Closed(v.0),
        })
    }

    /// The channel's byte budget.
    pub fn budget(&self) -> &Arc<ByteBudget> {
        &self.budget
    }

    /// True once the receiver is gone or closed.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T> Receiver<T> {
    /// The next value (its bytes go back to the budget); `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await.map(|(v, _held)| v)
    }

    /// The next value if one is queued now.
    pub fn try_recv(&mut self) -> Result<T, mpsc::error::TryRecvError> {
        self.rx.try_recv().map(|(v, _held)| v)
    }

    /// Refuses further sends; queued values can still be received.
    pub fn close(&mut self) {
        self.rx.close();
    }

    /// Values queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[derive(Debug)]
    struct Blob(usize);
    impl ByteSize for Blob {
        fn byte_size(&self) -> usize {
            self.0
        }
    }

    #[tokio::test]
    async fn a_sender_over_the_cap_waits_until_the_receiver_takes() {
        let b = ByteBudget::new("bus", 10 * 1024);
        let (tx, mut rx) = channel::<Blob>(100, b.clone());
        for _ in 0..5 {
            tx.send(Blob(2048)).await.unwrap();
        }
        assert_eq!(b.queued_bytes(), 10 * 1024);
        assert_eq!(b.hits(), 0);
        // Full in bytes though not in count: the sixth waits.
        let t = tx.clone();
        let waiting = tokio::spawn(async move { t.send(Blob(2048)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        assert_eq!(b.hits(), 1);
        assert!(matches!(tx.try_send(Blob(1)), Err(TrySendError::Full(_))));
        assert_eq!(b.hits(), 2);
        assert_eq!(rx.recv().await.unwrap().0, 2048);
        waiting.await.unwrap().unwrap();
        assert_eq!(b.queued_bytes(), 10 * 1024);
        assert_eq!(b.peak_bytes(), 10 * 1024);
        while !rx.is_empty() {
            rx.recv().await.unwrap();
        }
        assert_eq!(b.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn an_item_larger_than_the_cap_passes_alone() {
        let b = ByteBudget::new("bus", 4096);
        let (tx, mut rx) = channel::<Blob>(10, b.clone());
        tx.send(Blob(1 << 20)).await.unwrap();
        assert!(matches!(tx.try_send(Blob(10)), Err(TrySendError::Full(_))));
        assert_eq!(rx.recv().await.unwrap().0, 1 << 20);
        tx.try_send(Blob(10)).unwrap();
    }

    #[tokio::test]
    async fn a_closed_receiver_returns_the_value() {
        let b = ByteBudget::new("bus", 4096);
        let (tx, rx) = channel::<Blob>(10, b.clone());
        drop(rx);
        assert_eq!(tx.send(Blob(7)).await.unwrap_err().0 .0, 7);
        assert!(matches!(tx.try_send(Blob(7)), Err(TrySendError::Closed(_))));
        assert_eq!(b.queued_bytes(), 0);
    }

    #[test]
    fn try_take_counts_hits_and_gives_back_on_drop() {
        let b = ByteBudget::new("analytics_tap", 3000);
        assert_eq!(b.cap_bytes(), 3072);
        let a = b.try_take(2000).unwrap();
        assert!(b.try_take(2000).is_none());
        assert_eq!(b.hits(), 1);
        drop(a);
        assert_eq!(b.queued_bytes(), 0);
        assert!(b.try_take(2000).is_some());
    }

    #[test]
    fn a_reading_counts_its_names() {
        let r = crate::Reading::new(
            crate::SensorId::new("P-1", "x".repeat(100)),
            0,
            1.0,
            crate::Unit::new("C"),
        );
        let n = r.byte_size();
        assert!(n > 100 + std::mem::size_of::<crate::Reading>(), "{n}");
        assert!(vec![r.clone(), r].byte_size() > 2 * n);
    }
}
