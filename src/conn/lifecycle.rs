//! What a connection's timer means: when it is set, and what is due when it fires.
//!
//! Timers are coarse and lazy: each connection has at most one entry in the wheel, at
//! the earliest moment something *might* be due. Writes do not touch the wheel; when the
//! timer fires, the connection's `last_write`, `stalled_since` and `expires` say what is
//! really due ([`fired`]), and the timer is set again from them ([`due`]). The worker
//! carries out the answer (`worker::lifecycle`); nothing here has side effects.

use super::{flags, CloseReason, Conn, Phase};
use crate::sys::Shut;

/// A worker's time limits in ticks of its wheel, computed once from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub heartbeat: u64,
    pub write_timeout: u64,
    /// How long a draining stream may take to write its last bytes.
    pub drain_write: u64,
}

/// Ticks elapsed from `then` to `now` on the connections' wrapping 32-bit clock.
fn since(now: u64, then: u32) -> u64 {
    u64::from((now as u32).wrapping_sub(then))
}

/// Whether the 32-bit tick `t` is at or before `now` (within half the clock's range).
fn reached(now: u64, t: u32) -> bool {
    since(now, t) < (1 << 31)
}

/// The 32-bit tick `t` on the wheel's 64-bit clock: `now` once it is reached.
fn at(now: u64, t: u32) -> u64 {
    match reached(now, t) {
        true => now,
        false => now + u64::from(t.wrapping_sub(now as u32)),
    }
}

/// The earliest tick at which something may be due for a subscriber (always after
/// `now`); `None` for a connection whose timer is not the stream's (request phase) or
/// that needs none (closing).
pub fn due(conn: &Conn, now: u64, limits: &Limits) -> Option<u64> {
    let after = |then: u32, wait: u64| now + wait.saturating_sub(since(now, then));
    let stalled = match conn.stalled_since {
        0 => now as u32,
        t => t,
    };
    let mut due = match conn.phase() {
        // Idle: the next heartbeat. Busy: whichever comes first of the heartbeat check
        // (the queue may drain before it) and the stall limit.
        Phase::Stream => {
            let heartbeat = after(conn.last_write, limits.heartbeat);
            match conn.out.is_empty() {
                true => heartbeat,
                false => heartbeat.min(after(stalled, limits.write_timeout)),
            }
        }
        Phase::Draining => after(stalled, limits.drain_write),
        Phase::Request | Phase::Closing => return None,
    };
    if conn.expires != 0 {
        due = due.min(at(now, conn.expires));
    }
    Some(due.max(now + 1))
}

/// What a connection's fired timer calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    /// A request-phase connection is past its deadline: its task's read (or, while it
    /// writes an answer, its write too) is to be ended with this shutdown.
    Interrupt(Shut),
    /// Close now.
    Close(CloseReason),
    /// End the stream gracefully (a `retry:`, then FIN).
    End(CloseReason),
    /// Nothing was written for a heartbeat interval: send one.
    Heartbeat,
    /// Nothing due yet (frames are moving, or the connection is closing).
    Nothing,
}

/// What is due for `conn` at tick `now`, the moment its timer fired.
pub fn fired(conn: &Conn, now: u64, limits: &Limits) -> Fired {
    match conn.phase() {
        // Waiting for a request: end the read with end-of-file. Writing an answer the
        // client does not take: end the write too.
        Phase::Request => Fired::Interrupt(match conn.has(flags::ANSWERING) {
            true => Shut::Both,
            false => Shut::Read,
        }),
        Phase::Closing => Fired::Nothing,
        // Its last bytes took too long: close. A timer that fires sooner (set for an
        // earlier purpose) finds nothing due.
        Phase::Draining
            if conn.stalled_since == 0 || since(now, conn.stalled_since) >= limits.drain_write =>
        {
            Fired::Close(conn.ending.unwrap_or(CloseReason::Shutdown))
        }
        Phase::Draining => Fired::Nothing,
        Phase::Stream if conn.expires != 0 && reached(now, conn.expires) => {
            Fired::End(conn.ending.unwrap_or(CloseReason::Lifetime))
        }
        Phase::Stream if !conn.out.is_empty() => {
            let stalled =
                conn.stalled_since != 0 && since(now, conn.stalled_since) >= limits.write_timeout;
            match stalled {
                true => Fired::Close(CloseReason::Slow),
                false => Fired::Nothing,
            }
        }
        Phase::Stream if since(now, conn.last_write) >= limits.heartbeat => Fired::Heartbeat,
        Phase::Stream => Fired::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const LIMITS: Limits = Limits {
        heartbeat: 100,
        write_timeout: 300,
        drain_write: 50,
    };

    fn streaming(last_write: u32) -> Conn {
        let mut conn = Conn::new(-1, 0);
        conn.enter(Phase::Stream);
        conn.last_write = last_write;
        conn
    }

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

    #[test]
    fn an_idle_subscriber_is_due_a_heartbeat_an_interval_after_its_last_write() {
        let conn = streaming(40);
        assert_eq!(due(&conn, 60, &LIMITS), Some(140));
        assert_eq!(fired(&conn, 139, &LIMITS), Fired::Nothing);
        assert_eq!(fired(&conn, 140, &LIMITS), Fired::Heartbeat);
    }

    #[test]
    fn a_stalled_queue_is_closed_as_slow_at_the_write_timeout() {
        let mut conn = streaming(0);
        conn.out.push(Bytes::from_static(b"data: x\n\n"));
        conn.stalled_since = 10;
        conn.last_write = 10;
        assert_eq!(
            due(&conn, 20, &LIMITS),
            Some(110),
            "the heartbeat check comes first"
        );
        assert_eq!(
            fired(&conn, 110, &LIMITS),
            Fired::Nothing,
            "frames wait: no heartbeat"
        );
        assert_eq!(fired(&conn, 310, &LIMITS), Fired::Close(CloseReason::Slow));
    }

    #[test]
    fn a_stream_ends_at_its_expiry_with_its_reason() {
        let mut conn = streaming(0);
        conn.expires = 30;
        conn.ending = Some(CloseReason::Auth);
        assert_eq!(due(&conn, 5, &LIMITS), Some(30));
        assert_eq!(fired(&conn, 29, &LIMITS), Fired::Nothing);
        assert_eq!(fired(&conn, 30, &LIMITS), Fired::End(CloseReason::Auth));
        assert_eq!(due(&conn, 31, &LIMITS), Some(32), "overdue: at once");
        let wrapped = (1u64 << 32) + 7;
        conn.expires = 9;
        assert_eq!(
            due(&conn, wrapped, &LIMITS),
            Some(wrapped + 2),
            "across the wrap"
        );
    }

    #[test]
    fn a_request_past_its_deadline_is_interrupted_and_an_answer_too() {
        let mut conn = Conn::new(-1, 0);
        assert_eq!(due(&conn, 5, &LIMITS), None, "its deadline is the task's");
        assert_eq!(fired(&conn, 5, &LIMITS), Fired::Interrupt(Shut::Read));
        conn.set(flags::ANSWERING);
        assert_eq!(fired(&conn, 5, &LIMITS), Fired::Interrupt(Shut::Both));
    }

    #[test]
    fn a_draining_stream_is_closed_when_its_last_write_takes_too_long() {
        let mut conn = streaming(0);
        conn.enter(Phase::Draining);
        conn.stalled_since = 10;
        assert_eq!(due(&conn, 20, &LIMITS), Some(60));
        assert_eq!(
            fired(&conn, 60, &LIMITS),
            Fired::Close(CloseReason::Shutdown)
        );
    }
}
