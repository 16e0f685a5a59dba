//! One worker thread's event loop: every turn runs the same steps in the same order.
//!
//! A worker owns a monoio runtime, a listener, a slab of connections, a topic hub, its
//! timers and a private io_uring for subscriber writes. Nothing in it is shared with
//! other workers except its inbox and its counters. Each stage keeps its own state in
//! its own module, and the worker holds one of each:
//!
//! - `stream::Writes`: the data plane (kernel interface, dirty list, writes in flight,
//!   completions); `stream::delivery::Fanout`: the fan-out between turns;
//! - `timer::Timers`: the wheel and its clock; `conn::lifecycle`: what a timer means;
//! - here: the loop ([`run`]) and its wake sources ([`events`]); the steps of a turn
//!   (`turn`); a connection's way from admission to release (`lifecycle`, `subscribe`);
//!   the shutdown drain (`drain`); and [`Port`], the one handle a connection task has.

mod drain;
pub mod events;
mod lifecycle;
pub mod port;
mod presence;
mod subscribe;
mod turn;

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::broadcast::hub::Hub;
use crate::conn::lifecycle::Limits;
use crate::conn::Conn;
use crate::metrics::WorkerStats;
use crate::shared::Shared;
use crate::stream::delivery::Fanout;
use crate::stream::plane::Plane;
use crate::stream::readers::Readers;
use crate::stream::Writes;
use crate::timer::Timers;
pub use events::{Events, Kick};
pub use port::Port;
pub use presence::PREFIX as SUBSCRIPTIONS_PREFIX;

/// How often a draining worker closes its next batch of subscribers.
const DRAIN_STEP: Duration = Duration::from_millis(20);

/// How often a busy worker expires history by age.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

pub struct Worker {
    index: usize,
    shared: Arc<Shared>,
    conns: Slab<Conn>,
    /// Generation for the next connection (see `stream::plane::Token`).
    next_gen: u32,
    hub: Hub,
    writes: Writes,
    fanout: Fanout,
    timers: Timers,
    limits: Limits,
    /// Set once this worker has begun its shutdown drain.
    drain: Option<drain::Drain>,
    /// State of the jitter generator.
    rng: u64,
    /// Asks this worker's loop for a turn, from its connection tasks.
    kick: Rc<Kick>,
    /// When housekeeping last ran, and whether any turn ran since.
    housekept: Instant,
    busy: bool,
    /// The listeners' descriptors, shut down to stop accepting when draining.
    listener_fds: Vec<RawFd>,
    /// Subscription events and users, with `--subscription-events`.
    presence: Option<presence::Presence>,
    /// Keep-alive connections waiting for their next request (see `stream::readers`).
    readers: Rc<Readers>,
}

impl Worker {
    /// Worker `index`, writing through `plane`, accepting on `listener_fds`, asked for
    /// turns through `kick` (from its [`Events`]).
    pub fn new(
        index: usize,
        shared: Arc<Shared>,
        plane: Plane,
        listener_fds: Vec<RawFd>,
        kick: Rc<Kick>,
    ) -> Worker {
        let timers = Timers::new(shared.config.tick);
        let cfg = &shared.config;
        let limits = Limits {
            heartbeat: timers.ticks(cfg.heartbeat),
            write_timeout: timers.ticks(cfg.write_timeout),
            drain_write: timers.ticks(cfg.write_timeout.min(cfg.drain)),
        };
        Worker {
            index,
            conns: Slab::new(),
            next_gen: 0,
            hub: Hub::default(),
            writes: Writes::new(plane),
            fanout: Fanout::default(),
            timers,
            limits,
            drain: None,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1),
            kick,
            housekept: Instant::now(),
            busy: false,
            listener_fds,
            presence: cfg.subscription_events.then(presence::Presence::default),
            readers: Rc::default(),
            shared,
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.index]
    }

    /// Step 1½: the turn's timestamp, against which queue waits are measured.
    fn begin_turn(&mut self) {
        self.writes.dirty().begin_turn(self.timers.millis());
    }

    /// Step 6: runs at most once per [`HOUSEKEEPING`] period, and only after a busy
    /// turn: expires history by age and publishes the `sys:stats` snapshot (worker 0).
    fn housekeeping(&mut self) {
        self.busy = true;
        if self.housekept.elapsed() < HOUSEKEEPING {
            return;
        }
        if self.index == 0 {
            self.shared.sequencer.expire();
            crate::page::stats::publish(&self.shared, self.timers.instant(0));
        }
        self.housekept = Instant::now();
        self.busy = false;
    }

    /// Step 7: whether writes, completions or events are left for the next turn
    /// (events published during this one among them), or a connection task asked for a
    /// turn meanwhile (`kicked`).
    fn work_left(&self, kicked: bool) -> bool {
        kicked || self.writes.has_work() || self.fanout.pending(&self.shared.inboxes[self.index])
    }

    /// When the loop must run even if nothing wakes it: the earliest timer, the next
    /// housekeeping after a busy turn (always on worker 0, whose housekeeping publishes
    /// `sys:stats` and ages the histories: publishes reach only the workers with their
    /// topics' subscribers, so nothing else may wake it), the next drain step.
    fn next_deadline(&self) -> Option<Instant> {
        let mut at = self.timers.next_expiry();
        let mut sooner = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if self.busy || self.index == 0 {
            sooner(self.housekept + HOUSEKEEPING);
        }
        if self.drain.is_some() {
            sooner(Instant::now() + DRAIN_STEP);
        }
        at
    }

    /// A cheap per-worker random number (xorshift), for jitter only.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
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
        // 5½. This turn's subscription events, as one publish.
        w.publish_presence();
        // 6. About once a second: expire history by age, publish `sys:stats`.
        w.housekeeping();
        if w.finished() {
            return;
        }
        // 7. Work left over: the next turn comes after monoio's next I/O pass, not before
        //    it (the plane's descriptor is made readable, or a timer set).
        let left = w.work_left(events.kicked());
        let nudged = left && w.writes.nudge();
        events.after_turn(left, nudged, w.next_deadline());
    }
}
