//! Handing one published frame to every local subscriber's queue: ringcast's `fan_out`
//! over a `Hub` and a `Slab<Conn>` of streaming subscribers, against the least work
//! possible (a `Bytes` clone pushed onto one `Vec` per subscriber), for 1, 1,000 and
//! 100,000 subscribers on one topic.
//!
//! Every iteration starts from empty queues built outside the timed part
//! (`iter_batched`); each timed closure asserts that every subscriber got the frame.
//! Throughput is one element per subscriber, so criterion's time divided by the count
//! is the cost per subscriber (BENCHMARKS.md lists it in ns).
//!
//! Run: `cargo bench --bench fanout`.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringcast::broadcast::frame::Draft;
use ringcast::broadcast::hub::{Hub, Link};
use ringcast::broadcast::inbox::Event;
use ringcast::conn::{flags, Conn, Phase};
use ringcast::stream::delivery::{fan_out, Bound, Found};
use ringcast::stream::DirtyList;
use slab::Slab;
use smallvec::smallvec;

const TOPIC: &str = "news";
/// The server's default `--max-queued-frames`; never reached here (queues start empty).
const MAX_QUEUED: usize = 1024;

/// The per-subscriber bound of the fan-out: frames as above, bytes as the default, and
/// no subscriber ever stuck (tick 0).
const BOUND: Bound = Bound {
    frames: MAX_QUEUED,
    bytes: 16 << 20,
    now: 0,
    stuck_after: u32::MAX,
    held_after: u32::MAX,
};
/// Inputs built per timed batch are capped at about this many subscribers in total, so
/// a batch of small inputs amortises the clock reads without holding gigabytes.
const SUBSCRIBERS_PER_BATCH: usize = 100_000;

/// A worker's state for one fan-out: its subscribers and the lists `fan_out` fills.
struct Worker {
    conns: Slab<Conn>,
    dirty: DirtyList,
    found: Found,
}

/// `n` streaming subscribers with empty queues. Slab keys are `0..n`, the keys `hub`
/// lists, so one hub serves every fresh worker.
fn fresh_worker(n: usize) -> Worker {
    let mut conns = Slab::with_capacity(n);
    for key in 0..n {
        let mut conn = Conn::new(-1, 0);
        conn.enter(Phase::Stream);
        conn.links.push(Link {
            topic: 0,
            pos: key as u32,
        });
        assert_eq!(conns.insert(conn), key);
    }
    Worker {
        conns,
        // A worker's lists keep their capacity from turn to turn.
        dirty: DirtyList::with_capacity(n),
        found: Found::default(),
    }
}

fn hub_of(n: usize) -> Hub {
    let mut hub = Hub::default();
    for key in 0..n {
        hub.subscribe(TOPIC, key as u32, 0);
    }
    assert_eq!(hub.subscribers(TOPIC).len(), n);
    hub
}

fn event() -> Event {
    let payload = [b'x'; 64];
    Event {
        id: 1,
        topics: smallvec![Arc::from(TOPIC)],
        frame: Draft::new(None, &payload).finish(1),
    }
}

fn bench_subscribers(c: &mut Criterion, n: usize) {
    let hub = hub_of(n);
    let event = event();
    let batch = BatchSize::NumIterations((SUBSCRIBERS_PER_BATCH / n).max(1) as u64);

    // Outside the timed part: one fan-out reaches everyone and marks each dirty once.
    let mut w = fresh_worker(n);
    let queued = fan_out(
        &hub,
        &mut w.conns,
        &mut w.dirty,
        &mut w.found,
        &event,
        &BOUND,
    );
    assert_eq!(
        (queued, w.dirty.len(), w.found.evict.len()),
        (n as u64, n, 0)
    );
    assert!(w
        .conns
        .iter()
        .all(|(_, c)| c.out.len() == 1 && c.has(flags::DIRTY)));
    drop(w);

    let mut group = c.benchmark_group(format!("fanout/{n}_subscribers"));
    group.throughput(Throughput::Elements(n as u64));
    if n >= 10_000 {
        group.sample_size(20);
    }
    group.bench_function("vec_push_baseline", |b| {
        b.iter_batched(
            || -> Vec<Vec<Bytes>> { (0..n).map(|_| Vec::with_capacity(1)).collect() },
            |mut queues| {
                let frame = black_box(&event.frame);
                for q in queues.iter_mut() {
                    q.push(frame.clone());
                }
                assert_eq!(queues[n - 1].len(), 1);
                queues
            },
            batch,
        )
    });
    group.bench_function("ringcast_fan_out", |b| {
        b.iter_batched(
            || fresh_worker(n),
            |mut w| {
                let queued = fan_out(
                    &hub,
                    &mut w.conns,
                    &mut w.dirty,
                    &mut w.found,
                    black_box(&event),
                    &BOUND,
                );
                assert_eq!(queued, n as u64);
                w
            },
            batch,
        )
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    for n in [1, 1_000, 100_000] {
        bench_subscribers(c, n);
    }
}

criterion_group!(fanout_benches, benches);
criterion_main!(fanout_benches);
