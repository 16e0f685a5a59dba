//! The cross-worker hand-off of published batches: ringcast's `Inbox` (crossbeam's
//! `SegQueue` plus the wake flag, used as the sequencer and the worker use it) against
//! `std::sync::mpsc` and a `Mutex<VecDeque>`, each carrying the same `Arc<Batch>`; and
//! the bare `SegQueue`, to separate the queue's cost from the wake protocol's.
//!
//! - `single_thread`: one push and one pop on the same thread, the queue's own cost.
//! - `two_threads`: a producer pushes, a consumer thread spins draining; the time from
//!   the first push until the consumer has drained everything, per hand-off.
//!
//! The ringcast side also pays for its wake protocol (`notify` after the push; the
//! worker's `register` + `take_notified` before popping); the baselines carry no wake
//! (their consumers only spin). Every timed closure asserts what it drained.
//!
//! Run: `cargo bench --bench inbox`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use crossbeam_queue::SegQueue;
use ringcast::broadcast::inbox::{Batch, Event, Inbox};
use smallvec::smallvec;

/// One published event, as the sequencer hands it to every worker.
fn batch() -> Arc<Batch> {
    Arc::new(Batch {
        events: vec![Event {
            id: 1,
            topics: smallvec![Arc::from("news")],
            frame: Bytes::from_static(b"id: 1\ndata: hello\n\n"),
        }],
        published_at: Instant::now(),
        heavy: false,
        notice: None,
    })
}

/// The three queues behind one interface: `push` is the publisher's side, `drain` the
/// worker's (everything queued, oldest first; returns how many).
trait Handoff: Sync {
    fn push(&self, batch: Arc<Batch>);
    fn drain(&self, each: impl FnMut(Arc<Batch>)) -> u64;
}

struct Ringcast(Inbox);

impl Handoff for Ringcast {
    fn push(&self, batch: Arc<Batch>) {
        self.0.push(batch);
        self.0.notify();
    }

    fn drain(&self, mut each: impl FnMut(Arc<Batch>)) -> u64 {
        // A worker is only polled once woken: a consumer spinning here must not bounce
        // the flag's and the waker's cache lines while there is nothing to take.
        if self.0.is_empty() {
            return 0;
        }
        // What a worker does when polled: register, clear the flag, then pop until empty.
        self.0.register(Waker::noop());
        self.0.take_notified();
        let mut n = 0;
        while let Some(batch) = self.0.pop() {
            each(batch);
            n += 1;
        }
        n
    }
}

/// The same crossbeam queue without the wake protocol: what the flag and waker cost.
struct Bare(SegQueue<Arc<Batch>>);

impl Handoff for Bare {
    fn push(&self, batch: Arc<Batch>) {
        self.0.push(batch);
    }

    fn drain(&self, mut each: impl FnMut(Arc<Batch>)) -> u64 {
        let mut n = 0;
        while let Some(batch) = self.0.pop() {
            each(batch);
            n += 1;
        }
        n
    }
}

struct Mpsc {
    tx: mpsc::Sender<Arc<Batch>>,
    /// Only the consumer uses it; `Receiver` is not `Sync`, so sharing it with the
    /// consumer thread takes a (never contended) mutex.
    rx: Mutex<mpsc::Receiver<Arc<Batch>>>,
}

impl Handoff for Mpsc {
    fn push(&self, batch: Arc<Batch>) {
        self.tx.send(batch).expect("receiver alive");
    }

    fn drain(&self, mut each: impl FnMut(Arc<Batch>)) -> u64 {
        let rx = self.rx.lock().expect("poisoned");
        let mut n = 0;
        while let Ok(batch) = rx.try_recv() {
            each(batch);
            n += 1;
        }
        n
    }
}

struct Locked(Mutex<VecDeque<Arc<Batch>>>);

impl Handoff for Locked {
    fn push(&self, batch: Arc<Batch>) {
        self.0.lock().expect("poisoned").push_back(batch);
    }

    fn drain(&self, mut each: impl FnMut(Arc<Batch>)) -> u64 {
        // One pop per lock, so a producer is never held off for a whole drain.
        let mut n = 0;
        while let Some(batch) = self.0.lock().expect("poisoned").pop_front() {
            each(batch);
            n += 1;
        }
        n
    }
}

fn ringcast_inbox() -> Ringcast {
    Ringcast(Inbox::default())
}

fn segqueue_bare() -> Bare {
    Bare(SegQueue::new())
}

fn std_mpsc() -> Mpsc {
    let (tx, rx) = mpsc::channel();
    Mpsc {
        tx,
        rx: Mutex::new(rx),
    }
}

fn mutex_vecdeque() -> Locked {
    Locked(Mutex::new(VecDeque::new()))
}

/// One push, then one drain that finds exactly that batch.
fn bench_single<H: Handoff>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, q: H) {
    let sent = batch();
    group.bench_function(name, |b| {
        b.iter(|| {
            q.push(black_box(sent.clone()));
            let mut got = None;
            assert_eq!(q.drain(|b| got = Some(b)), 1);
            assert!(Arc::ptr_eq(got.as_ref().expect("drained"), &sent));
            got
        })
    });
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("inbox/single_thread");
    group.throughput(Throughput::Elements(1));
    bench_single(&mut group, "ringcast_inbox", ringcast_inbox());
    bench_single(&mut group, "segqueue_bare", segqueue_bare());
    bench_single(&mut group, "std_mpsc", std_mpsc());
    bench_single(&mut group, "mutex_vecdeque", mutex_vecdeque());
    group.finish();
}

/// Pushes `iters` batches from this thread while a consumer thread drains them; returns
/// the time from the start signal until the consumer has seen the last one.
fn handoff<H: Handoff>(q: &H, sent: &Arc<Batch>, iters: u64) -> Duration {
    let ready = Barrier::new(2);
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            ready.wait();
            let mut received = 0u64;
            let mut misses = 0u32;
            while received < iters {
                let n = q.drain(|got| assert!(Arc::ptr_eq(&got, sent)));
                received += n;
                if n > 0 {
                    misses = 0;
                    continue;
                }
                misses += 1;
                // Two shared cores: hand the CPU back now and then, should the producer
                // have lost it.
                if misses.is_multiple_of(256) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            received
        });
        ready.wait();
        let start = Instant::now();
        for _ in 0..iters {
            q.push(sent.clone());
        }
        let received = consumer.join().expect("consumer panicked");
        assert_eq!(received, iters, "every batch arrived, once");
        start.elapsed()
    })
}

fn bench_two<H: Handoff>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, q: H) {
    let sent = batch();
    group.bench_function(name, |b| b.iter_custom(|iters| handoff(&q, &sent, iters)));
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("inbox/two_threads");
    group.throughput(Throughput::Elements(1));
    bench_two(&mut group, "ringcast_inbox", ringcast_inbox());
    bench_two(&mut group, "segqueue_bare", segqueue_bare());
    bench_two(&mut group, "std_mpsc", std_mpsc());
    bench_two(&mut group, "mutex_vecdeque", mutex_vecdeque());
    group.finish();
}

criterion_group!(inbox_benches, single_thread, two_threads);
criterion_main!(inbox_benches);
