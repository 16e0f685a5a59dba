//! The admission prober (`--probe-interval`): from the start of the connect phase to
//! the end of the drain (or hold), every interval it opens three probes, each on a new
//! connection — the health path, a subscribe head, a publish — and times each from the
//! connect to its answer. That is how long a new client waits to be admitted while the
//! scenario loads the server. It runs in the parent on its own thread and runtime, so it
//! never shares a loop, or counters, with the subscribers.
//!
//! - [`args`]: the flags, resolved into [`Probe`].
//! - [`exchange`]: the requests, and one probe: connect (and TLS handshake), send, read
//!   to the answer.
//! - [`summary`]: the samples per kind and the figures the report shows.

pub mod args;
pub mod exchange;
pub mod summary;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::plan::{Plan, Probe};
use crate::sys::mono_ns;

use exchange::Request;
use summary::Tallies;

/// Probes in flight at once, over all kinds: rounds overlap when the server is slow,
/// and this bounds what a stalled server is handed (at 200 ms and the 5 s default
/// timeout a stall fills about 75 slots). A probe due while the cap is reached is
/// skipped and counted as such.
pub const MAX_OUTSTANDING: usize = 64;
/// Longest sleep between looks at the stop flag: the prober stops within this of
/// being told to.
const STOP_POLL: Duration = Duration::from_millis(20);

/// What a probe asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Healthz = 0,
    Subscribe = 1,
    Publish = 2,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Healthz => "healthz",
            Kind::Subscribe => "subscribe",
            Kind::Publish => "publish",
        }
    }
}

/// A running prober.
pub struct Prober {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Tallies, String>>,
}

impl Prober {
    /// Starts probing now, on its own thread, until [`Prober::stop`] or `until_ns`
    /// (CLOCK_MONOTONIC), whichever comes first. `None` when the plan does not probe.
    pub fn start(plan: &Plan, until_ns: u64) -> Result<Option<Prober>, String> {
        let Some(probe) = plan.probe.clone() else {
            return Ok(None);
        };
        let requests = exchange::requests(plan, &probe)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("loadgen-prober".into())
            .spawn(move || run(probe, requests, until_ns, flag))
            .map_err(|e| format!("cannot start the prober thread: {e}"))?;
        Ok(Some(Prober { stop, handle }))
    }

    /// No new rounds from now on.
    pub fn stop(&self) {
        self.stop.store(true, Relaxed);
    }

    /// Stops, lets the probes in flight end (each within its timeout), returns them all.
    pub fn finish(self) -> Result<Tallies, String> {
        self.stop();
        self.handle
            .join()
            .map_err(|_| "the prober thread panicked".to_owned())?
    }
}

/// The prober's thread: one runtime, one task per probe.
struct Ctx {
    probe: Probe,
    until_ns: u64,
    stop: Arc<AtomicBool>,
    in_flight: Cell<usize>,
    tallies: RefCell<Tallies>,
}

fn run(
    probe: Probe,
    requests: Vec<Request>,
    until_ns: u64,
    stop: Arc<AtomicBool>,
) -> Result<Tallies, String> {
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot start the prober runtime: {e}"))?;
    let ctx = Rc::new(Ctx {
        probe,
        until_ns,
        stop,
        in_flight: Cell::new(0),
        tallies: RefCell::new(Tallies::default()),
    });
    rt.block_on(rounds(ctx.clone(), Rc::new(requests)));
    let tallies = ctx.tallies.borrow().clone();
    Ok(tallies)
}

/// A round every interval from now; a round missed (the thread was not scheduled in
/// time) is skipped rather than made up in a burst. Then the probes in flight end.
async fn rounds(ctx: Rc<Ctx>, requests: Rc<Vec<Request>>) {
    let start = mono_ns();
    let interval_ns = ctx.probe.interval_ms.max(1) * 1_000_000;
    let mut due = start;
    while wait_until(&ctx, due).await {
        for k in 0..requests.len() {
            launch(&ctx, &requests, k);
        }
        let elapsed = mono_ns().saturating_sub(start);
        due = start + (elapsed / interval_ns + 1) * interval_ns;
    }
    while ctx.in_flight.get() > 0 {
        monoio::time::sleep(STOP_POLL).await;
    }
}

/// Sleeps until `due`; false when the prober should stop instead.
async fn wait_until(ctx: &Ctx, due: u64) -> bool {
    loop {
        let now = mono_ns();
        if ctx.stop.load(Relaxed) || now >= ctx.until_ns {
            return false;
        }
        if now >= due {
            return true;
        }
        monoio::time::sleep(Duration::from_nanos(due - now).min(STOP_POLL)).await;
    }
}

/// Starts probe `k` of the round, unless the cap is reached.
fn launch(ctx: &Rc<Ctx>, requests: &Rc<Vec<Request>>, k: usize) {
    let kind = requests[k].kind;
    if ctx.in_flight.get() >= MAX_OUTSTANDING {
        ctx.tallies.borrow_mut().kind(kind).skipped += 1;
        return;
    }
    ctx.in_flight.set(ctx.in_flight.get() + 1);
    let (ctx, requests) = (ctx.clone(), requests.clone());
    monoio::spawn(async move {
        let timeout = Duration::from_millis(ctx.probe.timeout_ms);
        let sample = exchange::probe(&requests[k], timeout).await;
        ctx.tallies.borrow_mut().kind(kind).record(sample);
        ctx.in_flight.set(ctx.in_flight.get() - 1);
    });
}
