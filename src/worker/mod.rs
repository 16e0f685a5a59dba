//! One worker thread's event loop: every turn runs the same steps in the same order.
//!
//! A worker owns a monoio runtime, a listener, a slab of connections, a topic hub, a
//! timer wheel and a private io_uring for subscriber writes. Nothing in it is shared with
//! other workers except its inbox and its counters.

pub mod clock;
pub mod events;
pub mod port;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::broadcast::hub::Hub;
use crate::conn::Conn;
use crate::metrics::WorkerStats;
use crate::shared::Shared;
use crate::stream::plane::{Completion, Plane};
use crate::timer::wheel::Wheel;
pub use clock::Clock;
pub use events::{Events, Kick};
pub use port::Port;

/// How often a draining worker closes its next batch of subscribers.
const DRAIN_STEP: Duration = Duration::from_millis(20);

/// How often a busy worker expires history by age.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

pub struct Worker {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub conns: Slab<Conn>,
    pub hub: Hub,
    pub wheel: Wheel,
    pub plane: Plane,
    pub clock: Clock,
    /// Connections with frames queued since the last flush, oldest first.
    pub dirty: VecDeque<Dirty>,
    /// When the current turn started ([`Clock::millis`]).
    pub turn_ms: u32,
    /// Writes in flight.
    pub writing: usize,
    /// Bytes each subscriber that sent anything has sent (it should send nothing).
    pub chatter: rustc_hash::FxHashMap<u32, usize>,
    /// Where the last turn's fan-out stopped, when its budget ran out.
    pub resume: Option<crate::stream::delivery::Resume>,
    /// Subscribers found over their queue bound during a fan-out.
    pub evict: Vec<u32>,
    /// When each batch fanned out this turn was published (for the latency metric).
    pub turn_batches: Vec<Instant>,
    /// Completions collected and not yet acted on (past the turn's reap budget),
    /// oldest first; the buffer is reused every turn.
    pub completions: Vec<Completion>,
    /// Generation for the next connection (see `Token`).
    pub next_gen: u32,
    /// Set once this worker has begun its shutdown drain.
    pub drain: Option<crate::conn::lifecycle::Drain>,
    /// State of the jitter generator.
    pub rng: u64,
    /// Asks this worker's loop for a turn, from its connection tasks.
    pub kick: Rc<Kick>,
    /// When housekeeping last ran, and whether any turn ran since.
    pub housekept: Instant,
    pub busy: bool,
    /// The listener's descriptor, shut down to stop accepting when draining.
    pub listener_fd: std::os::fd::RawFd,
}

/// A connection waiting for the loop to start its write, and since when (the turn's
/// [`Worker::turn_ms`]): how long the oldest waits is how far the worker runs behind.
#[derive(Clone, Copy, Debug)]
pub struct Dirty {
    pub key: u32,
    pub since: u32,
}

impl Worker {
    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.index]
    }

    /// Runs at most once per [`HOUSEKEEPING`] period, and only after a busy turn: expires
    /// history by age and publishes the `sys:stats` snapshot (worker 0).
    fn housekeeping(&mut self) {
        self.busy = true;
        if self.housekept.elapsed() < HOUSEKEEPING {
            return;
        }
        if self.index == 0 {
            self.shared.sequencer.expire();
            crate::page::stats::publish(&self.shared, self.clock.instant(0));
        }
        self.housekept = Instant::now();
        self.busy = false;
    }

    /// Step 1½: the turn's timestamp, against which queue waits are measured.
    fn begin_turn(&mut self) {
        self.turn_ms = self.clock.millis();
    }

    /// Step 7: whether writes, completions or events are left for the next turn
    /// (events published during this one among them), or a connection task asked for a
    /// turn meanwhile (`kicked`).
    fn work_left(&self, kicked: bool) -> bool {
        kicked
            || !self.dirty.is_empty()
            || !self.completions.is_empty()
            || self.plane.has_collected()
            || self.fanout_pending()
    }

    /// When the loop must run even if nothing wakes it: the wheel's next expiry, the
    /// next housekeeping after a busy turn, the next drain step.
    fn next_deadline(&self) -> Option<Instant> {
        let mut at = self.wheel.next_expiry().map(|t| self.clock.instant(t));
        let mut sooner = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if self.busy {
            sooner(self.housekept + HOUSEKEEPING);
        }
        if self.drain.is_some() {
            sooner(Instant::now() + DRAIN_STEP);
        }
        at
    }

    /// Publish-to-write latency of the batches whose writes this turn submitted.
    pub(crate) fn observe_latency(&mut self) {
        if self.turn_batches.is_empty() {
            return;
        }
        let now = Instant::now();
        let stats = &self.shared.stats[self.index];
        for at in self.turn_batches.drain(..) {
            stats.observe_latency(now.saturating_duration_since(at).as_secs_f64());
        }
    }
}

/// The loop. Returns when the worker has drained and closed everything.
pub async fn run(worker: Rc<RefCell<Worker>>, mut events: Events) {
    loop {
        // 1. Park until a publish, a completion, a kick from a connection task, or the
        //    next deadline (one future: `events`).
        events.park().await;
        let mut w = worker.borrow_mut();
        w.begin_turn();
        // 2. Finish writes the kernel completed; notice peers that closed.
        w.reap();
        // 3. Fan published frames out to local subscribers.
        w.drain_inbox();
        // 4. Heartbeats, timeouts, evictions, the shutdown drain.
        w.expire_timers();
        // 5. Start up to a batch of pending writes: one system call for the turn.
        w.flush();
        // 6. About once a second: expire history by age, publish `sys:stats`.
        w.housekeeping();
        if w.finished() {
            return;
        }
        // 7. Work left over: the next turn comes after monoio's next I/O pass, not before
        //    it (the plane's descriptor is made readable, or a timer set).
        let left = w.work_left(events.kicked());
        let nudged = left && w.plane.nudge();
        events.after_turn(left, nudged, w.next_deadline());
    }
}
