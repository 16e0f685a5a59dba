//! A subscriber's task: connect, stream, and (reconnect scenario) resume with
//! Last-Event-ID when loadgen drops it, until the run ends or the server closes it.
//!
//! - [`connect`]: socket bound to a source address, request, response head.
//! - [`stream`]: readiness-driven reads into the thread's shared buffer, in-place parse.
//! - [`track`]: per-subscriber seq bookkeeping and accounting of each block.

pub mod connect;
pub mod stream;
pub mod track;

use std::rc::Rc;
use std::time::Duration;

use crate::hist;
use crate::sys::mono_ns;
use crate::worker::Worker;
use track::{EndRequest, Life};

/// Pause between failed re-connect attempts, so a refusing server is not hammered.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Runs subscriber `i` of the thread to its end.
pub async fn run(w: Rc<Worker>, i: usize) {
    let started = mono_ns();
    w.subs.borrow_mut()[i].life = Life::Connecting;
    w.counters.borrow_mut().attempted += 1;
    // Boxed: the connect state is large (request, head buffer, timer) and short-lived;
    // unboxed it would set the size of every idle subscriber's future.
    let first = Box::pin(connect::open(&w, i)).await;
    w.inflight.set(w.inflight.get() - 1);
    match first {
        Err(kind) => {
            w.connect_failures.borrow_mut().add(&kind);
            w.subs.borrow_mut()[i].life = Life::Failed;
        }
        Ok(conn) => {
            let now = mono_ns();
            let t0 = w.ctl.t0_ns();
            let late = t0 != 0 && now >= t0;
            {
                let mut c = w.counters.borrow_mut();
                c.established += 1;
                c.late_joiners += u64::from(late);
            }
            hist::record_ns(&mut w.hists.borrow_mut().connect, now - started);
            {
                let mut subs = w.subs.borrow_mut();
                subs[i].life = Life::Live;
                subs[i].late = late;
            }
            live(&w, i, conn).await;
        }
    }
    w.tasks.set(w.tasks.get() - 1);
}

/// Streams, and re-connects whenever loadgen itself dropped the connection.
async fn live(w: &Worker, i: usize, mut conn: connect::Conn) {
    loop {
        stream::run(w, i, conn).await;
        let end = std::mem::replace(&mut w.subs.borrow_mut()[i].end, EndRequest::None);
        match end {
            EndRequest::Reconnect if !w.stopping.get() => match Box::pin(resume(w, i)).await {
                Some(c) => conn = c,
                None => break,
            },
            EndRequest::Reconnect | EndRequest::Stop => break,
            // Connected after the stop went round: ended by loadgen all the same.
            EndRequest::None if w.stopping.get() => break,
            EndRequest::None => {
                w.subs.borrow_mut()[i].life = Life::ClosedByServer;
                return;
            }
        }
    }
    w.subs.borrow_mut()[i].life = Life::Done;
}

/// Re-opens with Last-Event-ID; retries until it works or the run ends.
async fn resume(w: &Worker, i: usize) -> Option<connect::Conn> {
    let dropped = mono_ns();
    while !w.stopping.get() {
        match Box::pin(connect::open(w, i)).await {
            Ok(conn) => {
                w.counters.borrow_mut().reconnects += 1;
                hist::record_ns(&mut w.hists.borrow_mut().reconnect, mono_ns() - dropped);
                w.subs.borrow_mut()[i].resuming = true;
                return Some(conn);
            }
            Err(kind) => {
                w.reconnect_failures.borrow_mut().add(&kind);
                monoio::time::sleep(RECONNECT_BACKOFF).await;
            }
        }
    }
    None
}
