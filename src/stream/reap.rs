//! The reap side of the data plane: the completions the kernel reports, kept in two
//! queues (writes, peer closes) with a time budget each, and what each one does to its
//! connection ([`Writes::settle`]).

use super::{Settled, Writes};
use crate::conn::{flags, CloseReason, Conn, Phase};
use crate::metrics::WorkerStats;
use crate::stream::plane::{Completion, Op};
use crate::stream::sealed::SEAL_FAILED;
use crate::sys::{self, Readable};

/// Bytes a streaming subscriber may send us (it should send nothing) before it is closed.
const MAX_DISCARD: usize = 64 << 10;

/// How long one turn acts on write completions, and again on peer closes: each kind
/// has its own budget (see `Worker::reap`). A write's completion costs about 0.3 µs, a
/// peer close 12-30 µs (measured on this 2-core machine under fan-out: two system calls
/// on a socket whose kernel queue is full, the frames it held, the hub's bookkeeping),
/// so the budget is time, checked every [`REAP_CHECK`] completions. Unbounded, the turn
/// after 9,500 subscribers of one worker hung up together took 40 ms of CPU and 110 ms
/// of wall time, and new connections waited that long.
pub const REAP_TIME: std::time::Duration = std::time::Duration::from_millis(1);
pub const REAP_CHECK: usize = 16;

/// Completions one turn collects at most while its writes' backlog is this long; what it
/// does not act on waits, in order.
pub const REAP_BUDGET: usize = 1024;

/// Completions to act on, oldest first, in two queues. In one queue with one budget, a
/// client that hung up 9,000 connections at once held up every other connection's write
/// completions for over a second (see `Worker::reap`).
#[derive(Default)]
pub struct Collected {
    /// Writes' completions, and writability reports.
    pub writes: Vec<Completion>,
    /// Peer closes (and anything else a close-watch reports).
    pub closes: Vec<Completion>,
}

impl Collected {
    pub(super) fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.closes.is_empty()
    }

    /// Moves the close-watches' reports among `writes[from..]` to the end of `closes`,
    /// both in order.
    pub(super) fn split_closes(&mut self, from: usize) {
        let mut kept = from;
        for i in from..self.writes.len() {
            let c = self.writes[i];
            if c.op == Op::Watch {
                self.closes.push(c);
            } else {
                self.writes[kept] = c;
                kept += 1;
            }
        }
        self.writes.truncate(kept);
    }
}

impl Writes {
    /// The completions to act on this turn, oldest first: those left from the last turn,
    /// and what the kernel finished since, while fewer than [`REAP_BUDGET`] writes wait.
    /// Give them back with [`Writes::keep`].
    pub fn collect(&mut self) -> Collected {
        let mut done = std::mem::take(&mut self.collected);
        if done.writes.len() < REAP_BUDGET {
            let old = done.writes.len();
            self.plane.complete(&mut done.writes);
            done.split_closes(old);
        }
        done
    }

    /// Takes back what [`Writes::collect`] gave, keeping all but the first `acted` of
    /// each queue (writes, closes).
    pub fn keep(&mut self, mut done: Collected, (writes, closes): (usize, usize)) {
        done.writes.drain(..writes);
        done.closes.drain(..closes);
        self.collected = done;
    }

    /// Applies one completion to its connection, `conn`, at tick `now`.
    pub fn settle(
        &mut self,
        conn: &mut Conn,
        c: &Completion,
        now: u32,
        stats: &WorkerStats,
    ) -> Settled {
        let key = c.token.key;
        match c.op {
            Op::Write => self.on_write(conn, key, c.res, now, stats),
            Op::Watch => self.on_watch(conn, key, c.res),
            Op::Writable => {
                if conn.has(flags::BLOCKED) {
                    conn.clear(flags::BLOCKED);
                    self.dirty.mark(conn, key);
                }
                Settled::Nothing
            }
        }
    }

    fn on_write(
        &mut self,
        conn: &mut Conn,
        key: u32,
        res: i32,
        now: u32,
        stats: &WorkerStats,
    ) -> Settled {
        conn.clear(flags::WRITING);
        self.writing -= 1;
        if conn.phase() == Phase::Closing {
            return Settled::Finalize;
        }
        if res == -libc::EAGAIN {
            conn.set(flags::BLOCKED);
            return Settled::Nothing;
        }
        if res == SEAL_FAILED && conn.has(flags::TLS) {
            return Settled::Close(CloseReason::Tls);
        }
        if res < 0 {
            return Settled::Close(CloseReason::from_errno(-res));
        }
        stats.bytes.add(res as u64);
        let more = match conn.has(flags::TLS) {
            true => self.wrote_sealed(key, res as usize),
            false => {
                conn.out.consume(res as usize);
                false
            }
        };
        if more || !conn.out.is_empty() {
            conn.stalled_since = now.max(1);
            self.dirty.mark(conn, key);
            return Settled::Nothing;
        }
        conn.stalled_since = 0;
        match conn.phase() {
            Phase::Draining => Settled::Close(conn.ending.unwrap_or(CloseReason::Shutdown)),
            _ => Settled::Nothing,
        }
    }

    fn on_watch(&mut self, conn: &mut Conn, key: u32, res: i32) -> Settled {
        conn.clear(flags::WATCHING);
        if conn.phase() == Phase::Closing {
            return Settled::Finalize;
        }
        let hangup = (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) as i32;
        if res < 0 || res & hangup != 0 {
            return Settled::Close(CloseReason::Peer);
        }
        let sent = match conn.has(flags::TLS) {
            true => match self.hear(conn, key) {
                Ok(n) => n,
                Err(reason) => return Settled::Close(reason),
            },
            false => match sys::drain_readable(conn.fd) {
                Readable::Closed => return Settled::Close(CloseReason::Peer),
                Readable::Discarded(n) => n,
            },
        };
        // A subscriber has nothing to say; what it sends anyway is counted across
        // wake-ups, and past the budget it is closed. Only talkers get an entry.
        let total = self.chatter.entry(key).or_default();
        *total += sent;
        if *total > MAX_DISCARD {
            return Settled::Close(CloseReason::Rejected);
        }
        self.watch(conn, key);
        Settled::Nothing
    }
}
