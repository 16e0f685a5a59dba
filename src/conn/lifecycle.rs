//! What happens when a connection's timer fires, and the shutdown drain.
//!
//! Timers are coarse and lazy: each connection has at most one entry in the wheel, at
//! the earliest moment something *might* be due. Writes do not touch the wheel; when the
//! timer fires, the connection's `last_write`, `stalled_since` and `expires` say what is
//! really due, and the timer is set again from them.

use std::time::Instant;

use bytes::Bytes;

use super::{flags, CloseReason, Phase};
use crate::broadcast::frame::HEARTBEAT;
use crate::sys;
use crate::worker::Worker;

/// Ticks elapsed from `then` to `now` on the connections' wrapping 32-bit clock.
fn since(now: u64, then: u32) -> u64 {
    u64::from((now as u32).wrapping_sub(then))
}

/// Whether the 32-bit tick `t` is at or before `now` (within half the clock's range).
fn reached(now: u64, t: u32) -> bool {
    since(now, t) < (1 << 31)
}

/// The progress of this worker's shutdown drain.
pub struct Drain {
    started: Instant,
    /// Subscribers to close, in batches spread over the drain period.
    queue: Vec<u32>,
    total: usize,
}

impl Worker {
    /// Sets a connection's one timer to the earliest moment something may be due.
    pub fn schedule(&mut self, key: u32) {
        let now = self.clock.now();
        let cfg = &self.shared.config;
        let conn = &self.conns[key as usize];
        let after = |then: u32, wait: u64| now + wait.saturating_sub(since(now, then));
        let stalled = if conn.stalled_since == 0 {
            now as u32
        } else {
            conn.stalled_since
        };
        let mut due = match conn.phase() {
            // Idle: the next heartbeat. Busy: whichever comes first of the heartbeat check
            // (the queue may drain before it) and the stall limit.
            Phase::Stream => {
                let heartbeat = after(conn.last_write, self.clock.ticks(cfg.heartbeat));
                match conn.out.is_empty() {
                    true => heartbeat,
                    false => heartbeat.min(after(stalled, self.clock.ticks(cfg.write_timeout))),
                }
            }
            Phase::Draining => after(stalled, self.clock.ticks(cfg.write_timeout.min(cfg.drain))),
            Phase::Request | Phase::Closing => return,
        };
        if conn.expires != 0 {
            due = due.min(after(conn.expires, 0));
        }
        self.wheel.insert(key, due.max(now + 1));
    }

    /// Gives a request-phase connection `timeout` to deliver its next request (head and
    /// body); past it the task's read is interrupted and the connection answered 408.
    pub fn set_request_deadline(&mut self, key: u32, timeout: std::time::Duration) {
        self.conns[key as usize].clear(flags::TIMED_OUT | flags::ANSWERING);
        self.arm_request_timer(key, timeout);
    }

    /// The task is about to write an answer: its timer now bounds that write by the write
    /// timeout, and no longer the wait for the next request.
    pub fn set_answer_deadline(&mut self, key: u32) {
        self.conns[key as usize].set(flags::ANSWERING);
        self.arm_request_timer(key, self.shared.config.write_timeout);
    }

    fn arm_request_timer(&mut self, key: u32, timeout: std::time::Duration) {
        // The clock reads whole ticks rounded down; one more tick keeps the timer from
        // firing before `timeout` has really passed.
        let deadline = self.clock.now() + self.clock.ticks(timeout).max(1) + 1;
        self.wheel.insert(key, deadline);
        self.kick.before(self.clock.instant(deadline));
    }

    /// Step 4 of the loop: fire due timers, and advance the shutdown drain.
    pub fn expire_timers(&mut self) {
        let now = self.clock.now();
        while let Some(key) = self.wheel.poll(now) {
            if self.conns.contains(key as usize) {
                self.on_timer(key, now);
            }
        }
        if self.shared.is_draining() {
            self.advance_drain();
        }
    }

    fn on_timer(&mut self, key: u32, now: u64) {
        let cfg = &self.shared.config;
        let (hb, wt) = (
            self.clock.ticks(cfg.heartbeat),
            self.clock.ticks(cfg.write_timeout),
        );
        let conn = &mut self.conns[key as usize];
        match conn.phase() {
            Phase::Request => {
                conn.set(flags::TIMED_OUT);
                // Waiting for a request: end the read with end-of-file. Writing an answer
                // the client does not take: end the write too.
                let how = if conn.has(flags::ANSWERING) {
                    sys::Shut::Both
                } else {
                    sys::Shut::Read
                };
                sys::shutdown(conn.fd, how);
                return;
            }
            Phase::Closing => return,
            Phase::Draining => {
                let reason = conn.ending.unwrap_or(CloseReason::Shutdown);
                self.close(key, reason);
                return;
            }
            Phase::Stream => {}
        }
        if conn.expires != 0 && reached(now, conn.expires) {
            let reason = conn.ending.unwrap_or(CloseReason::Lifetime);
            self.end_stream(key, reason);
        } else if !conn.out.is_empty() {
            if conn.stalled_since != 0 && since(now, conn.stalled_since) >= wt {
                self.close(key, CloseReason::Slow);
                return;
            }
        } else if since(now, conn.last_write) >= hb {
            self.push_control(key, Bytes::from_static(HEARTBEAT));
            self.stats().heartbeats.add(1);
        }
        self.schedule(key);
    }

    /// Ends a stream gracefully: a `retry:` with per-connection jitter (so reconnects
    /// spread out), then FIN once it is written.
    pub fn end_stream(&mut self, key: u32, reason: CloseReason) {
        let retry = self.shared.config.retry.as_millis() as u64;
        let jitter = self.random() % retry.max(1);
        let conn = &mut self.conns[key as usize];
        if conn.phase() != Phase::Stream {
            return;
        }
        conn.enter(Phase::Draining);
        conn.ending = Some(reason);
        conn.out
            .push(Bytes::from(format!("retry: {}\n\n", retry + jitter)));
        if conn.stalled_since == 0 {
            conn.stalled_since = (self.clock.now() as u32).max(1);
        }
        self.mark_dirty(key);
        self.schedule(key);
    }

    /// Closes subscribers in batches so that all are gone by the end of the drain period.
    fn advance_drain(&mut self) {
        if self.drain.is_none() {
            sys::shutdown(self.listener_fd, sys::Shut::Read);
            let queue: Vec<u32> = self
                .conns
                .iter()
                .filter(|(_, c)| c.phase() == Phase::Stream)
                .map(|(k, _)| k as u32)
                .collect();
            let total = queue.len();
            self.drain = Some(Drain {
                started: Instant::now(),
                queue,
                total,
            });
        }
        let period = self.shared.config.drain.as_secs_f64().max(0.001);
        let drain = self.drain.as_mut().expect("set above");
        let share = (drain.started.elapsed().as_secs_f64() / period).min(1.0);
        let target_left = drain.total - (drain.total as f64 * share).ceil() as usize;
        let mut batch = Vec::new();
        while drain.queue.len() > target_left {
            batch.extend(drain.queue.pop());
        }
        let overdue = drain.started.elapsed() > self.shared.config.drain;
        for key in batch {
            if self.conns.contains(key as usize) {
                self.end_stream(key, CloseReason::Shutdown);
            }
        }
        if overdue {
            // Publishers and half-open handshakes get no more time than subscribers.
            let stragglers: Vec<u32> = self
                .conns
                .iter()
                .filter(|(_, c)| c.phase() == Phase::Request && !c.has(flags::TIMED_OUT))
                .map(|(k, _)| k as u32)
                .collect();
            for key in stragglers {
                let conn = &mut self.conns[key as usize];
                conn.set(flags::TIMED_OUT);
                sys::shutdown(conn.fd, sys::Shut::Both);
            }
        }
    }

    /// Whether the loop can stop: draining and nothing left, or well past the deadline.
    pub fn finished(&self) -> bool {
        let Some(drain) = &self.drain else {
            return false;
        };
        self.conns.is_empty() || drain.started.elapsed() > self.shared.config.drain * 2
    }

    /// A cheap per-worker random number (xorshift), for jitter only.
    pub fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapping_clock_orders_across_the_wrap() {
        assert_eq!(since(10, 4), 6);
        assert_eq!(since((1 << 32) + 5, u32::MAX), 6);
        assert!(reached(100, 100));
        assert!(reached(100, 50));
        assert!(!reached(100, 150));
        assert!(
            !reached(u64::from(u32::MAX), 3),
            "3 is just after the wrap, still ahead"
        );
    }
}
