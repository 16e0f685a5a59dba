//! The shutdown drain: stop accepting, then end every stream with a `retry:`, in batches
//! spread over `--drain`, and stop once nothing is left (or well past the period).

use std::time::Instant;

use super::Worker;
use crate::conn::{flags, CloseReason, Phase};
use crate::sys;

/// The progress of this worker's shutdown drain.
pub struct Drain {
    started: Instant,
    /// Subscribers to close, in batches spread over the drain period.
    queue: Vec<u32>,
    total: usize,
}

impl Worker {
    /// Ends the next batch of streams, so that all are gone by the end of the period.
    pub(super) fn advance_drain(&mut self) {
        if self.drain.is_none() {
            for &fd in &self.listener_fds {
                sys::shutdown(fd, sys::Shut::Read);
            }
            let queue: Vec<u32> = self.keys_in(Phase::Stream).collect();
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
            let stragglers: Vec<u32> = self.keys_in(Phase::Request).collect();
            for key in stragglers {
                let conn = &mut self.conns[key as usize];
                if !conn.has(flags::TIMED_OUT) {
                    conn.set(flags::TIMED_OUT);
                    sys::shutdown(conn.fd, sys::Shut::Both);
                }
            }
        }
    }

    fn keys_in(&self, phase: Phase) -> impl Iterator<Item = u32> + '_ {
        self.conns
            .iter()
            .filter(move |(_, c)| c.phase() == phase)
            .map(|(k, _)| k as u32)
    }

    /// Whether the loop can stop: draining and nothing left, or well past the deadline.
    pub(super) fn finished(&self) -> bool {
        let Some(drain) = &self.drain else {
            return false;
        };
        self.conns.is_empty() || drain.started.elapsed() > self.shared.config.drain * 2
    }
}
