//! The hand-off of published events to each worker.
//!
//! Every worker owns one [`Inbox`]: a lock-free queue of [`Batch`]es that publishers on any
//! thread push to, plus a flag that makes a burst of publishes cost at most one cross-thread
//! wake per worker until the worker drains again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use crossbeam_queue::SegQueue;
use smallvec::SmallVec;

/// One published event as every worker sees it.
#[derive(Debug)]
pub struct Event {
    pub id: u64,
    /// The topics it was published to, interned by the sequencer (no string copies).
    pub topics: SmallVec<[Arc<str>; 1]>,
    /// The encoded frame, shared by every subscriber and the history.
    pub frame: Bytes,
}

/// The events of one publish request, in id order.
#[derive(Debug)]
pub struct Batch {
    pub events: Vec<Event>,
    /// When the sequencer took the ids, for the publish-to-write latency metric.
    pub published_at: Instant,
    /// A frame without an id for the local subscribers of one topic, or of all topics
    /// (None): the cluster's notice that events may have been lost while Redis was
    /// unreachable; this process's own stats in cluster mode.
    pub notice: Option<(Option<Arc<str>>, Bytes)>,
}

#[derive(Default)]
pub struct Inbox {
    queue: SegQueue<Arc<Batch>>,
    /// True from the first push after a drain until the worker drains again: later pushes
    /// skip the wake.
    notified: AtomicBool,
    waker: AtomicWaker,
}

impl Inbox {
    /// Publisher side, inside the sequencer's critical section (that is what orders batches
    /// identically in every inbox).
    pub fn push(&self, batch: Arc<Batch>) {
        self.queue.push(batch);
    }

    /// Publisher side, after the critical section: wake the worker unless a wake is already
    /// pending. Returns whether this call woke it.
    pub fn notify(&self) -> bool {
        if self.notified.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.waker.wake();
        true
    }

    /// Worker side: the task to wake on the next push.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Worker side: whether a wake was requested since the last call. Clear the flag
    /// before draining, so a push racing with the drain wakes the worker again.
    pub fn take_notified(&self) -> bool {
        self.notified.swap(false, Ordering::AcqRel)
    }

    pub fn pop(&self) -> Option<Arc<Batch>> {
        self.queue.pop()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn batch(id: u64) -> Arc<Batch> {
        Arc::new(Batch {
            events: vec![Event {
                id,
                topics: SmallVec::new(),
                frame: Bytes::new(),
            }],
            published_at: Instant::now(),
            notice: None,
        })
    }

    #[test]
    fn a_burst_costs_one_wake_until_drained() {
        let inbox = Inbox::default();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        inbox.register(&Waker::from(counter.clone()));
        for id in 1..=100 {
            inbox.push(batch(id));
            inbox.notify();
        }
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(inbox.take_notified());
        let drained: Vec<u64> = std::iter::from_fn(|| inbox.pop())
            .map(|b| b.events[0].id)
            .collect();
        assert_eq!(drained, (1..=100).collect::<Vec<_>>());
        inbox.register(&Waker::from(counter.clone()));
        inbox.push(batch(101));
        assert!(inbox.notify(), "the first push after a drain wakes again");
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    }
}
