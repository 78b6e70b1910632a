//! Acknowledgements after storage, written in bunches (MQTT 3.1.1).
//!
//! rumqttc sends each manual ack as one request through its channel: one event-loop turn,
//! one socket write and one flush per message, which for a stream of one-reading messages
//! costs about as much as the rest of the message's path. Here the client loop writes the
//! PUBACKs of every message whose readings are stored straight into the connection's write
//! buffer, in arrival order, between two polls, and flushes them with one write.
//!
//! While the loop waits in `poll` (nothing to read), a small task wakes it when the storage
//! watermark moves: it hands the oldest ready ack to the client's request channel (the event
//! loop writes it and returns an event), and the loop writes the rest. Order is kept because
//! the loop writes directly only while no ack of this queue is in the channel
//! (`in_channel` empty), and both take from the front of one queue under one lock. The ack in
//! the channel is known by its packet id, so the event of any other ack cannot release it. When
//! the connection breaks, the loop drops what the waker may have handed over after rumqttc's
//! own clean-up, so no ack of one connection reaches the next.
//! MQTT 3.1.1 (4.6) asks for PUBACKs in the order the PUBLISH packets came.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Messages waiting for their acknowledgement, shared by the client loop and the waker.
#[derive(Debug, Default)]
pub(crate) struct AckQueue {
    /// (sequence the storage watermark must reach, 0: at once; packet id; QoS 2), in arrival
    /// order.
    waiting: VecDeque<(u64, u16, bool)>,
    /// The packet id of the ack handed to the client's request channel, not yet seen written.
    in_channel: Option<u16>,
    /// The client loop waits in `poll`.
    parked: bool,
}

/// Shared handle to the queue.
pub(crate) type Shared = Arc<Mutex<AckQueue>>;

/// Locks the queue; a poisoned lock (a panic elsewhere while holding it) still holds a
/// consistent queue: every change is one push, pop or counter step.
fn lock(q: &Shared) -> std::sync::MutexGuard<'_, AckQueue> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}

/// One acknowledgement to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) pkid: u16,
    /// QoS 2 (PUBREC) instead of QoS 1 (PUBACK).
    pub(crate) exactly_once: bool,
}

impl AckQueue {
    /// Queues the ack of a message that waits for storage sequence `seq` (0: none).
    pub(crate) fn push(q: &Shared, seq: u64, pkid: u16, exactly_once: bool) {
        lock(q).waiting.push_back((seq, pkid, exactly_once));
    }

    /// Takes the acks the loop may write now (in order): none while one of them is in the
    /// request channel. With `park`, and nothing to write, marks the loop as waiting in
    /// `poll` (the waker may then use the channel). The watermark is read under the lock, so a
    /// move between this check and the park still wakes the loop.
    pub(crate) fn take_ready(
        q: &Shared,
        watermark: impl Fn() -> u64,
        park: bool,
        out: &mut Vec<Due>,
    ) {
        let mut g = lock(q);
        if g.in_channel.is_none() {
            let watermark = watermark();
            while let Some(&(seq, pkid, exactly_once)) = g.waiting.front() {
                if seq > watermark {
                    break;
                }
                g.waiting.pop_front();
                out.push(Due { pkid, exactly_once });
            }
        }
        g.parked = park && out.is_empty();
    }

    /// The loop left `poll`.
    pub(crate) fn unpark(q: &Shared) {
        lock(q).parked = false;
    }

    /// The event loop wrote the ack of `pkid` that came through the channel.
    pub(crate) fn written_from_channel(q: &Shared, pkid: u16) {
        let mut g = lock(q);
        if g.in_channel == Some(pkid) {
            g.in_channel = None;
        }
    }

    /// The connection is gone: the broker redelivers every unacknowledged message of a
    /// persistent session (and rumqttc dropped the acks still in its channel).
    pub(crate) fn reset(q: &Shared) {
        let mut g = lock(q);
        g.waiting.clear();
        g.in_channel = None;
        g.parked = false;
    }

    /// For the waker: the oldest ack, when the loop is parked, nothing of the queue is in the
    /// channel and the ack's readings are stored. `send` hands it to the channel (false: the
    /// channel is full; the loop is busy then and writes it itself).
    pub(crate) fn wake_with(q: &Shared, watermark: u64, send: impl FnOnce(Due) -> bool) {
        let mut g = lock(q);
        if !g.parked || g.in_channel.is_some() {
            return;
        }
        let Some(&(seq, pkid, exactly_once)) = g.waiting.front() else {
            return;
        };
        if seq > watermark {
            return;
        }
        if send(Due { pkid, exactly_once }) {
            g.waiting.pop_front();
            g.in_channel = Some(pkid);
        }
    }
}

/// Starts the waker: on every move of the storage watermark it hands the oldest ready ack to
/// the request channel while the loop is parked (see the module docs).
pub(crate) fn spawn_waker(
    q: Shared,
    mut wm: watch::Receiver<u64>,
    send: impl Fn(Due) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while wm.changed().await.is_ok() {
            let w = *wm.borrow_and_update();
            AckQueue::wake_with(&q, w, &send);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Shared {
        Arc::new(Mutex::new(AckQueue::default()))
    }

    /// The packet ids `take_ready` gives at watermark `wm`.
    fn take(q: &Shared, wm: u64, park: bool) -> Vec<u16> {
        let mut out = Vec::new();
        AckQueue::take_ready(q, || wm, park, &mut out);
        out.iter().map(|d| d.pkid).collect()
    }

    /// The packet ids the waker hands to a channel with room, at watermark `wm`.
    fn wake(q: &Shared, wm: u64, sent: &mut Vec<u16>) {
        AckQueue::wake_with(q, wm, |d| {
            sent.push(d.pkid);
            true
        });
    }

    #[test]
    fn acks_are_taken_in_order_up_to_the_watermark() {
        let q = q();
        AckQueue::push(&q, 0, 1, false);
        AckQueue::push(&q, 1, 2, false);
        AckQueue::push(&q, 1, 3, false);
        AckQueue::push(&q, 2, 4, false);
        // A message with no readings (seq 0) after one that waits still waits its turn.
        AckQueue::push(&q, 0, 5, false);
        assert_eq!(take(&q, 0, false), [1]);
        assert_eq!(take(&q, 1, false), [2, 3]);
        assert_eq!(take(&q, 2, false), [4, 5]);
    }

    #[test]
    fn the_waker_uses_the_channel_only_for_a_parked_loop_and_one_ack_at_a_time() {
        let q = q();
        AckQueue::push(&q, 1, 1, false);
        AckQueue::push(&q, 1, 2, false);
        AckQueue::push(&q, 2, 3, false);
        let mut sent = Vec::new();
        // Not parked: the loop writes them itself.
        wake(&q, 1, &mut sent);
        assert!(sent.is_empty());
        // Parked before the watermark moved (nothing ready), then it moves.
        assert!(take(&q, 0, true).is_empty());
        wake(&q, 1, &mut sent);
        wake(&q, 2, &mut sent);
        assert_eq!(sent, [1], "one ack in the channel at a time");
        // Until the event loop wrote it, the loop must not write behind its back.
        AckQueue::unpark(&q);
        assert!(take(&q, 2, true).is_empty());
        // An event of another ack (one a broken connection left in the channel) does not count.
        AckQueue::written_from_channel(&q, 9);
        assert!(take(&q, 2, true).is_empty());
        AckQueue::written_from_channel(&q, 1);
        assert_eq!(take(&q, 2, true), [2, 3]);
    }

    #[test]
    fn a_full_channel_leaves_the_ack_queued() {
        let q = q();
        AckQueue::push(&q, 1, 7, false);
        take(&q, 0, true);
        AckQueue::wake_with(&q, 1, |_| false);
        assert_eq!(take(&q, 1, false), [7]);
    }

    #[test]
    fn a_lost_connection_forgets_the_queue_and_the_channel() {
        let q = q();
        AckQueue::push(&q, 1, 1, false);
        AckQueue::push(&q, 1, 2, false);
        take(&q, 0, true);
        AckQueue::wake_with(&q, 1, |_| true);
        AckQueue::reset(&q);
        AckQueue::push(&q, 1, 9, false);
        assert_eq!(take(&q, 1, false), [9]);
    }
}
