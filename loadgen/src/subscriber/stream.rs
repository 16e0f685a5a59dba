//! The receive path: wait for readability (a poll that holds no buffer), read into the
//! thread's shared buffer (decrypted there, for TLS), undo chunked framing in place,
//! parse blocks in place, and keep only an incomplete block's bytes per connection. No
//! allocation per event.

use std::time::Duration;

use super::connect::Conn;
use super::track::{self, Clock, EndRequest};
use crate::control::Phase;
use crate::response::{Body, Dechunker};
use crate::sse;
use crate::sys::mono_ns;
use crate::tls::Stream;
use crate::worker::Worker;

/// Free space guaranteed after the carried bytes for each read.
const MIN_READ: usize = 16 * 1024;
/// Largest incomplete block kept: the biggest payload loadgen sends (1 MiB) plus
/// framing; a stream that never ends a block past this is cut as `bad_response`.
const MAX_CARRY: usize = (1 << 20) + 4096;
/// Carry capacity kept between reads; above it the memory is given back, so a
/// burst of large events does not pin memory on every idle connection.
const KEEP_CARRY_CAPACITY: usize = 4096;
/// How often a stalled slow subscriber looks whether draining began.
const STALL_POLL: Duration = Duration::from_millis(20);
/// Longest sleep of a stalled subscriber before publishing is due to end, so that an
/// early stop is still noticed quickly.
const STALL_COARSE: Duration = Duration::from_millis(250);

/// What one readiness wake-up found.
enum Read {
    Open,
    Closed,
}

/// Streams the connection until the server closes it or loadgen ends it.
pub async fn run(w: &Worker, i: usize, conn: Conn) {
    let Conn {
        mut stream,
        body,
        mut pending,
    } = conn;
    w.subs.borrow_mut()[i].fd = stream.fd();
    let mut dechunk = (body == Body::Chunked).then(Dechunker::new);
    let mut carry = Vec::new();
    let mut open = first_bytes(w, i, &mut pending, &mut carry, &mut dechunk);
    while open {
        if should_stall(w, i) {
            Box::pin(stall(w)).await;
        }
        if w.stopping.get()
            || w.subs.borrow()[i].end == EndRequest::Stop
            || stream.readable().await.is_err()
        {
            break;
        }
        let read = read_some(w, i, &mut stream, &mut carry, &mut dechunk);
        open = matches!(read, Read::Open);
    }
    w.subs.borrow_mut()[i].fd = -1;
    drop(stream);
}

/// Accounts the body bytes that arrived with the response head.
fn first_bytes(
    w: &Worker,
    i: usize,
    pending: &mut [u8],
    carry: &mut Vec<u8>,
    dechunk: &mut Option<Dechunker>,
) -> bool {
    let n = match dechunk {
        Some(d) => match d.decode(pending) {
            Ok(n) => n,
            Err(_) => return false,
        },
        None => pending.len(),
    };
    carry.extend_from_slice(&pending[..n]);
    w.counters.borrow_mut().bytes += n as u64;
    let used = consume(w, i, carry);
    carry.drain(..used);
    !dechunk.as_ref().is_some_and(Dechunker::is_done)
}

/// Reads until the socket is drained (a short read) or closed.
fn read_some(
    w: &Worker,
    i: usize,
    stream: &mut Stream,
    carry: &mut Vec<u8>,
    dechunk: &mut Option<Dechunker>,
) -> Read {
    let mut buf = w.buf.borrow_mut();
    loop {
        let c = carry.len();
        if c > MAX_CARRY {
            return Read::Closed;
        }
        if buf.len() < c + MIN_READ {
            buf.resize(c + MIN_READ, 0);
        }
        buf[..c].copy_from_slice(carry);
        let space = buf.len() - c;
        let n = match stream.recv_nowait(&mut buf[c..]) {
            Ok(0) => return Read::Closed,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Read::Open,
            Err(_) => return Read::Closed,
        };
        let m = match dechunk {
            Some(d) => match d.decode(&mut buf[c..c + n]) {
                Ok(m) => m,
                Err(_) => return Read::Closed,
            },
            None => n,
        };
        w.counters.borrow_mut().bytes += m as u64;
        let used = consume(w, i, &buf[..c + m]);
        carry.clear();
        if carry.capacity() > KEEP_CARRY_CAPACITY && used == c + m {
            *carry = Vec::new();
        }
        carry.extend_from_slice(&buf[used..c + m]);
        if dechunk.as_ref().is_some_and(Dechunker::is_done) {
            return Read::Closed;
        }
        if n < space {
            return Read::Open;
        }
    }
}

/// Parses and accounts every complete block; returns the bytes used.
fn consume(w: &Worker, i: usize, bytes: &[u8]) -> usize {
    let clock = Clock {
        now_ns: mono_ns(),
        slow_phase_ns: w.slow_phase_ns.get(),
        keep_ids: w.plan.reconnect.is_some(),
    };
    let mut subs = w.subs.borrow_mut();
    let sub = &mut subs[i];
    let (mut c, mut h) = (w.counters.borrow_mut(), w.hists.borrow_mut());
    sse::for_each_block(bytes, |b| track::on_block(sub, b, clock, &mut c, &mut h))
}

/// A slow subscriber stops reading once the slow phase has begun, until draining.
fn should_stall(w: &Worker, i: usize) -> bool {
    w.subs.borrow()[i].slow && w.ctl.phase() == Phase::Running && mono_ns() >= w.slow_phase_ns.get()
}

/// Holds a slow subscriber without reading until draining (or the end) begins:
/// coarse sleeps until the planned end of publishing, short polls after it.
async fn stall(w: &Worker) {
    let planned_end = w.ctl.t0_ns() + w.plan.duration_ms * 1_000_000;
    while w.ctl.phase() == Phase::Running && !w.stopping.get() {
        let ahead = planned_end.saturating_sub(mono_ns());
        let nap = if ahead > 0 {
            Duration::from_nanos(ahead).min(STALL_COARSE)
        } else {
            STALL_POLL
        };
        monoio::time::sleep(nap).await;
    }
}
