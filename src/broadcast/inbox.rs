//! The hand-off of published events to each worker.
//!
//! Every worker owns one [`Inbox`]: a lock-free queue of [`Batch`]es that publishers on any
//! thread push to, plus a flag that makes a burst of publishes cost at most one cross-thread
//! wake per worker until the worker takes the flag again. A busy worker leaves the flag
//! set and drains the queue anyway, so publishers do not wake it (see `worker::events`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

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
    /// Published to a heavy topic (see `broadcast::hub::HEAVY`): each of its events may
    /// fan out to many subscribers, so the publish gate counts such batches apart.
    pub heavy: bool,
    /// A frame without an id for the local subscribers of one topic, or of all topics
    /// (None): the cluster's notice that events may have been lost while Redis was
    /// unreachable; this process's own stats in cluster mode.
    pub notice: Option<(Option<Arc<str>>, Bytes)>,
}

#[derive(Default)]
pub struct Inbox {
    queue: SegQueue<Arc<Batch>>,
    /// True from the first push after the worker took the flag until it takes it again:
    /// later pushes skip the wake.
    notified: AtomicBool,
    /// When the first push since the worker's last drain came ([`now_us`]), 0 once it
    /// drains: how long the oldest batch in the queue has waited for the worker.
    waiting_since: AtomicU64,
    /// When the oldest batch the worker has left for a later turn (its fan-out budget ran
    /// out) was published ([`now_us`]), 0 when it left none: with `waiting_since`, how
    /// long the oldest event not yet fanned out has waited.
    backlog_since: AtomicU64,
    /// Events in the queued batches.
    events: AtomicUsize,
    /// Queued batches published to heavy topics, until the worker is done with them.
    heavy: AtomicUsize,
    /// Batches to no heavy topic in the queue (not yet taken).
    narrow: AtomicUsize,
    waker: AtomicWaker,
}

/// Microseconds on a process-wide monotonic clock, never 0. Its epoch lies an hour
/// before its first use (where the platform allows), so that the publish time of any
/// batch in an inbox has a stamp.
fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
    });
    epoch.elapsed().as_micros() as u64 + 1
}

impl Inbox {
    /// Publisher side, inside the sequencer's critical section (that is what orders batches
    /// identically in every inbox).
    pub fn push(&self, batch: Arc<Batch>) {
        self.events.fetch_add(batch.events.len(), Ordering::Relaxed);
        match batch.heavy {
            true => self.heavy.fetch_add(1, Ordering::Relaxed),
            false => self.narrow.fetch_add(1, Ordering::Relaxed),
        };
        self.queue.push(batch);
    }

    /// Publisher side, after the critical section: wake the worker unless a wake is already
    /// pending. Returns whether this call woke it.
    pub fn notify(&self) -> bool {
        // Only the first push the worker has not taken yet stamps the wait. Stamp, then
        // flag: whoever flags after a take wakes the worker, whose next take clears both.
        // The load first: the pushes after the first skip the clock read.
        if self.waiting_since.load(Ordering::Acquire) == 0 {
            let _ = self.waiting_since.compare_exchange(
                0,
                now_us(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        if self.notified.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.waker.wake();
        true
    }

    /// How long the oldest event not yet fanned out has waited: pushed since the
    /// worker's last drain began, or left over by it (zero when it is not behind). Read
    /// by publishers on any thread.
    pub fn waiting(&self) -> Duration {
        let pushed = self.waiting_since.load(Ordering::Acquire);
        let left = self.backlog_since.load(Ordering::Acquire);
        // The older of the two set stamps (0 is unset); no clock read when neither is.
        let since = match (pushed, left) {
            (0, 0) => return Duration::ZERO,
            (0, one) | (one, 0) => one,
            (a, b) => a.min(b),
        };
        Duration::from_micros(now_us().saturating_sub(since))
    }

    /// Worker side, as a drain ends: when the oldest batch it leaves for a later turn
    /// was published, or `None` when it left nothing.
    pub fn set_backlog(&self, oldest: Option<Instant>) {
        let stamp = oldest.map_or(0, |at| {
            let age = at.elapsed().as_micros() as u64;
            now_us().saturating_sub(age).max(1)
        });
        self.backlog_since.store(stamp, Ordering::Release);
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

    /// Worker side, as a drain begins: the batches waiting are being taken.
    pub fn begin_drain(&self) {
        self.waiting_since.store(0, Ordering::Release);
    }

    /// Worker side: the oldest batch, no longer counted in the backlog.
    pub fn pop(&self) -> Option<Arc<Batch>> {
        let batch = self.take()?;
        self.finished(&batch);
        Some(batch)
    }

    /// Worker side: the oldest batch, still counted in the backlog (the worker holds it
    /// until it calls [`Inbox::finished`]).
    pub fn take(&self) -> Option<Arc<Batch>> {
        let batch = self.queue.pop()?;
        if !batch.heavy {
            self.narrow.fetch_sub(1, Ordering::Relaxed);
        }
        Some(batch)
    }

    /// Worker side: `batch`, taken, no longer counts in the backlog.
    pub fn finished(&self, batch: &Batch) {
        self.events.fetch_sub(batch.events.len(), Ordering::Relaxed);
        if batch.heavy {
            self.heavy.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Events waiting for the worker. Read by publishers on any thread.
    pub fn events(&self) -> usize {
        self.events.load(Ordering::Relaxed)
    }

    /// Batches to heavy topics waiting for the worker. Read by publishers on any thread.
    pub fn heavy(&self) -> usize {
        self.heavy.load(Ordering::Relaxed)
    }

    /// Batches to no heavy topic in the queue, not yet taken by the worker.
    pub fn narrow(&self) -> usize {
        self.narrow.load(Ordering::Relaxed)
    }

    /// Batches queued.
    pub fn len(&self) -> usize {
        self.queue.len()
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
            heavy: id.is_multiple_of(2),
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

    #[test]
    fn the_wait_runs_from_the_first_untaken_push_and_events_are_counted() {
        let inbox = Inbox::default();
        assert_eq!((inbox.waiting(), inbox.events()), (Duration::ZERO, 0));
        inbox.push(batch(1));
        inbox.notify();
        std::thread::sleep(Duration::from_millis(20));
        inbox.push(batch(2));
        inbox.notify();
        assert!(
            inbox.waiting() >= Duration::from_millis(20),
            "stamped by the first push"
        );
        assert_eq!((inbox.events(), inbox.heavy()), (2, 1));
        assert!(inbox.take_notified());
        assert!(inbox.waiting() > Duration::ZERO, "noticed, not yet drained");
        inbox.begin_drain();
        assert_eq!(
            inbox.waiting(),
            Duration::ZERO,
            "taken: the worker is on it"
        );
        inbox.pop();
        assert_eq!((inbox.events(), inbox.heavy()), (1, 1));
        inbox.pop();
        assert_eq!((inbox.events(), inbox.heavy()), (0, 0));
        // The first push after the drain began stamps again.
        inbox.push(batch(3));
        inbox.notify();
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            inbox.waiting() >= Duration::from_millis(5),
            "stamped again after the drain"
        );
    }

    #[test]
    fn a_backlog_left_for_later_turns_counts_from_its_publish() {
        let inbox = Inbox::default();
        let published = Instant::now() - Duration::from_millis(300);
        inbox.set_backlog(Some(published));
        let waiting = inbox.waiting();
        assert!(
            waiting >= Duration::from_millis(300) && waiting < Duration::from_secs(5),
            "{waiting:?}"
        );
        inbox.set_backlog(None);
        assert_eq!(inbox.waiting(), Duration::ZERO, "caught up");
    }
}
