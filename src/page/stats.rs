//! `sys:stats`: once a second, while anyone follows it, a snapshot of the server's
//! counters published as an ordinary event (an id, history, fan-out) for the page's
//! server panel.
//!
//! A snapshot costs the sequencer's lock and a frame, so none is made while nobody
//! watches: each worker counts the subscribers of the topic into one process-wide number
//! as they start and close (a flag on the connection marks them), and worker 0 reads it
//! in its once-a-second housekeeping.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use smallvec::smallvec;

use crate::broadcast::frame::Draft;
use crate::broadcast::sequencer::NewEvent;
use crate::shared::Shared;

/// The topic of the stats stream (topic names allow `:`; `sys:` is reserved for the
/// server's own streams, see `conn::publish::reserved_topic`).
pub const TOPIC: &str = "sys:stats";
/// The event name of each snapshot.
pub const EVENT: &str = "stats";

/// Subscribers of [`TOPIC`] in the process, on every worker.
static WATCHERS: AtomicUsize = AtomicUsize::new(0);
/// How many times [`WATCHERS`] rose from 0: a stream that starts again after nobody
/// watched measures its rates afresh, not over the time it was stopped.
static STARTS: AtomicUsize = AtomicUsize::new(0);

/// Counter totals when the last snapshot was taken, with the snapshot's own event and
/// its deliveries already added, so that the next rates leave the stream itself out
/// (an idle server shows 0 events/s, not the panel's own feed).
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    published: u64,
    delivered: u64,
    /// [`STARTS`] when taken: a sample of an earlier stream gives no rates.
    start: usize,
}

thread_local! {
    /// Worker 0's last sample; only worker 0's thread takes snapshots.
    static LAST: Cell<Option<Sample>> = const { Cell::new(None) };
}

/// A subscriber of `topics` is starting: counts it if it follows the stats stream and
/// says so (the caller flags the connection, and calls [`unwatch`] when it closes).
pub fn watch(shared: &Shared, topics: &[&str]) -> bool {
    if !topics.contains(&TOPIC) {
        return false;
    }
    if WATCHERS.fetch_add(1, Ordering::Relaxed) == 0 {
        STARTS.fetch_add(1, Ordering::Relaxed);
        // Worker 0 may be parked with nothing to do: a turn lets its housekeeping start
        // the stream now rather than at its next unrelated wake-up.
        shared.inboxes[0].notify();
    }
    true
}

/// A subscriber counted by [`watch`] has closed.
pub fn unwatch() {
    WATCHERS.fetch_sub(1, Ordering::Relaxed);
}

/// Worker 0's housekeeping: publishes one snapshot if anyone watches. `started` is when
/// the workers started (for the uptime).
pub fn publish(shared: &Shared, started: Instant) {
    let watchers = WATCHERS.load(Ordering::Relaxed);
    if watchers == 0 || shared.is_draining() {
        return;
    }
    let now = Instant::now();
    let sum =
        |f: fn(&crate::metrics::WorkerStats) -> u64| -> u64 { shared.stats.iter().map(f).sum() };
    let published = sum(|w| w.published.get());
    let delivered = sum(|w| w.frames.get());
    let start = STARTS.load(Ordering::Relaxed);
    let rates = LAST.get().filter(|last| last.start == start).map(|last| {
        let secs = now.duration_since(last.at).as_secs_f64().max(1e-3);
        (
            published.saturating_sub(last.published) as f64 / secs,
            delivered.saturating_sub(last.delivered) as f64 / secs,
        )
    });
    let snapshot = Snapshot {
        uptime_s: now.duration_since(started).as_secs(),
        connections: sum(|w| w.connections.get()),
        subscribers: sum(|w| w.subscribers.get()),
        rates,
        workers: shared.stats.len(),
    };
    let json = snapshot.json();
    let draft = Draft::new(Some(EVENT.as_bytes()), json.as_bytes());
    if shared.sequencer.is_clustered() {
        // Cluster ids come from the shared stream; this process's own stats stay out of
        // it and reach its own subscribers as frames without an id.
        shared
            .sequencer
            .broadcast_notice(Some(TOPIC), draft.without_id());
        return;
    }
    shared.sequencer.publish(vec![NewEvent {
        topics: smallvec![TOPIC],
        draft,
    }]);
    // Worker 0's own counter, written from worker 0's thread as every counter must be.
    shared.stats[0].published.add(1);
    LAST.set(Some(Sample {
        at: now,
        published: published + 1,
        delivered: delivered + watchers as u64,
        start,
    }));
}

/// What one `stats` event says.
struct Snapshot {
    uptime_s: u64,
    connections: u64,
    subscribers: u64,
    /// Events per second published and delivered since the last snapshot; None (`null`
    /// on the wire) for the first one of a stream, when no interval is measured yet.
    rates: Option<(f64, f64)>,
    workers: usize,
}

impl Snapshot {
    fn json(&self) -> String {
        let mut out = String::with_capacity(160);
        let _ = write!(
            out,
            "{{\"uptime_s\":{},\"connections\":{},\"subscribers\":{},",
            self.uptime_s, self.connections, self.subscribers
        );
        match self.rates {
            Some((p, d)) => {
                let _ = write!(
                    out,
                    "\"published_per_s\":{p:.1},\"delivered_per_s\":{d:.1},"
                );
            }
            None => out.push_str("\"published_per_s\":null,\"delivered_per_s\":null,"),
        }
        let _ = write!(out, "\"workers\":{}}}", self.workers);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_json() {
        let mut s = Snapshot {
            uptime_s: 5,
            connections: 3,
            subscribers: 2,
            rates: Some((1.26, 2000.0)),
            workers: 2,
        };
        let v: serde_json::Value = serde_json::from_str(&s.json()).unwrap();
        assert_eq!(v["uptime_s"], 5);
        assert_eq!(v["connections"], 3);
        assert_eq!(v["subscribers"], 2);
        assert_eq!(v["published_per_s"], 1.3);
        assert_eq!(v["delivered_per_s"], 2000.0);
        assert_eq!(v["workers"], 2);
        s.rates = None;
        let v: serde_json::Value = serde_json::from_str(&s.json()).unwrap();
        assert!(v["published_per_s"].is_null() && v["delivered_per_s"].is_null());
    }
}
