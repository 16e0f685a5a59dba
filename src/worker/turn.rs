//! Steps 2 to 5 of a turn: each hands its stage the parts of the worker it works on, and
//! carries out what the stage says must happen to a connection (close it, free it).

use std::time::Instant;

use bytes::Bytes;
use slab::Slab;

use super::Worker;
use crate::broadcast::frame::HEARTBEAT;
use crate::conn::lifecycle::{self, Fired};
use crate::conn::{flags, CloseReason, Conn};
use crate::stream::delivery::{Bound, HELD_AFTER, STUCK_AFTER};
use crate::stream::plane::Completion;
use crate::stream::{DirtyList, Refill, Settled, REAP_CHECK, REAP_TIME};
use crate::sys;

impl Worker {
    /// Step 2: acts on the data plane's completions, oldest first: the writes' for up to
    /// [`REAP_TIME`], then the peer closes' for up to as long again; the rest wait for
    /// the next turn.
    ///
    /// In one queue with one budget, a client that hung up 9,000 connections at once left
    /// 2,000-3,200 completions waiting at each turn for over a second (31-143 acted on
    /// per turn, each close 12-30 µs), the writes of a hot topic's readers among them:
    /// their worker stopped writing to them while their sockets were empty, and they were
    /// evicted as slow by the thousand (`benches/mixed.sh`, the personal load
    /// generator's end). Acting on every write at once instead made wide fan-out at 64 B
    /// 17% costlier per delivery: the budget also paces how soon a reader's next write
    /// starts, and so how many frames it carries.
    pub(super) fn reap(&mut self) {
        let done = self.writes.collect();
        let now = self.timers.now() as u32;
        let acted = (
            self.settle_for(&done.writes, now),
            self.settle_for(&done.closes, now),
        );
        self.writes.keep(done, acted);
    }

    /// Acts on `done` in order for up to [`REAP_TIME`]; returns how many it acted on.
    fn settle_for(&mut self, done: &[Completion], now: u32) -> usize {
        let start = Instant::now();
        let mut acted = 0;
        for c in done {
            if acted % REAP_CHECK == REAP_CHECK - 1 && start.elapsed() >= REAP_TIME {
                break;
            }
            acted += 1;
            self.settle(c, now);
        }
        acted
    }

    /// Applies one completion to its connection, if that connection is still the one it
    /// was issued for.
    fn settle(&mut self, c: &Completion, now: u32) {
        let key = c.token.key;
        let Some(conn) = self.conns.get_mut(key as usize) else {
            return;
        };
        if conn.gen != c.token.gen {
            return;
        }
        let stats = &self.shared.stats[self.index];
        match self.writes.settle(conn, c, now, stats) {
            Settled::Nothing => {}
            Settled::Finalize => self.finalize_if_done(key),
            Settled::Close(reason) => self.close(key, reason),
        }
    }

    /// Step 3: fans published events out to local subscribers, up to the turn's budget
    /// (`stream::delivery::FANOUT_BUDGET`); tells the publish gate which topics turned
    /// hot or cool, and evicts the subscribers it found over their bound.
    pub(super) fn drain_inbox(&mut self) {
        let inbox = &self.shared.inboxes[self.index];
        let bound = self.bound();
        let queued = self
            .fanout
            .run(inbox, &self.hub, &mut self.conns, &mut self.writes, &bound);
        self.stats().frames.add(queued);
        let found = self.fanout.found();
        for (topic, hot) in &found.flips {
            self.shared.hot.mark(topic, *hot);
        }
        for key in found.evict {
            self.close(key, CloseReason::Slow);
        }
    }

    /// What a subscriber may hold now (see [`Bound`]).
    fn bound(&self) -> Bound {
        let cfg = &self.shared.config;
        Bound {
            frames: cfg.max_queued_frames,
            bytes: cfg.max_queued_bytes,
            now: self.timers.now() as u32,
            stuck_after: self.timers.ticks(STUCK_AFTER) as u32,
            held_after: self.timers.ticks(HELD_AFTER) as u32,
        }
    }

    /// Step 4: fires due timers, and advances the shutdown drain.
    pub(super) fn expire_timers(&mut self) {
        let now = self.timers.now();
        while let Some(key) = self.timers.poll(now) {
            if self.conns.contains(key as usize) {
                self.on_timer(key, now);
            }
        }
        if self.shared.is_draining() {
            self.advance_drain();
        }
    }

    fn on_timer(&mut self, key: u32, now: u64) {
        let conn = &mut self.conns[key as usize];
        match lifecycle::fired(conn, now, &self.limits) {
            Fired::Interrupt(how) => {
                conn.set(flags::TIMED_OUT);
                sys::shutdown(conn.fd, how);
                return;
            }
            Fired::Close(reason) => return self.close(key, reason),
            Fired::End(reason) => self.end_stream(key, reason),
            Fired::Heartbeat => {
                let beat = conn.body().frame(&Bytes::from_static(HEARTBEAT));
                self.writes.push(conn, key, beat);
                self.stats().heartbeats.add(1);
            }
            Fired::Nothing => {}
        }
        self.schedule(key);
    }

    /// Step 5: starts up to `--flush-batch` pending writes, submitted with one system
    /// call. If more remain, the loop takes another turn after letting the worker's
    /// other tasks run: publishes that arrive meanwhile are queued behind the frames of
    /// connections not yet written, and leave with them in one write.
    ///
    /// On a worker with subscribers of narrow topics, events published to them while
    /// a long flush runs are fanned out and written between its groups (see
    /// `stream::delivery::Fanout::run_narrow`).
    pub(super) fn flush(&mut self) {
        let cfg = &self.shared.config;
        let (batch, deep) = (cfg.flush_batch, cfg.max_queued_frames / 2);
        let bound = self.bound();
        let stuck_after = self.timers.ticks(STUCK_AFTER) as u32;
        let inbox = &self.shared.inboxes[self.index];
        let (fanout, hub) = (&mut self.fanout, &self.hub);
        let mut narrow_frames = 0;
        let mut refill = |conns: &mut Slab<Conn>, dirty: &mut DirtyList| {
            let queued = match inbox.narrow() {
                0 => 0,
                _ => fanout.run_narrow(inbox, hub, conns, dirty, &bound),
            };
            narrow_frames += queued;
            queued > 0
        };
        let refill: Option<&mut Refill> = match hub.narrow_topics() {
            0 => None,
            _ => Some(&mut refill),
        };
        let flushed = self.writes.flush(
            &mut self.conns,
            batch,
            deep,
            (bound.now, stuck_after),
            &self.readers,
            refill,
        );
        let stats = &self.shared.stats[self.index];
        stats.frames.add(narrow_frames);
        stats.writes.add(flushed.started);
        stats.flushes_cut.add(u64::from(flushed.cut));
        stats.lag.set(u64::from(flushed.lag_ms));
        if let Some(saturated) = flushed.saturated {
            stats.saturated.set(u64::from(saturated));
        }
        // Publish-to-write latency of the batches whose writes this turn submitted.
        let now = Instant::now();
        for at in self.fanout.published() {
            stats.observe_latency(now.saturating_duration_since(at).as_secs_f64());
        }
    }
}
