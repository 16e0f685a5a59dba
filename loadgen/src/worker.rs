//! One runtime thread of a worker process: a monoio runtime holding a slice of the
//! subscribers. Its connector ramps connections up at the thread's share of the rate;
//! its control task follows the run's phase, drops connections for the reconnect
//! scenario, and at the end closes everything and adds up the figures.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::control::{Control, Phase, Progress};
use crate::plan::Plan;
use crate::stats::{Counters, Failures, Hists};
use crate::subscriber::{self, track};
use crate::sys::{self, mono_ns};
use crate::tls::{Connector, Negotiated, Stream};
use track::{EndRequest, Life, Sub};

/// Control task period: coarse on purpose, it only follows phases and progress.
const TICK: Duration = Duration::from_millis(50);
/// Connector period; new connections are released in small batches per tick.
const CONNECT_TICK: Duration = Duration::from_millis(2);
/// How long tasks get to end after the stop, before the runtime drops them.
const STOP_GRACE_NS: u64 = 3_000_000_000;
/// io_uring submission queue entries: a tick can release hundreds of connects and
/// polls; a larger ring means fewer `io_uring_enter` calls.
const RING_ENTRIES: u32 = 4096;

/// The state of one runtime thread, shared by its tasks (single-threaded: `Rc`,
/// `RefCell`, `Cell`; borrows never live across an `.await`).
pub struct Worker {
    pub plan: Arc<Plan>,
    pub ctl: Arc<Control>,
    progress: Arc<Progress>,
    /// Global index of `subs[0]` (source address and slow share go by global index).
    pub first: u32,
    pub subs: RefCell<Vec<Sub>>,
    /// The one read buffer of the thread: every connection reads into it and keeps
    /// only its incomplete block.
    pub buf: RefCell<Vec<u8>>,
    pub counters: RefCell<Counters>,
    pub hists: RefCell<Hists>,
    pub connect_failures: RefCell<Failures>,
    pub reconnect_failures: RefCell<Failures>,
    /// First connects in flight (bounded by `inflight_cap`).
    pub inflight: Cell<u32>,
    inflight_cap: u32,
    /// Connections per second for this thread.
    rate: f64,
    /// Subscriber tasks alive.
    pub tasks: Cell<u32>,
    /// Set when the run ends: no new connects, no re-connects.
    pub stopping: Cell<bool>,
    /// Send time from which latency goes to the slow-phase histogram.
    pub slow_phase_ns: Cell<u64>,
    /// The subscribe endpoint's TLS connector; `None` for plain http.
    pub tls: Option<Connector>,
    /// What the thread's first TLS handshake settled on, for the report.
    pub tls_seen: RefCell<Option<Negotiated>>,
}

/// What a thread hands back when done.
pub struct ThreadResult {
    pub counters: Counters,
    pub hists: Hists,
    pub connect_failures: Failures,
    pub reconnect_failures: Failures,
    /// The thread's first TLS session (https only).
    pub tls: Option<Negotiated>,
    pub error: Option<String>,
}

/// The slice of a worker process one thread runs.
pub struct Share {
    pub first: u32,
    pub count: u32,
    pub rate: f64,
    pub inflight: u32,
}

/// Runs one thread's subscribers to the end of the run.
pub fn run_thread(
    plan: Arc<Plan>,
    ctl: Arc<Control>,
    progress: Arc<Progress>,
    share: Share,
    tls: Option<Connector>,
) -> ThreadResult {
    let built = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .with_entries(RING_ENTRIES)
        .enable_timer()
        .build();
    let mut rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            progress.finished.store(true, Relaxed);
            return ThreadResult::failed(format!("cannot start a runtime: {e}"));
        }
    };
    rt.block_on(async move {
        let w = Rc::new(Worker::new(plan, ctl, progress, &share, tls));
        w.progress.started.store(true, Relaxed);
        monoio::spawn(connector(w.clone()));
        control(&w).await;
        w.finish()
    })
}

impl ThreadResult {
    fn failed(error: String) -> ThreadResult {
        ThreadResult {
            counters: Counters::default(),
            hists: Hists::default(),
            connect_failures: Failures::default(),
            reconnect_failures: Failures::default(),
            tls: None,
            error: Some(error),
        }
    }
}

impl Worker {
    fn new(
        plan: Arc<Plan>,
        ctl: Arc<Control>,
        progress: Arc<Progress>,
        share: &Share,
        tls: Option<Connector>,
    ) -> Worker {
        let subs = (share.first..share.first + share.count)
            .map(|g| Sub::new(plan.topic_of(g), plan.is_slow(g)))
            .collect();
        Worker {
            plan,
            ctl,
            progress,
            first: share.first,
            subs: RefCell::new(subs),
            buf: RefCell::new(Vec::new()),
            counters: RefCell::new(Counters::default()),
            hists: RefCell::new(Hists::default()),
            connect_failures: RefCell::new(Failures::default()),
            reconnect_failures: RefCell::new(Failures::default()),
            inflight: Cell::new(0),
            inflight_cap: share.inflight.max(1),
            rate: share.rate,
            tasks: Cell::new(0),
            stopping: Cell::new(false),
            slow_phase_ns: Cell::new(u64::MAX),
            tls,
            tls_seen: RefCell::new(None),
        }
    }

    /// Keeps the settings of the thread's first TLS session.
    pub fn note_tls(&self, stream: &Stream) {
        let Stream::Tls(t) = stream else { return };
        let mut seen = self.tls_seen.borrow_mut();
        if seen.is_none() {
            *seen = Some(t.negotiated());
        }
    }

    /// Adds every subscriber's final figures (holes plus missing tail).
    fn finish(&self) -> ThreadResult {
        let mut c = self.counters.borrow_mut();
        let finals = self.ctl.final_seq();
        for s in self.subs.borrow().iter() {
            let last = finals
                .and_then(|f| f.get(s.topic as usize).copied())
                .unwrap_or(0);
            track::finish(s, last, &mut c);
        }
        self.progress.finished.store(true, Relaxed);
        ThreadResult {
            counters: c.clone(),
            hists: self.hists.borrow().clone(),
            connect_failures: self.connect_failures.borrow().clone(),
            reconnect_failures: self.reconnect_failures.borrow().clone(),
            tls: self.tls_seen.borrow().clone(),
            error: None,
        }
    }
}

/// Starts subscriber tasks at the thread's rate, with a bounded number in flight.
async fn connector(w: Rc<Worker>) {
    let n = w.subs.borrow().len();
    while !w.ctl.connects_allowed() && !w.stopping.get() {
        monoio::time::sleep(CONNECT_TICK).await;
    }
    let start = mono_ns();
    let mut next = 0;
    while next < n && !w.stopping.get() {
        let due = ((mono_ns() - start) as f64 / 1e9 * w.rate) as usize + 1;
        while next < due.min(n) && w.inflight.get() < w.inflight_cap {
            w.inflight.set(w.inflight.get() + 1);
            w.tasks.set(w.tasks.get() + 1);
            monoio::spawn(subscriber::run(w.clone(), next));
            next += 1;
        }
        monoio::time::sleep(CONNECT_TICK).await;
    }
}

/// The thread's control loop: every tick, the same steps in the same order.
async fn control(w: &Worker) {
    let mut rng = Rng::new(u64::from(w.first) ^ mono_ns());
    let mut next_drop = u64::MAX;
    let mut tick = 0u64;
    loop {
        monoio::time::sleep(TICK).await;
        tick += 1;
        // 1. Learn when publishing started (slow phase, reconnect schedule).
        follow_start(w, &mut next_drop);
        // 2. Progress for the process's main thread.
        report_progress(w, tick.is_multiple_of(10));
        // 3. Drops for the reconnect scenario.
        let now = mono_ns();
        if w.ctl.phase() == Phase::Running && now >= next_drop {
            drop_share(w, &mut rng);
            next_drop = next_drop.saturating_add(
                w.plan
                    .reconnect
                    .as_ref()
                    .map_or(u64::MAX, |r| r.interval_ms * 1_000_000),
            );
        }
        // 4. The end: stop, hard deadline, or a finished drain.
        if ended(w, now) {
            break;
        }
    }
    end_all(w).await;
    report_progress(w, true);
}

fn follow_start(w: &Worker, next_drop: &mut u64) {
    let t0 = w.ctl.t0_ns();
    if t0 == 0 || w.slow_phase_ns.get() != u64::MAX {
        return;
    }
    let after = w
        .plan
        .slow
        .as_ref()
        .map_or(u64::MAX - t0, |s| s.after_ms * 1_000_000);
    w.slow_phase_ns.set(t0 + after);
    if let Some(r) = &w.plan.reconnect {
        *next_drop = t0 + r.interval_ms * 1_000_000;
    }
}

fn report_progress(w: &Worker, with_p99: bool) {
    let c = w.counters.borrow();
    let live = w
        .subs
        .borrow()
        .iter()
        .filter(|s| s.life == Life::Live)
        .count() as u64;
    let failed = w.connect_failures.borrow().total();
    w.progress
        .set(live, c.established + failed, failed, c.events);
    if with_p99 {
        w.progress
            .p99_us
            .store(w.hists.borrow().latency.value_at_quantile(0.99), Relaxed);
    }
}

/// Whether the run is over for this thread.
fn ended(w: &Worker, now: u64) -> bool {
    match w.ctl.phase() {
        Phase::Stopping => true,
        _ if now >= w.ctl.deadline_ns => true,
        Phase::Draining => now >= w.ctl.drain_deadline_ns() || caught_up(w),
        _ => false,
    }
}

/// Every live subscriber has the last seq of its topic.
fn caught_up(w: &Worker) -> bool {
    let Some(finals) = w.ctl.final_seq() else {
        return false;
    };
    let subs = w.subs.borrow();
    subs.iter().all(|s| {
        s.life != Life::Live || s.last_seq >= finals.get(s.topic as usize).copied().unwrap_or(0)
    })
}

/// Drops each live connection with probability `fraction`; its task resumes it.
fn drop_share(w: &Worker, rng: &mut Rng) {
    let Some(r) = &w.plan.reconnect else { return };
    let threshold = (r.fraction * u32::MAX as f64) as u64;
    let mut subs = w.subs.borrow_mut();
    for s in subs
        .iter_mut()
        .filter(|s| s.life == Life::Live && s.fd >= 0 && s.end == EndRequest::None)
    {
        if rng.next_u32() as u64 <= threshold {
            s.end = EndRequest::Reconnect;
            sys::shutdown_read(s.fd);
        }
    }
}

/// Ends every connection and waits (boundedly) for the tasks to finish.
async fn end_all(w: &Worker) {
    w.stopping.set(true);
    for s in w.subs.borrow_mut().iter_mut().filter(|s| s.fd >= 0) {
        s.end = EndRequest::Stop;
        sys::shutdown_read(s.fd);
    }
    let give_up = mono_ns() + STOP_GRACE_NS;
    while w.tasks.get() > 0 && mono_ns() < give_up {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// xorshift64*: picks connections to drop; no need for a crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}
