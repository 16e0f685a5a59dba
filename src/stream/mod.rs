//! The subscriber data plane: queue frames per connection, write them coalesced, learn
//! of peers closing, and free connections once the kernel is done with them.
//!
//! A delivery only pushes a shared frame onto the connection's [`out::Out`] and marks the
//! connection dirty; [`Worker::flush`] then starts one write per dirty connection that
//! has none in flight, carrying everything queued, and submits them all at once.

pub mod delivery;
pub mod epoll;
pub mod out;
pub mod plane;
pub mod ring;

use std::os::fd::RawFd;

use bytes::Bytes;

use crate::conn::{flags, CloseReason, Phase};
use crate::stream::plane::{Op, Token};
use crate::sys::{self, Readable};
use crate::worker::{Dirty, Worker};

/// Bytes a streaming subscriber may send us (it should send nothing) before it is closed.
const MAX_DISCARD: usize = 64 << 10;

/// Completions one turn collects at most; what it does not act on waits, in order.
pub const REAP_BUDGET: usize = 1024;
/// How long one turn acts on completions. A write's completion costs about 0.3 µs, a
/// peer close 12-30 µs (measured on this 2-core machine under fan-out: two system calls
/// on a socket whose kernel queue is full, the frames it held, the hub's bookkeeping),
/// so the budget is time, checked every [`REAP_CHECK`] completions. Unbounded, the turn
/// after 9,500 subscribers of one worker hung up together took 40 ms of CPU and 110 ms
/// of wall time, and new connections waited that long. Steady fan-out never reaches it.
pub const REAP_TIME: std::time::Duration = std::time::Duration::from_millis(1);
const REAP_CHECK: usize = 16;

impl Worker {
    /// Turns the request-phase connection `key` into a subscriber of `topics`, queueing
    /// `first` (head, `retry:`, gap notice, replay) ahead of every live event after `upto`.
    pub fn start_stream(
        &mut self,
        key: u32,
        topics: &[&str],
        upto: u64,
        first: impl IntoIterator<Item = Bytes>,
        token_ends_in: Option<std::time::Duration>,
    ) {
        let now = self.clock.now() as u32;
        let fd = self.conns[key as usize].fd;
        if let Some(bytes) = self.shared.config.sndbuf {
            sys::set_sndbuf(fd, bytes);
        }
        sys::set_nodelay(fd);
        for (i, topic) in topics.iter().enumerate() {
            let link = self.hub.subscribe(topic, key, i as u32);
            self.conns[key as usize].links.push(link);
        }
        let lifetime = self.lifetime_ticks();
        let expiry = token_ends_in.map(|d| {
            u32::try_from(self.clock.ticks(d))
                .unwrap_or(u32::MAX)
                .max(1)
        });
        let conn = &mut self.conns[key as usize];
        conn.enter(Phase::Stream);
        conn.last_id = upto;
        conn.last_write = now;
        // The stream ends at the earlier of its lifetime and its token's expiry.
        let end = match (lifetime, expiry) {
            (Some(l), Some(t)) if t < l => Some((t, CloseReason::Auth)),
            (Some(l), _) => Some((l, CloseReason::Lifetime)),
            (None, Some(t)) => Some((t, CloseReason::Auth)),
            (None, None) => None,
        };
        if let Some((ticks, reason)) = end {
            conn.expires = now.wrapping_add(ticks).max(1);
            conn.ending = Some(reason);
        }
        for frame in first {
            conn.out.push(frame);
        }
        let token = Token { key, gen: conn.gen };
        if self.plane.completes_later() {
            conn.set(flags::WATCHING);
        }
        self.plane.watch(token, fd);
        self.mark_dirty_first(key);
        self.stats().subscribers.add(1);
        self.stats().subscriptions.add(topics.len() as u64);
        self.stats().topics.set(self.hub.topics() as u64);
        self.schedule(key);
        self.kick.now();
    }

    /// A stream's maximum lifetime in ticks, jittered by up to a tenth so that streams
    /// opened together do not all end (and reconnect) together.
    fn lifetime_ticks(&mut self) -> Option<u32> {
        let lifetime = self.clock.ticks(self.shared.config.max_lifetime?);
        let jitter = self.random() % (lifetime / 10).max(1);
        Some(u32::try_from(lifetime - jitter).unwrap_or(u32::MAX).max(1))
    }

    /// Queues a frame that carries no event id (heartbeats, a final `retry:`).
    pub fn push_control(&mut self, key: u32, frame: Bytes) {
        self.conns[key as usize].out.push(frame);
        self.mark_dirty(key);
    }

    pub(crate) fn mark_dirty(&mut self, key: u32) {
        self.list_dirty(key, false);
    }

    /// Puts a new stream's first write ahead of every connection waiting: a client
    /// waiting for its response head must not wait for a whole fan-out pass (150-300 ms
    /// for 1 KiB to 19,000 subscribers here) to go by.
    pub(crate) fn mark_dirty_first(&mut self, key: u32) {
        self.list_dirty(key, true);
    }

    fn list_dirty(&mut self, key: u32, first: bool) {
        let conn = &mut self.conns[key as usize];
        if !conn.has(flags::DIRTY) {
            conn.set(flags::DIRTY);
            let entry = Dirty {
                key,
                since: self.turn_ms,
            };
            match first {
                true => self.dirty.push_front(entry),
                false => self.dirty.push_back(entry),
            }
        }
    }

    /// Starts a write for up to `flush_batch` dirty connections that have none in
    /// flight, oldest first, and submits them with one system call. If more remain, the
    /// loop takes another turn after letting the worker's other tasks run: publishes that
    /// arrive meanwhile are queued behind the frames of connections not yet written, and
    /// leave with them in one write.
    pub fn flush(&mut self) {
        // Completions of writes made here (all of them, on the epoll plane) can make
        // connections dirty again; they are handled by the next turn's reap.
        let deep_queue = self.shared.config.max_queued_frames / 2;
        // Every subscriber with frames waiting is sampled, written to now or still
        // waiting for the kernel to take its last write.
        let (mut lag, mut sampled, mut deep) = (0, 0, 0);
        for _ in 0..self.shared.config.flush_batch {
            let Some(Dirty { key, since }) = self.dirty.pop_front() else {
                break;
            };
            lag = lag.max(self.turn_ms.wrapping_sub(since));
            if let Some(conn) = self.conns.get_mut(key as usize) {
                conn.clear(flags::DIRTY);
                let frames = conn.out.len();
                if frames > 0 && conn.phase() == Phase::Stream {
                    sampled += 1;
                    deep += usize::from(frames > deep_queue);
                }
                if !conn.has(flags::WRITING) && !conn.has(flags::BLOCKED) && !conn.has(flags::HELD)
                {
                    self.start_write(key);
                }
            }
        }
        self.plane.submit();
        // The longest wait among this turn's writes is the worker's lag, unless nobody is
        // left waiting: then the next event is written at once.
        let lag = if self.dirty.is_empty() { 0 } else { lag };
        self.stats().lag.set(u64::from(lag));
        if sampled > 0 {
            self.stats().saturated.set(u64::from(deep * 2 > sampled));
        } else if self.dirty.is_empty() && self.writing == 0 {
            self.stats().saturated.set(0);
        }
        self.observe_latency();
    }

    fn start_write(&mut self, key: u32) {
        let now = self.clock.now() as u32;
        let conn = &mut self.conns[key as usize];
        if conn.out.is_empty() || matches!(conn.phase(), Phase::Closing | Phase::Request) {
            return;
        }
        let token = Token { key, gen: conn.gen };
        self.plane.write(token, conn.fd, &mut conn.out);
        conn.set(flags::WRITING);
        self.writing += 1;
        conn.last_write = now;
        if conn.stalled_since == 0 {
            conn.stalled_since = now.max(1);
        }
        self.stats().writes.add(1);
    }

    /// Collects the data plane's completions and acts on them, oldest first, for up to
    /// [`REAP_TIME`]; the rest wait for the next turn.
    pub fn reap(&mut self) {
        let mut done = std::mem::take(&mut self.completions);
        if done.len() < REAP_BUDGET {
            self.plane.complete(&mut done);
        }
        let start = std::time::Instant::now();
        let mut acted = 0;
        for c in done.iter() {
            if acted % REAP_CHECK == REAP_CHECK - 1 && start.elapsed() >= REAP_TIME {
                break;
            }
            acted += 1;
            let Some(conn) = self.conns.get(c.token.key as usize) else {
                continue;
            };
            if conn.gen != c.token.gen {
                continue;
            }
            match c.op {
                Op::Write => self.on_write(c.token.key, c.res),
                Op::Watch => self.on_watch(c.token.key, c.res),
                Op::Writable => self.on_writable(c.token.key),
            }
        }
        done.drain(..acted);
        self.completions = done;
    }

    fn on_write(&mut self, key: u32, res: i32) {
        let now = self.clock.now() as u32;
        let conn = &mut self.conns[key as usize];
        conn.clear(flags::WRITING);
        self.writing -= 1;
        if conn.phase() == Phase::Closing {
            self.finalize_if_done(key);
            return;
        }
        if res == -libc::EAGAIN {
            conn.set(flags::BLOCKED);
            return;
        }
        if res < 0 {
            self.close(key, CloseReason::from_errno(-res));
            return;
        }
        conn.out.consume(res as usize);
        if conn.out.is_empty() {
            conn.stalled_since = 0;
            if conn.phase() == Phase::Draining {
                let reason = conn.ending.unwrap_or(CloseReason::Shutdown);
                self.close(key, reason);
            }
        } else {
            conn.stalled_since = now.max(1);
            self.mark_dirty(key);
        }
        self.stats().bytes.add(res as u64);
    }

    fn on_writable(&mut self, key: u32) {
        let conn = &mut self.conns[key as usize];
        if conn.has(flags::BLOCKED) {
            conn.clear(flags::BLOCKED);
            self.mark_dirty(key);
        }
    }

    fn on_watch(&mut self, key: u32, res: i32) {
        let conn = &mut self.conns[key as usize];
        conn.clear(flags::WATCHING);
        if conn.phase() == Phase::Closing {
            self.finalize_if_done(key);
            return;
        }
        let hangup = (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) as i32;
        if res < 0 || res & hangup != 0 {
            self.close(key, CloseReason::Peer);
            return;
        }
        let sent = match sys::drain_readable(conn.fd) {
            Readable::Closed => return self.close(key, CloseReason::Peer),
            Readable::Discarded(n) => n,
        };
        // A subscriber has nothing to say; what it sends anyway is counted across
        // wake-ups, and past the budget it is closed. Only talkers get an entry.
        let total = self.chatter.entry(key).or_default();
        *total += sent;
        if *total > MAX_DISCARD {
            return self.close(key, CloseReason::Rejected);
        }
        let conn = &mut self.conns[key as usize];
        let token = Token { key, gen: conn.gen };
        if self.plane.completes_later() {
            conn.set(flags::WATCHING);
        }
        self.plane.watch(token, conn.fd);
    }

    /// Ends a subscriber now: leaves the hub and the wheel, counts the reason, and frees
    /// the entry as soon as the kernel holds nothing of it. Readers evicted as slow, and
    /// errors, are reset so their unsent data does not linger in kernel memory.
    pub fn close(&mut self, key: u32, reason: CloseReason) {
        let conn = &mut self.conns[key as usize];
        if conn.phase() == Phase::Closing {
            return;
        }
        let was_stream = conn.phase() != Phase::Request;
        if conn.has(flags::STATS) {
            crate::page::stats::unwatch();
        }
        // Its frames stay until the entry is released: a write in flight reads them.
        conn.enter(Phase::Closing);
        let links = std::mem::take(&mut conn.links);
        let fd = conn.fd;
        if matches!(reason, CloseReason::Slow | CloseReason::Error) {
            sys::set_abortive_close(fd);
        }
        // Wakes the pending watch and fails a pending send, so both complete promptly.
        sys::shutdown(fd, sys::Shut::Both);
        if self.shared.sequencer.is_clustered() && was_stream {
            let names: Vec<&str> = links.iter().map(|l| self.hub.topic_name(l.topic)).collect();
            self.shared.sequencer.unwatch(names.into_iter());
        }
        for link in &links {
            if let Some(moved) = self.hub.unsubscribe(*link) {
                self.conns[moved.conn as usize].links[moved.link as usize].pos = moved.pos;
            }
        }
        self.wheel.cancel(key);
        let stats = self.stats();
        stats.closes[reason.index()].add(1);
        if was_stream {
            stats.subscribers.sub(1);
            stats.subscriptions.sub(links.len() as u64);
            stats.topics.set(self.hub.topics() as u64);
        }
        self.finalize_if_done(key);
    }

    /// Frees the entry of a closing connection once no kernel operation refers to it.
    fn finalize_if_done(&mut self, key: u32) {
        let conn = &self.conns[key as usize];
        if conn.phase() != Phase::Closing || self.kernel_holds(key) {
            return;
        }
        let fd = conn.fd;
        self.plane.forget(fd);
        sys::close(fd);
        self.release(key);
    }

    /// Removes a connection's entry (its descriptor already closed or handed off).
    pub fn release(&mut self, key: u32) {
        if self.kernel_holds(key) {
            // Never reached (callers wait for the kernel), and must stay so: the kernel
            // may still read this entry's frames. Keeping the entry is the safe failure.
            debug_assert!(
                false,
                "released connection {key} with an operation in flight"
            );
            log::error!(key = key; "connection released while the kernel holds it; kept");
            return;
        }
        self.conns.remove(key as usize);
        self.chatter.remove(&key);
        self.wheel.cancel(key);
        self.shared
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.stats().connections.sub(1);
    }

    /// Whether the kernel may still read this entry's frames or report on its token (on
    /// the epoll plane every operation is over when its call returns).
    fn kernel_holds(&self, key: u32) -> bool {
        self.plane.completes_later() && self.conns[key as usize].in_kernel()
    }

    /// Registers a newly accepted connection; returns its key.
    pub fn admit(&mut self, fd: RawFd) -> u32 {
        self.next_gen = Token::next_gen(self.next_gen);
        let key = self.conns.insert(crate::conn::Conn::new(fd, self.next_gen)) as u32;
        self.stats().connections.add(1);
        key
    }
}
