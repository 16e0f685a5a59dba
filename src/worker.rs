//! One worker thread's event loop: every turn runs the same steps in the same order.
//!
//! A worker owns a monoio runtime, a listener, a slab of connections, a topic hub, a
//! timer wheel and a private io_uring for subscriber writes. Nothing in it is shared with
//! other workers except its inbox and its counters.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::broadcast::hub::Hub;
use crate::conn::Conn;
use crate::metrics::WorkerStats;
use crate::server::Shared;
use crate::stream::plane::{Completion, Plane};
use crate::timer::wheel::Wheel;

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
    /// Subscribers found over their queue bound during a fan-out.
    pub evict: Vec<u32>,
    /// When each batch fanned out this turn was published (for the latency metric).
    pub turn_batches: Vec<Instant>,
    /// Scratch for collected completions, reused every turn.
    pub completions: Vec<Completion>,
    /// Generation for the next connection (see `Token`).
    pub next_gen: u32,
    /// Set once this worker has begun its shutdown drain.
    pub drain: Option<crate::conn::lifecycle::Drain>,
    /// State of the jitter generator.
    pub rng: u64,
    /// Wakes this worker's loop from its connection tasks.
    pub wake: Rc<Wake>,
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

    /// Publish-to-write latency of the batches whose writes this turn submitted.
    fn observe_latency(&mut self) {
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

/// Ticks of the timer wheel since the worker started; `u32` in connection entries
/// (497 days at 10 ms), `u64` in the wheel.
pub struct Clock {
    start: Instant,
    tick: Duration,
}

impl Clock {
    pub fn new(tick: Duration) -> Clock {
        Clock {
            start: Instant::now(),
            tick,
        }
    }

    pub fn now(&self) -> u64 {
        (self.start.elapsed().as_nanos() / self.tick.as_nanos()) as u64
    }

    /// A duration in ticks, rounded up so timers never fire early.
    pub fn ticks(&self, d: Duration) -> u64 {
        d.as_nanos().div_ceil(self.tick.as_nanos()) as u64
    }

    /// Milliseconds since the worker started, wrapping (compare with `wrapping_sub`).
    pub fn millis(&self) -> u32 {
        self.start.elapsed().as_millis() as u32
    }

    pub fn instant(&self, tick: u64) -> Instant {
        self.start + self.tick * u32::try_from(tick).unwrap_or(u32::MAX)
    }
}

/// What wakes a parked loop besides its inbox and its timer: the data plane's doorbell
/// (rung by the doorbell task), and work queued by a connection task (a new stream to
/// flush, a deadline earlier than the loop's sleep).
pub struct Wake {
    rung: Cell<bool>,
    kicked: Cell<bool>,
    /// The tick the parked loop will wake at by itself.
    sleeping_until: Cell<u64>,
    loop_waker: RefCell<Option<Waker>>,
    bell_waker: RefCell<Option<Waker>>,
}

impl Default for Wake {
    fn default() -> Self {
        Wake {
            rung: Cell::new(false),
            kicked: Cell::new(false),
            // Until its first turn the loop sleeps with no deadline at all.
            sleeping_until: Cell::new(u64::MAX),
            loop_waker: RefCell::new(None),
            bell_waker: RefCell::new(None),
        }
    }
}

impl Wake {
    fn wake_loop(&self) {
        if let Some(w) = self.loop_waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn ring(&self) {
        self.rung.set(true);
        self.wake_loop();
    }

    /// Asks the loop for a turn (a no-op if one is already due).
    pub fn kick(&self) {
        if !self.kicked.replace(true) {
            self.wake_loop();
        }
    }

    /// Asks for a turn only if the loop would otherwise sleep past `tick`.
    pub fn kick_before(&self, tick: u64) {
        if tick < self.sleeping_until.get() {
            self.kick();
        }
    }

    /// Loop side: whether anything asked for this turn. Taking the doorbell lets the
    /// doorbell task watch again (the doorbell stays readable until the loop reaps, so
    /// re-arming earlier would spin).
    fn take(&self) -> bool {
        let rung = self.rung.replace(false);
        if rung {
            if let Some(w) = self.bell_waker.borrow_mut().take() {
                w.wake();
            }
        }
        rung | self.kicked.replace(false)
    }

    async fn taken(&self) {
        poll_fn(|cx| {
            if self.rung.get() {
                *self.bell_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

/// The loop. Returns when the worker has drained and closed everything.
pub async fn run(worker: Rc<RefCell<Worker>>) {
    let (inbox, wake) = {
        let w = worker.borrow();
        (w.shared.inboxes[w.index].clone(), w.wake.clone())
    };
    let clock_instant =
        |w: &Worker, tick: u64| monoio::time::Instant::from_std(w.clock.instant(tick));
    let far = || monoio::time::Instant::now() + Duration::from_secs(3600);
    let mut sleep = std::pin::pin!(monoio::time::sleep_until(far()));
    loop {
        // 1. Park until a publish, a completion, or the next timer deadline. A turn that
        //    left work over (a large flush) yields once instead, and resumes only after the
        //    runtime's next I/O pass (the doorbell rung from here), so the worker's other
        //    connections (publishes, accepts, handshakes) are served between the turns of
        //    a fan-out. A plain self-wake would run the loop again before that pass.
        let mut yielded = false;
        poll_fn(|cx| {
            inbox.register(cx.waker());
            if wake.kicked.get() && !yielded {
                yielded = true;
                if worker.borrow().plane.nudge() {
                    *wake.loop_waker.borrow_mut() = Some(cx.waker().clone());
                } else {
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
            let woke = inbox.take_notified() | wake.take();
            if woke || sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            *wake.loop_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let mut w = worker.borrow_mut();
        w.turn_ms = w.clock.millis();
        w.plane.mute();
        // 2. Finish writes the kernel completed; notice peers that closed.
        w.reap();
        // 3. Fan published frames out to local subscribers.
        w.drain_inbox(&inbox);
        // 4. Heartbeats, timeouts, evictions, the shutdown drain.
        w.expire_timers();
        // 5. Start every pending write: one system call for the whole turn.
        w.flush();
        // 6. About once a second: expire history by age, publish `sys:stats`.
        w.housekeeping();
        w.observe_latency();
        if w.finished() {
            return;
        }
        // 7. Completions that arrived during the turn (inline ones from the flush among
        //    them) need another turn; later ones ring the doorbell.
        if w.plane.unmute() {
            wake.kick();
        }
        let next = w.wheel.next_expiry();
        wake.sleeping_until.set(next.unwrap_or(u64::MAX));
        let mut deadline = next.map_or_else(far, |t| clock_instant(&w, t));
        if w.busy {
            deadline = deadline.min(monoio::time::Instant::from_std(w.housekept + HOUSEKEEPING));
        }
        if w.drain.is_some() {
            deadline = deadline.min(monoio::time::Instant::now() + DRAIN_STEP);
        }
        sleep.as_mut().reset(deadline);
    }
}

/// Watches the data plane's doorbell descriptor and rings the loop's bell.
pub async fn doorbell(fd: std::os::fd::RawFd, worker: Rc<RefCell<Worker>>) {
    let bell = worker.borrow().wake.clone();
    use std::os::fd::FromRawFd;
    // monoio can await readiness only on its own socket types. Any pollable descriptor
    // works under a UnixStream's poll; the stream is never read or written, and is
    // forgotten rather than dropped so the plane keeps ownership of the descriptor.
    // SAFETY: `fd` is a valid open descriptor owned by the plane, which outlives this task.
    let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    let stream = match monoio::net::UnixStream::from_std(std_stream) {
        Ok(s) => std::mem::ManuallyDrop::new(s),
        Err(e) => {
            log::error!(error:% = e; "cannot watch the data plane's doorbell");
            return;
        }
    };
    loop {
        if stream.readable(false).await.is_err() {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        bell.ring();
        bell.taken().await;
        if worker.borrow().finished() {
            return;
        }
    }
}
