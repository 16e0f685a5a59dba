//! The subscriber data plane: queue frames per connection, write them coalesced, learn
//! of peers closing, and say when the kernel is done with a connection.
//!
//! A delivery only pushes a shared frame onto the connection's [`out::Out`] and marks the
//! connection dirty ([`DirtyList`]); [`Writes::flush`] then starts one write per dirty
//! connection that has none in flight, carrying everything queued, and submits them all
//! at once. [`Writes::settle`] turns each completion into the connection's next state,
//! and tells the worker when a connection is to be closed or freed: closing is the
//! worker's, since it touches the hub and the timers too.
//!
//! - [`plane`]: the kernel interface, on `ring` (a private io_uring) or `epoll`.
//! - [`out`]: one connection's queue of frames.
//! - [`delivery`]: the fan-out into those queues and the per-subscriber bound.
//! - `dirty`: the connections waiting for their next write, in two lanes.
//! - [`readers`]: the connections waiting for a request, which can end a long flush.
//! - [`reap`]: the completions, in two queues with a time budget each, and what each
//!   one does to its connection.
//! - `sealed`: TLS subscribers: frames sealed at write time, records opened at the
//!   close-watch.

pub mod delivery;
mod dirty;
pub mod epoll;
pub mod out;
pub mod plane;
pub mod readers;
mod reap;
pub mod ring;
mod sealed;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rustc_hash::FxHashMap;
use slab::Slab;

use crate::conn::{flags, CloseReason, Conn, Phase};
use crate::stream::plane::{Plane, Token};
use crate::stream::readers::{Readers, GROUP_TIME};
use crate::tls::session::Session;
use dirty::Lane;
pub use dirty::{Dirty, DirtyList};
pub use reap::{Collected, REAP_CHECK, REAP_TIME};

/// What a bulk write is taken to cost before one was measured.
const INITIAL_WRITE_NS: u64 = 10_000;

/// What one flush did, for the worker's counters.
pub struct Flushed {
    /// Writes started.
    pub started: u64,
    /// How long the oldest connection written had waited, in ms (0 when none is left
    /// waiting: the next event is then written at once).
    pub lag_ms: u32,
    /// Whether, in either lane, most subscribers with frames waiting hold more than half
    /// their bound; `None` when this flush saw none and some are still waiting (no new
    /// sample).
    pub saturated: Option<bool>,
    /// The flush stopped early because a waiting connection had a request in.
    pub cut: bool,
}

/// Queues frames between two groups of a flush's bulk lane; says whether it queued any
/// (see [`Writes::flush`]).
pub type Refill<'a> = dyn FnMut(&mut Slab<Conn>, &mut DirtyList) -> bool + 'a;

/// One flush's clock, what it started, and what it saw of each lane.
struct Pass {
    now: u32,
    stuck_after: u32,
    deep_queue: usize,
    /// How long the oldest connection written had waited, in ms.
    lag: u32,
    started: u64,
    /// The prompt lane's, then the bulk lane's.
    samples: [Sample; 2],
}

/// Subscribers with frames waiting that one lane's flush saw, and how many of those
/// held more than half their bound.
#[derive(Clone, Copy, Default)]
struct Sample {
    seen: usize,
    deep: usize,
}

impl Sample {
    fn majority_deep(self) -> bool {
        self.deep * 2 > self.seen
    }
}

/// What a completion leaves for the worker to do with its connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    Nothing,
    /// The connection is closing: free it if the kernel holds nothing more of it.
    Finalize,
    /// Close it, for this reason.
    Close(CloseReason),
}

/// A worker's subscriber writes: the kernel interface, the connections waiting for a
/// write, how many writes are in flight, the completions not yet acted on, and what
/// talkative subscribers have sent.
pub struct Writes {
    plane: Plane,
    dirty: DirtyList,
    writing: usize,
    /// Completions collected past a turn's reap budget (see [`reap`]).
    collected: Collected,
    /// Bytes each subscriber that sent anything has sent (it should send nothing).
    chatter: FxHashMap<u32, usize>,
    /// How long a bulk write takes at submit, in ns (a moving average): it sizes the
    /// groups a flush submits while connections wait for requests (see [`readers`]).
    write_ns: u64,
    /// The sessions of TLS subscribers (`flags::TLS`), by slab key.
    tls: FxHashMap<u32, Box<Session>>,
    /// Where TLS subscribers' frames are sealed: each write takes its bytes off the
    /// front, and a new buffer starts when this one is spent (the writes in flight keep
    /// the old one until they complete).
    scratch: BytesMut,
    /// What TLS subscribers' watches read and open, reused.
    heard: Vec<u8>,
}

impl Writes {
    pub fn new(plane: Plane) -> Writes {
        Writes {
            plane,
            dirty: DirtyList::default(),
            writing: 0,
            collected: Collected::default(),
            chatter: FxHashMap::default(),
            write_ns: INITIAL_WRITE_NS,
            tls: FxHashMap::default(),
            scratch: BytesMut::new(),
            heard: Vec::new(),
        }
    }

    pub fn dirty(&mut self) -> &mut DirtyList {
        &mut self.dirty
    }

    /// Queues a frame that carries no event id (a heartbeat, a notice), already framed as
    /// `conn`'s body is ([`Conn::body`]), and lists `conn`.
    pub fn push(&mut self, conn: &mut Conn, key: u32, frame: Bytes) {
        conn.out.push(frame);
        self.dirty.mark_prompt(conn, key);
    }

    /// Arms the peer-close watch of a subscriber.
    pub fn watch(&mut self, conn: &mut Conn, key: u32) {
        if self.plane.completes_later() {
            conn.set(flags::WATCHING);
        }
        self.plane.watch(Token { key, gen: conn.gen }, conn.fd);
    }

    /// Starts a write for up to `batch` dirty connections of each lane that have none in
    /// flight, the prompt lane first, oldest first in each, and submits them with one
    /// system call. `now` is the tick a write starts at; queues past `deep_queue` frames
    /// count towards saturation, unless their writes are stuck (no progress for
    /// `stuck_after` ticks, see [`Conn::stuck`]).
    ///
    /// While `readers` lists connections waiting for a request, or there is a `refill`,
    /// the bulk lane goes in groups of about [`GROUP_TIME`]. After each group, the
    /// flush ends if a listed connection has a request in (see [`readers`]); else
    /// `refill` may queue frames (events for narrow topics published meanwhile, see
    /// `delivery::Fanout::run_narrow`), and the prompt lane is written again before
    /// the bulk lane goes on.
    pub fn flush(
        &mut self,
        conns: &mut Slab<Conn>,
        batch: usize,
        deep_queue: usize,
        (now, stuck_after): (u32, u32),
        readers: &Readers,
        mut refill: Option<&mut Refill>,
    ) -> Flushed {
        // Every subscriber with frames waiting is sampled, written to now or still
        // waiting for the kernel to take its last write; one that stopped reading is
        // not a sign of the worker's load, and is left to its own bound. Each lane is
        // judged alone: thousands of one-frame notifications in the prompt lane say
        // nothing of whether a wide fan-out in the bulk lane keeps up.
        let mut pass = Pass {
            now,
            stuck_after,
            deep_queue,
            lag: 0,
            started: 0,
            samples: [Sample::default(); 2],
        };
        let (mut cut, mut bulk) = (false, None);
        for lane in [Lane::Prompt, Lane::Bulk] {
            let grouped_lane = lane == Lane::Bulk && (!readers.is_empty() || refill.is_some());
            let group = match grouped_lane {
                true => self.group(batch),
                false => batch,
            };
            let (mut grouped, start, before) = (0, Instant::now(), pass.started);
            let mut group_start = start;
            for _ in 0..batch {
                let Some(wrote) = self.start_next(lane, conns, &mut pass) else {
                    break;
                };
                grouped += usize::from(wrote);
                if grouped == group && group < batch {
                    self.submit_group(grouped, group_start);
                    (grouped, group_start) = (0, Instant::now());
                    if !readers.is_empty() && readers.any_input() {
                        cut = true;
                        break;
                    }
                    if refill.as_mut().is_some_and(|r| r(conns, &mut self.dirty)) {
                        for _ in 0..batch {
                            if self.start_next(Lane::Prompt, conns, &mut pass).is_none() {
                                break;
                            }
                        }
                        self.plane.submit();
                        group_start = Instant::now();
                    }
                }
            }
            if lane == Lane::Bulk {
                bulk = Some((start, pass.started - before));
            }
        }
        // Completions of writes made here (all of them, on the epoll plane) can make
        // connections dirty again; they are acted on by the next turn's reap.
        self.plane.submit();
        // Only on io_uring: the epoll loop yields through a 1 ms timer after every busy
        // turn (`worker::events`), so a flush cut there idles the worker and the bulk
        // lane falls behind (hot subscribers were evicted by the thousand), while its
        // publishers already get their answers in those yields.
        if let Some((start, written)) = bulk {
            let long = written > 0 && start.elapsed() > GROUP_TIME;
            readers.set_busy(long && self.plane.completes_later());
        }
        let samples = pass.samples;
        let saturated = match samples.iter().map(|s| s.seen).sum::<usize>() {
            0 if self.is_idle() => Some(false),
            0 => None,
            _ => Some(samples.iter().any(|s| s.majority_deep())),
        };
        Flushed {
            started: pass.started,
            lag_ms: if self.dirty.is_empty() { 0 } else { pass.lag },
            saturated,
            cut,
        }
    }

    /// Takes the oldest connection of `lane` and starts its write unless one is in
    /// flight; `None` when the lane is empty, else whether a write was started.
    fn start_next(&mut self, lane: Lane, conns: &mut Slab<Conn>, pass: &mut Pass) -> Option<bool> {
        let Dirty { key, since } = self.dirty.pop(lane)?;
        pass.lag = pass.lag.max(self.dirty.now_ms().wrapping_sub(since));
        let Some(conn) = conns.get_mut(key as usize) else {
            return Some(false);
        };
        conn.clear(flags::DIRTY);
        let frames = conn.out.len();
        if frames > 0 && conn.phase() == Phase::Stream && !conn.stuck(pass.now, pass.stuck_after) {
            let sample = &mut pass.samples[lane as usize];
            sample.seen += 1;
            sample.deep += usize::from(frames > pass.deep_queue);
        }
        let busy = flags::WRITING | flags::BLOCKED | flags::HELD;
        let wrote = conn.flags & busy == 0 && self.start_write(conn, key, pass.now);
        pass.started += u64::from(wrote);
        Some(wrote)
    }

    /// Bulk writes per group: about [`GROUP_TIME`] of them, at least one.
    fn group(&self, batch: usize) -> usize {
        (GROUP_TIME.as_nanos() as u64 / self.write_ns.max(1)).clamp(1, batch as u64) as usize
    }

    /// Submits a group of `n` writes started since `since`, and learns how long a write
    /// takes (on io_uring the copying happens at submit, on epoll in the write itself).
    fn submit_group(&mut self, n: usize, since: Instant) {
        self.plane.submit();
        let each = since.elapsed().as_nanos() as u64 / n.max(1) as u64;
        self.write_ns = (self.write_ns * 7 + each) / 8;
    }

    fn start_write(&mut self, conn: &mut Conn, key: u32, now: u32) -> bool {
        if matches!(conn.phase(), Phase::Closing | Phase::Request) {
            return false;
        }
        let token = Token { key, gen: conn.gen };
        if conn.has(flags::TLS) {
            if !self.start_sealed(conn, token) {
                return false;
            }
        } else {
            if conn.out.is_empty() {
                return false;
            }
            self.plane.write(token, conn.fd, &mut conn.out);
        }
        conn.set(flags::WRITING);
        self.writing += 1;
        conn.last_write = now;
        if conn.stalled_since == 0 {
            conn.stalled_since = now.max(1);
        }
        true
    }

    /// Whether the kernel may still read `conn`'s frames or report on its token (on the
    /// epoll plane every operation is over when its call returns).
    pub fn holds(&self, conn: &Conn) -> bool {
        self.plane.completes_later() && conn.in_kernel()
    }

    /// Stops watching a descriptor about to be closed.
    pub fn forget(&mut self, fd: std::os::fd::RawFd) {
        self.plane.forget(fd);
    }

    /// Drops what was kept about a connection whose entry is freed.
    pub fn release(&mut self, key: u32) {
        self.chatter.remove(&key);
        self.tls.remove(&key);
    }

    /// Whether writes or completions wait for a turn.
    pub fn has_work(&self) -> bool {
        !self.dirty.is_empty() || !self.collected.is_empty() || self.plane.has_collected()
    }

    /// Nothing waits to be written and nothing is in flight.
    pub fn is_idle(&self) -> bool {
        self.dirty.is_empty() && self.writing == 0
    }

    /// Makes the plane's descriptor readable, so the loop's park ends at monoio's next
    /// I/O pass (see `Plane::nudge`).
    pub fn nudge(&mut self) -> bool {
        self.plane.nudge()
    }
}

#[cfg(test)]
mod tests;
