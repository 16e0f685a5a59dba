//! A connection's way through its worker: admitted, given request deadlines, turned into
//! a stream, ended gracefully or closed, and released once the kernel holds nothing of
//! it. Phases change only through `Conn::enter`; these are its callers.

use std::os::fd::RawFd;
use std::time::Duration;

use bytes::Bytes;

use super::Worker;
use crate::broadcast::frame::closing_frame;
use crate::conn::lifecycle;
use crate::conn::{flags, CloseReason, Conn, Phase};
use crate::stream::plane::Token;
use crate::sys;

impl Worker {
    /// Registers a newly accepted connection; returns its key.
    pub(super) fn admit(&mut self, fd: RawFd) -> u32 {
        self.next_gen = Token::next_gen(self.next_gen);
        // Every answer and frame is a whole message the peer waits for: Nagle would hold
        // each small write behind the ACK of the last, and a delayed ACK is 40 ms
        // (pipelined publishes were answered 20 per 40 ms with it on).
        sys::set_nodelay(fd);
        let key = self.conns.insert(Conn::new(fd, self.next_gen)) as u32;
        self.stats().connections.add(1);
        key
    }

    /// Gives a request-phase connection `timeout` to deliver its next request (head and
    /// body); past it the task's read is interrupted and the connection answered 408.
    pub(super) fn set_request_deadline(&mut self, key: u32, timeout: Duration) {
        self.conns[key as usize].clear(flags::TIMED_OUT | flags::ANSWERING);
        self.arm_request_timer(key, timeout);
    }

    /// The task is about to write an answer: its timer now bounds that write by the write
    /// timeout, and no longer the wait for the next request.
    pub(super) fn set_answer_deadline(&mut self, key: u32) {
        self.conns[key as usize].set(flags::ANSWERING);
        self.arm_request_timer(key, self.shared.config.write_timeout);
    }

    fn arm_request_timer(&mut self, key: u32, timeout: Duration) {
        // The clock reads whole ticks rounded down; one more tick keeps the timer from
        // firing before `timeout` has really passed.
        let deadline = self.timers.now() + self.timers.ticks(timeout).max(1) + 1;
        self.timers.set(key, deadline);
        self.kick.before(self.timers.instant(deadline));
    }

    /// Turns the request-phase connection `key` into a subscriber of `topics`, queueing
    /// `first` (head, `retry:`, gap notice, replay) ahead of every live event after `upto`.
    pub(super) fn start_stream(
        &mut self,
        key: u32,
        topics: &[&str],
        upto: u64,
        first: impl IntoIterator<Item = Bytes>,
        token_ends_in: Option<Duration>,
    ) {
        let now = self.timers.now() as u32;
        let fd = self.conns[key as usize].fd;
        if let Some(bytes) = self.shared.config.sndbuf {
            sys::set_sndbuf(fd, bytes);
        }
        for (i, topic) in topics.iter().enumerate() {
            let link = self.hub.subscribe(topic, key, i as u32);
            self.conns[key as usize].links.push(link);
        }
        self.mirror_topic_flags();
        let lifetime = self.lifetime_ticks();
        let expiry = token_ends_in.map(|d| {
            u32::try_from(self.timers.ticks(d))
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
        self.writes.watch(conn, key);
        self.writes.dirty().mark_first(conn, key);
        self.stats().subscribers.add(1);
        self.stats().subscriptions.add(topics.len() as u64);
        self.stats().topics.set(self.hub.topics() as u64);
        self.schedule(key);
        self.kick.now();
    }

    /// Tells the publish gate which topics a subscribe or a close made heavy or light,
    /// and which hot topics lost their last subscriber here; tells the sequencer which
    /// topics it need no longer hand to this worker.
    fn mirror_topic_flags(&mut self) {
        let changes = self.hub.take_changes();
        if !changes.counts.is_empty() {
            self.shared.census.set(self.index, &changes.counts);
        }
        if !changes.emptied.is_empty() {
            let names = changes.emptied.iter().map(|t| &**t);
            self.shared.sequencer.unwatch(self.index, names);
        }
        for topic in changes.cooled {
            self.shared.hot.mark(&topic, false);
        }
        for (topic, heavy) in changes.crossed {
            self.shared.sequencer.heavy_topics().mark(&topic, heavy);
        }
    }

    /// A stream's maximum lifetime in ticks, jittered by up to a tenth so that streams
    /// opened together do not all end (and reconnect) together.
    fn lifetime_ticks(&mut self) -> Option<u32> {
        let lifetime = self.timers.ticks(self.shared.config.max_lifetime?);
        let jitter = self.random() % (lifetime / 10).max(1);
        Some(u32::try_from(lifetime - jitter).unwrap_or(u32::MAX).max(1))
    }

    /// Sets a subscriber's one timer to the earliest moment something may be due.
    pub(super) fn schedule(&mut self, key: u32) {
        let now = self.timers.now();
        if let Some(due) = lifecycle::due(&self.conns[key as usize], now, &self.limits) {
            self.timers.set(key, due);
        }
    }

    /// Ends a stream gracefully: a `retry:` with per-connection jitter (so reconnects
    /// spread out), then FIN once it is written.
    pub(super) fn end_stream(&mut self, key: u32, reason: CloseReason) {
        let retry = self.shared.config.retry.as_millis() as u64;
        let jitter = self.random() % retry.max(1);
        let now = self.timers.now() as u32;
        let conn = &mut self.conns[key as usize];
        if conn.phase() != Phase::Stream {
            return;
        }
        conn.enter(Phase::Draining);
        conn.ending = Some(reason);
        if conn.stalled_since == 0 {
            conn.stalled_since = now.max(1);
        }
        let frame = closing_frame(retry + jitter, conn.body());
        self.writes.push(conn, key, frame);
        self.schedule(key);
    }

    /// Ends a connection now: leaves the hub and the wheel, counts the reason, and frees
    /// the entry as soon as the kernel holds nothing of it. Readers evicted as slow, and
    /// errors, are reset so their unsent data does not linger in kernel memory.
    pub(super) fn close(&mut self, key: u32, reason: CloseReason) {
        let conn = &mut self.conns[key as usize];
        if conn.phase() == Phase::Closing {
            return;
        }
        let was_stream = conn.phase() != Phase::Request;
        if conn.phase() == Phase::Draining && !conn.out.is_empty() {
            let (frames, flags) = (conn.out.len(), conn.flags);
            log::debug!(key = key, frames = frames, flags = flags, reason = reason.name();
                "a draining subscriber is closed with frames unsent");
        }
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
        if was_stream && self.presence.is_some() {
            let topics: Vec<_> = links
                .iter()
                .map(|l| self.hub.topic_key(l.topic).clone())
                .collect();
            self.left(key, &topics);
        }
        for link in &links {
            if let Some(moved) = self.hub.unsubscribe(*link) {
                self.conns[moved.conn as usize].links[moved.link as usize].pos = moved.pos;
            }
        }
        self.mirror_topic_flags();
        self.timers.cancel(key);
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
    pub(super) fn finalize_if_done(&mut self, key: u32) {
        let conn = &self.conns[key as usize];
        if conn.phase() != Phase::Closing || self.writes.holds(conn) {
            return;
        }
        let fd = conn.fd;
        self.writes.forget(fd);
        sys::close(fd);
        self.release(key);
    }

    /// Removes a connection's entry (its descriptor already closed or handed off).
    pub(super) fn release(&mut self, key: u32) {
        if self.writes.holds(&self.conns[key as usize]) {
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
        self.writes.release(key);
        self.timers.cancel(key);
        self.shared
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.stats().connections.sub(1);
    }
}
