//! The publisher: keep-alive connections on one monoio runtime, each owning a set of
//! topics and sending that set's events in seq order on an open-loop schedule (event m
//! of a connection is due at t0 + m / rate). Every event's data carries its seq and its
//! send time. A request carries `--pub-batch` events and up to `--pub-pipeline`
//! requests are in flight per connection; a seq counts as published only when its
//! request is answered 2xx.
//!
//! The stages, in the order a request passes through them:
//! - [`request`]: the bytes of a request (single from the templates, or NDJSON batch).
//! - [`window`]: the requests in flight on a connection and the seqs behind them.
//! - [`conn`]: the socket (TLS for https): one write of every due request, reads until
//!   the next is due.
//! - [`answer`]: one response framed off the bytes read, matched to the oldest request.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::hist::{self, Hist};
use crate::plan::{Plan, Publish};
use crate::stats::Failures;
use crate::sys::mono_ns;
use crate::tls::Connector;

mod answer;
mod conn;
mod request;
mod window;

pub use answer::complete;
pub use request::write_request;

use answer::{settle, Tally};
use conn::{Conn, Read, WRITE_BYTES};
use request::Builder;
use window::Window;

/// Pause after a failed publisher connect, so a refusing server is not hammered.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest a request may wait for its answer (or a write may block) before the
/// connection is dropped.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared with the parent's main thread while publishing.
#[derive(Debug, Default)]
pub struct Live {
    /// Events accepted so far (for the progress line).
    pub sent: AtomicU64,
    /// Set to end publishing early.
    pub stop: AtomicBool,
}

/// What publishing did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Events the server accepted (in requests answered 2xx).
    pub sent: u64,
    /// Requests written, whatever became of them.
    pub requests_sent: u64,
    /// Requests answered 2xx (`sent` / `--pub-batch`).
    pub requests_accepted: u64,
    /// Last accepted seq per topic (0: none).
    pub final_seq: Vec<u64>,
    /// Failed requests by kind (`http_<status>`, `refused`, `timeout`, `abandoned`, ...).
    pub errors: Failures,
    /// From t0 to the last answer.
    pub elapsed_s: f64,
    /// Send-to-answer time of accepted requests (µs).
    pub response: Hist,
    /// Stamp-to-written time of each write of requests (µs).
    pub write: Hist,
}

struct Ctx {
    plan: Arc<Plan>,
    publish: Publish,
    /// The publish endpoint's TLS connector; `None` for plain http.
    tls: Option<Connector>,
    t0_ns: u64,
    end_ns: u64,
    live: Arc<Live>,
    final_seq: RefCell<Vec<u64>>,
    tally: RefCell<Tally>,
}

impl Ctx {
    /// Whether new requests may go out: before the end, and not told to stop.
    fn sending(&self, now: u64) -> bool {
        now < self.end_ns && !self.live.stop.load(Relaxed)
    }
}

/// Publishes from `t0_ns` until `end_ns` (CLOCK_MONOTONIC) or until told to stop.
pub fn run(plan: Arc<Plan>, t0_ns: u64, end_ns: u64, live: Arc<Live>) -> Result<Outcome, String> {
    let publish = plan
        .publish
        .clone()
        .ok_or("this scenario does not publish")?;
    let tls = Connector::for_endpoint(&plan, &publish.endpoint)?;
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot start the publisher runtime: {e}"))?;
    let ctx = Rc::new(Ctx {
        final_seq: RefCell::new(vec![0; plan.topics as usize]),
        plan,
        publish,
        tls,
        t0_ns,
        end_ns,
        live,
        tally: RefCell::new(Tally::new(t0_ns)),
    });
    rt.block_on(async {
        let tasks: Vec<_> = (0..ctx.publish.conns)
            .map(|j| monoio::spawn(connection(ctx.clone(), j)))
            .collect();
        for t in tasks {
            t.await;
        }
    });
    let final_seq = ctx.final_seq.borrow().clone();
    let tally = ctx.tally.borrow().clone();
    debug_assert_eq!(
        tally.events,
        final_seq.iter().sum::<u64>(),
        "accepted events and seqs disagree"
    );
    Ok(Outcome {
        sent: final_seq.iter().sum(),
        requests_sent: tally.requests_sent,
        requests_accepted: tally.requests_accepted,
        final_seq,
        errors: tally.errors,
        elapsed_s: (tally.last_answer_ns.saturating_sub(t0_ns)) as f64 / 1e9,
        response: tally.response,
        write: tally.write,
    })
}

/// One publisher connection: its topics are `j, j + conns, j + 2 * conns, ...`. Every
/// turn runs the same steps; a step that fails drops the connection and counts every
/// request in flight as failed, and the next turn reconnects.
async fn connection(ctx: Rc<Ctx>, j: u32) {
    let topics: Vec<u32> = (j..ctx.plan.topics)
        .step_by(ctx.publish.conns as usize)
        .collect();
    if topics.is_empty() {
        return;
    }
    let rate = ctx.publish.rate * topics.len() as f64 / f64::from(ctx.plan.topics);
    let mut build = Builder::new(&ctx.plan, &topics);
    let mut window = Window::new(topics);
    let mut conn: Option<Conn> = None;
    loop {
        let now = mono_ns();
        // 1. Done once publishing is over and every answer is in.
        if !ctx.sending(now) && window.is_empty() {
            break;
        }
        // 2. Nothing in flight: wait for the next event's time.
        if window.is_empty() {
            if let Some(wait) = ahead_of_schedule(ctx.t0_ns, now, rate, window.events()) {
                monoio::time::sleep(wait).await;
                continue;
            }
        }
        // 3. (Re)connect; requests are in flight only on a live connection.
        let Some(c) = conn.as_mut() else {
            debug_assert!(
                window.is_empty(),
                "{} in flight without a connection",
                window.len()
            );
            let tls = ctx.tls.as_ref();
            match Conn::connect(ctx.publish.endpoint.addr, tls, EXCHANGE_TIMEOUT).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    ctx.tally.borrow_mut().errors.add_io(&e);
                    monoio::time::sleep(RETRY_PAUSE).await;
                }
            }
            continue;
        };
        // 4. Send every due request the window has room for, in one write.
        // 5. Read answers until the next request is due or the oldest times out.
        let alive = send_due(&ctx, c, &mut build, &mut window, rate).await
            && receive(&ctx, c, &mut window, rate).await;
        if !alive {
            conn = None;
        }
    }
    let mut final_seq = ctx.final_seq.borrow_mut();
    for (topic, seq) in window.acked() {
        final_seq[topic as usize] = seq;
    }
}

/// Writes every request due now that fits the window (up to [`WRITE_BYTES`] per
/// write); false if the connection failed.
async fn send_due(ctx: &Ctx, c: &mut Conn, build: &mut Builder, w: &mut Window, rate: f64) -> bool {
    let (p, now) = (&ctx.publish, mono_ns());
    let mut n = 0;
    while ctx.sending(now)
        && w.len() < p.pipeline as usize
        && ahead_of_schedule(ctx.t0_ns, now, rate, w.events()).is_none()
        && c.out.len() < WRITE_BYTES
    {
        build.push(p, w, now, &mut c.out);
        n += 1;
    }
    if n == 0 {
        return true;
    }
    ctx.tally.borrow_mut().requests_sent += n;
    match c.write(EXCHANGE_TIMEOUT).await {
        Ok(()) => {
            let written = mono_ns().saturating_sub(now);
            hist::record_ns(&mut ctx.tally.borrow_mut().write, written);
            true
        }
        Err(kind) => {
            ctx.tally.borrow_mut().fail(w, &kind);
            false
        }
    }
}

/// Reads once, until the next request is due (when the window has room for it) or
/// the oldest request times out, and settles the answers read; false if the
/// connection is done for.
async fn receive(ctx: &Ctx, c: &mut Conn, w: &mut Window, rate: f64) -> bool {
    let Some(oldest) = w.oldest_sent_ns() else {
        return true;
    };
    let timeout_ns = oldest + EXCHANGE_TIMEOUT.as_nanos() as u64;
    let room = ctx.sending(mono_ns()) && w.len() < ctx.publish.pipeline as usize;
    let wake_ns = match room {
        true => timeout_ns.min(due_ns(ctx.t0_ns, rate, w.events())),
        false => timeout_ns,
    };
    if wake_ns <= mono_ns() && wake_ns < timeout_ns {
        return true; // due already (the last write was full): send first
    }
    let read = c.read_until(wake_ns).await;
    let now = mono_ns();
    let mut tally = ctx.tally.borrow_mut();
    let eof = match read {
        Ok(Read::Bytes) => false,
        Ok(Read::Eof) => true,
        Ok(Read::Woken) if now < timeout_ns => return true,
        Ok(Read::Woken) => {
            tally.fail(w, "timeout");
            return false;
        }
        Err(kind) => {
            tally.fail(w, &kind);
            return false;
        }
    };
    let before = tally.events;
    let open = settle(&mut c.acc, eof, w, &mut tally, now);
    ctx.live.sent.fetch_add(tally.events - before, Relaxed);
    open
}

/// When event `sent` of a connection publishing `rate` events/s is due (rate 0: at once).
fn due_ns(t0_ns: u64, rate: f64, sent: u64) -> u64 {
    if rate <= 0.0 {
        return t0_ns;
    }
    t0_ns + (sent as f64 * 1e9 / rate) as u64
}

/// `Some(wait)` when the next event is not due yet (rate 0: never ahead).
fn ahead_of_schedule(t0_ns: u64, now: u64, rate: f64, sent: u64) -> Option<Duration> {
    let due_at = due_ns(t0_ns, rate, sent);
    (due_at > now).then(|| Duration::from_nanos(due_at - now).max(Duration::from_micros(200)))
}

#[cfg(test)]
mod tests;
