//! The per-worker timing wheel against a lazy-deletion binary heap doing the same work:
//! insert + cancel, one tick that fires 1% of 100k live timers, and the heartbeat
//! reschedule. Every routine asserts its result inside the timed part.
//!
//! Run: `cargo bench --bench wheel`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringcast::timer::Wheel;

/// Live timers in every bench: a worker's share of a large host.
const LIVE: u32 = 100_000;
/// Keys due in the measured tick: 1% of `LIVE`.
const DUE: u32 = 1_000;
/// The heartbeat interval in ticks (15 s of 10 ms ticks), the span live deadlines cover.
const HEARTBEAT: u64 = 1_500;
/// Operations timed between two resets of the state to its template (the reset is not
/// timed). Bounds the garbage the lazy heap piles up to one heartbeat round's worth.
const CHUNK: u64 = 10_000;

/// A spread-out deadline in `1..=HEARTBEAT` for the `i`-th key (7919 is prime, so the
/// keys land on every tick of the interval).
fn spread(i: u32) -> u64 {
    1 + (u64::from(i) * 7919) % HEARTBEAT
}

/// The baseline: a min-heap of (deadline, key) with lazy deletion. Cancelling or
/// rescheduling only updates `live`; stale heap entries are skipped when popped.
#[derive(Clone)]
struct LazyHeap {
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// Current deadline per key, `u64::MAX` when not scheduled.
    live: Vec<u64>,
}

impl LazyHeap {
    fn with_capacity(keys: usize) -> Self {
        LazyHeap {
            heap: BinaryHeap::with_capacity(keys),
            live: vec![u64::MAX; keys],
        }
    }

    fn insert(&mut self, key: u32, deadline: u64) {
        self.live[key as usize] = deadline;
        self.heap.push(Reverse((deadline, key)));
    }

    fn cancel(&mut self, key: u32) -> bool {
        std::mem::replace(&mut self.live[key as usize], u64::MAX) != u64::MAX
    }

    fn poll(&mut self, now: u64) -> Option<u32> {
        while let Some(&Reverse((deadline, key))) = self.heap.peek() {
            if deadline > now {
                return None;
            }
            self.heap.pop();
            if self.live[key as usize] == deadline {
                self.live[key as usize] = u64::MAX;
                return Some(key);
            }
        }
        None
    }
}

/// `LIVE` keys at spread deadlines, in a wheel at tick 0 and in a heap.
fn populated() -> (Wheel, LazyHeap) {
    let mut wheel = Wheel::with_capacity(LIVE as usize + 1);
    let mut heap = LazyHeap::with_capacity(LIVE as usize + 1);
    for key in 0..LIVE {
        wheel.insert(key, spread(key));
        heap.insert(key, spread(key));
    }
    (wheel, heap)
}

/// Times `iters` calls of `op` on a state reset from `template` every `CHUNK` calls,
/// outside the timed part.
fn chunked<S: Clone>(iters: u64, template: &S, mut op: impl FnMut(&mut S, u64)) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        let mut state = template.clone();
        let start = Instant::now();
        for i in done..done + n {
            op(&mut state, i);
        }
        total += start.elapsed();
        drop(state);
        done += n;
    }
    total
}

/// Bench 1: insert and cancel one key while `LIVE` others are scheduled.
fn insert_cancel(c: &mut Criterion) {
    let (wheel, heap) = populated();
    let mut group = c.benchmark_group("insert_cancel_100k_live");
    group.throughput(Throughput::Elements(1));
    group.bench_function("wheel", |b| {
        b.iter_custom(|iters| {
            chunked(iters, &wheel, |w, i| {
                w.insert(LIVE, black_box(spread(i as u32)));
                assert!(w.cancel(LIVE), "cancel of the key just inserted");
            })
        })
    });
    group.bench_function("lazy_heap", |b| {
        b.iter_custom(|iters| {
            chunked(iters, &heap, |h, i| {
                h.insert(LIVE, black_box(spread(i as u32)));
                assert!(h.cancel(LIVE), "cancel of the key just inserted");
            })
        })
    });
    group.finish();
}

/// A wheel and heap at tick `due - 1` with `DUE` keys due at `due` and the other keys
/// spread over the heartbeat interval after it.
fn before_tick(due: u64) -> (Wheel, LazyHeap) {
    let mut wheel = Wheel::with_capacity(LIVE as usize);
    let mut heap = LazyHeap::with_capacity(LIVE as usize);
    for key in 0..LIVE {
        let deadline = if key < DUE { due } else { due + spread(key) };
        wheel.insert(key, deadline);
        heap.insert(key, deadline);
    }
    assert_eq!(wheel.poll(due - 1), None, "nothing is due before the tick");
    assert_eq!(heap.poll(due - 1), None, "nothing is due before the tick");
    (wheel, heap)
}

/// Pops every due key; the count is checked by the caller inside the timed part.
fn drain(now: u64, mut poll: impl FnMut(u64) -> Option<u32>) -> u32 {
    let mut fired = 0;
    while let Some(key) = poll(now) {
        black_box(key);
        fired += 1;
    }
    fired
}

/// Bench 2: one tick of `LIVE` timers of which `DUE` fire. `mid_block`: the due keys already
/// sit in a level-0 slot (most ticks). `block_start`: the tick starts a 64-tick block, so
/// a level-1 slot (the due keys and the next 63 ticks' keys) cascades in it (1 tick in 64).
fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick_100k_live_1k_due");
    group.throughput(Throughput::Elements(u64::from(DUE)));
    for (name, due) in [
        ("wheel_mid_block", 64 * 40 + 13),
        ("wheel_block_start", 64 * 40),
    ] {
        let (wheel, _) = before_tick(due);
        group.bench_function(name, |b| {
            b.iter_batched(
                || wheel.clone(),
                |mut w| {
                    assert_eq!(drain(due, |now| w.poll(now)), DUE, "keys fired in the tick");
                    w
                },
                BatchSize::PerIteration,
            )
        });
    }
    let due = 64 * 40 + 13;
    let (_, heap) = before_tick(due);
    group.bench_function("lazy_heap", |b| {
        b.iter_batched(
            || heap.clone(),
            |mut h| {
                assert_eq!(drain(due, |now| h.poll(now)), DUE, "keys fired in the tick");
                h
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Bench 3: the heartbeat pattern: a scheduled key moved one interval later.
fn reschedule(c: &mut Criterion) {
    let (wheel, heap) = populated();
    let mut group = c.benchmark_group("reschedule_100k_live");
    group.throughput(Throughput::Elements(1));
    group.bench_function("wheel", |b| {
        b.iter_custom(|iters| {
            chunked(iters, &wheel, |w, i| {
                let key = (i % CHUNK) as u32 * (LIVE / CHUNK as u32);
                let later = spread(key) + HEARTBEAT;
                w.insert(key, black_box(later));
                assert_eq!(
                    w.len(),
                    LIVE as usize,
                    "a reschedule keeps one entry per key"
                );
            })
        })
    });
    group.bench_function("lazy_heap", |b| {
        b.iter_custom(|iters| {
            chunked(iters, &heap, |h, i| {
                let key = (i % CHUNK) as u32 * (LIVE / CHUNK as u32);
                let later = spread(key) + HEARTBEAT;
                h.insert(key, black_box(later));
                assert_eq!(h.live[key as usize], later, "the key's live deadline moved");
            })
        })
    });
    group.finish();
}

criterion_group!(benches, insert_cancel, tick, reschedule);
criterion_main!(benches);
