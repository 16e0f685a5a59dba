//! The fan-out and the per-subscriber delivery policy: every event in the inbox goes to
//! every local subscriber of its topics, as a reference-counted clone of the one shared
//! frame, unless that subscriber already has it or is over its bound.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustc_hash::FxHashSet;
use slab::Slab;

use crate::broadcast::hub::{Hub, HEAVY};
use crate::broadcast::inbox::{Batch, Event, Inbox};
use crate::conn::{flags, Conn, Phase};
use crate::stream::{DirtyList, Writes};

/// Frames one loop turn may queue in fan-out before the worker's other tasks (accepts,
/// handshakes, publishers) run again; a turn always finishes the event it started.
/// Measured under 1 KiB saturation (19,000 subscribers, two workers, this 2-core
/// machine): a queued frame costs 0.3-0.6 µs of CPU (both workers bump the same frame's
/// reference count), so this is 2.5-5 ms per turn. At 32 Ki frames a turn spent up to
/// 20 ms of CPU here, and a new connection waited 100 ms for its accept. Unbounded, one
/// turn took every batch that had piled up during the last one, up to 225 ms.
pub const FANOUT_BUDGET: usize = 8 << 10;

/// Frames one [`Fanout::run_narrow`] may queue between two groups of a flush: the
/// publish gate keeps up to a queue bound of events to narrow topics in an inbox
/// (`Shared::publish_capacity`), which this takes at one subscriber each.
pub const NARROW_BUDGET: usize = 1 << 10;

/// Which batches [`Fanout::fan`] takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    Any,
    /// Up to the first batch to a heavy topic, or with a notice (which may go to every
    /// subscriber).
    Narrow,
}

/// Without progress for this long, a subscriber's writes count as stuck: it no longer
/// counts towards a hot topic or a saturated worker, so the publish gate never paces
/// anyone for a connection that stopped reading; its own bound evicts it. Longer than
/// the longest turn measured here (a 1 KiB fan-out pass over 19,000 subscribers on two
/// workers, 150–300 ms), since a reader's progress is seen only when its worker reaps
/// the completion.
pub const STUCK_AFTER: Duration = Duration::from_secs(1);

/// A subscriber whose write has waited this long for the kernel without progress is
/// held to its bound itself (see [`queue`]); before that it gets
/// [`BOUND_WHILE_READING`] times the room. A write in flight alone says nothing: with
/// small send buffers a reader that keeps reading has one in flight nearly always, and
/// one turn's fan-out of a pipelined burst (up to a bound's worth of events, see
/// `Shared::publish_capacity`) put such readers over their bound and had them evicted
/// (tests/flood.rs, `a_burst_is_paced_and_evicts_no_reader`, failed 5 runs in 8).
pub const HELD_AFTER: Duration = Duration::from_millis(100);

/// A topic is hot on a worker only with at least this many of its subscribers there
/// behind while still reading: pacing a publisher is the answer to subscribers that
/// together cannot keep up, and a few slow ones are better evicted (they resume with
/// `Last-Event-ID`) than allowed to pace a publisher that other topics share.
pub const HOT_MIN: usize = 8;

/// What a subscriber may hold before it is evicted, and when its writes count as
/// stuck; in ticks of the worker's clock.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// `--max-queued-frames`.
    pub frames: usize,
    /// `--max-queued-bytes`.
    pub bytes: usize,
    /// The tick of this fan-out.
    pub now: u32,
    /// [`STUCK_AFTER`] in ticks.
    pub stuck_after: u32,
    /// [`HELD_AFTER`] in ticks.
    pub held_after: u32,
}

/// A worker's fan-out between turns: where the last turn stopped, who was found over
/// their bound, and when the batches fanned out were published.
#[derive(Default)]
pub struct Fanout {
    /// The batch being fanned out and the index of its next event, when a turn's budget
    /// ran out; the next turn resumes there, before the inbox.
    resume: Option<(Arc<Batch>, usize)>,
    /// Batches behind `resume`, taken from the inbox by the express pass and still
    /// counted in its backlog, oldest first: they are fanned out before the inbox's.
    behind: VecDeque<Arc<Batch>>,
    /// The express pass's blocked topics (hub slots), kept for their allocation.
    blocked: FxHashSet<u32>,
    /// What the fan-outs since the last [`Fanout::found`] found.
    found: Found,
    /// When each batch finished this turn was published (for the latency metric).
    published: Vec<Instant>,
}

impl Fanout {
    /// Moves published events from `inbox` into subscriber queues, in id order, until
    /// the turn's [`FANOUT_BUDGET`] of queued frames is spent; the rest waits for the next
    /// turn (the inbox's backlog then holds publishers back, see
    /// `Shared::publish_capacity`). Returns the number of frames queued.
    pub fn run(
        &mut self,
        inbox: &Inbox,
        hub: &Hub,
        conns: &mut Slab<Conn>,
        writes: &mut Writes,
        bound: &Bound,
    ) -> u64 {
        inbox.begin_drain();
        let (queued, budget) = self.fan(inbox, hub, conns, writes.dirty(), bound, Only::Any);
        // What is left for later turns starts with a batch whose publish time is known,
        // so that the publish gate sees how long the oldest event has waited.
        if self.resume.is_none() && budget == 0 {
            self.resume = self.next(inbox).map(|batch| (batch, 0));
        }
        inbox.set_backlog(self.resume.as_ref().map(|(batch, _)| batch.published_at));
        queued
    }

    /// Between two groups of a long flush (see `Writes::flush`): fans out the batches at
    /// the head of `inbox` for as long as they are to no heavy topic, in order and up to
    /// [`NARROW_BUDGET`] frames; the first heavy batch met (or one with a notice) waits
    /// for the next turn. Behind a batch left over, narrow events go only where
    /// nothing ahead is for (the express pass, see `express`). Returns the number of
    /// frames queued.
    ///
    /// A flush under 1 KiB saturation takes about 1 ms on average here and up to tens;
    /// an event to a topic of one subscriber published meanwhile waited for the next
    /// turn. In issue 14's mixed run (`benches/mixed.sh`, 11 runs of each build) this
    /// took its median delivery latency from 1.54 ms to 0.96 ms (alone: 0.1 ms); the
    /// 99th percentile, 10-40 ms either way, is the two cores' scheduling.
    pub fn run_narrow(
        &mut self,
        inbox: &Inbox,
        hub: &Hub,
        conns: &mut Slab<Conn>,
        dirty: &mut DirtyList,
        bound: &Bound,
    ) -> u64 {
        inbox.begin_drain();
        let mut queued = 0;
        if self.resume.is_none() {
            queued = self.fan(inbox, hub, conns, dirty, bound, Only::Narrow).0;
        }
        if self.resume.is_some() {
            queued += self.express(inbox, hub, conns, dirty, bound);
        }
        inbox.set_backlog(self.resume.as_ref().map(|(batch, _)| batch.published_at));
        queued
    }

    /// The oldest batch not yet begun, no longer counted in the inbox's backlog.
    fn next(&mut self, inbox: &Inbox) -> Option<Arc<Batch>> {
        match self.behind.pop_front() {
            Some(batch) => {
                inbox.finished(&batch);
                Some(batch)
            }
            None => inbox.pop(),
        }
    }

    /// Fans out batches, the one left over first, then the inbox's, until the budget
    /// ([`FANOUT_BUDGET`], or [`NARROW_BUDGET`] for `Only::Narrow`) is spent, the
    /// inbox is empty or, for `Only::Narrow`, a heavy batch or a notice is met (kept as
    /// the next).
    /// Returns the frames queued and the budget left.
    fn fan(
        &mut self,
        inbox: &Inbox,
        hub: &Hub,
        conns: &mut Slab<Conn>,
        dirty: &mut DirtyList,
        bound: &Bound,
        only: Only,
    ) -> (u64, usize) {
        let mut budget = match only {
            Only::Any => FANOUT_BUDGET,
            Only::Narrow => NARROW_BUDGET,
        };
        let mut queued = 0u64;
        while budget > 0 {
            let (batch, from) = match self.resume.take() {
                Some(resume) => resume,
                None => match self.next(inbox) {
                    Some(batch) => (batch, 0),
                    None => break,
                },
            };
            if only == Only::Narrow && (batch.heavy || batch.notice.is_some()) {
                self.resume = Some((batch, from));
                break;
            }
            if from == 0 {
                if let Some((topic, frame)) = &batch.notice {
                    notify(hub, conns, dirty, topic.as_deref(), frame);
                }
            }
            for (i, event) in batch.events.iter().enumerate().skip(from) {
                if budget == 0 {
                    self.resume = Some((batch.clone(), i));
                    break;
                }
                let fanned = fan_out(hub, conns, dirty, &mut self.found, event, bound);
                // Frames queued stand for the visits: a subscriber that already had the
                // event costs only a comparison.
                budget = budget.saturating_sub((fanned as usize).max(1));
                queued += fanned;
            }
            if self.resume.is_none() {
                self.published.push(batch.published_at);
            }
        }
        (queued, budget)
    }

    /// Whether published events wait for a later turn.
    pub fn pending(&self, inbox: &Inbox) -> bool {
        self.resume.is_some() || !self.behind.is_empty() || !inbox.is_empty()
    }

    /// Who was found over their bound, and which topics flipped, since the last call.
    pub fn found(&mut self) -> Found {
        std::mem::take(&mut self.found)
    }

    /// When the batches fanned out since the last call were published.
    pub fn published(&mut self) -> std::vec::Drain<'_, Instant> {
        self.published.drain(..)
    }
}

/// Queues an id-less frame to the subscribers of `topic`, or to every subscriber.
fn notify(
    hub: &Hub,
    conns: &mut Slab<Conn>,
    dirty: &mut DirtyList,
    topic: Option<&str>,
    frame: &Bytes,
) {
    let keys: Vec<u32> = match topic {
        Some(topic) => hub.subscribers(topic).iter().map(|s| s.conn).collect(),
        None => conns
            .iter()
            .filter(|(_, c)| c.phase() == Phase::Stream)
            .map(|(k, _)| k as u32)
            .collect(),
    };
    for key in keys {
        let conn = &mut conns[key as usize];
        let frame = conn.body().frame(frame);
        conn.out.push(frame);
        dirty.mark_prompt(conn, key);
    }
}

/// What fan-outs found besides the frames they queued.
#[derive(Default)]
pub struct Found {
    /// Subscribers pushed over their queue bound, to be evicted as slow after the walk
    /// (closing one mid-walk would reorder the list being walked).
    pub evict: Vec<u32>,
    /// Topics that became hot (most of their subscribers hold more than half their
    /// bound), or stopped being hot: only publishes to hot topics are paced while the
    /// worker is saturated (see `Shared::publish_capacity`).
    pub flips: Vec<(Arc<str>, bool)>,
}

/// Queues one event for every local subscriber of its topics: a reference-count bump
/// and a queue push each. Connections that got their first frame of the turn go on
/// `dirty`; slow readers over their bound go on `found.evict` (see [`queue`]), and a
/// topic whose hot flag changed goes on `found.flips`. Returns the number queued.
///
/// A topic is hot while most of its subscribers that still read (none [`Conn::stuck`])
/// hold over half their frame bound, and they are at least [`HOT_MIN`].
pub fn fan_out(
    hub: &Hub,
    conns: &mut Slab<Conn>,
    dirty: &mut DirtyList,
    found: &mut Found,
    event: &Event,
    bound: &Bound,
) -> u64 {
    let deep_queue = bound.frames / 2;
    let mut queued = 0;
    for topic in &event.topics {
        let Some((subs, hot)) = hub.entry(topic) else {
            continue;
        };
        let (mut deep, mut reading) = (0, 0);
        // A topic that is not heavy here fans out narrowly: its subscribers' writes go in
        // the prompt lane, ahead of wide fan-outs (see `stream::DirtyList`).
        let narrow = subs.len() < HEAVY;
        for sub in subs {
            let conn = &mut conns[sub.conn as usize];
            match queue(conn, event.id, &event.frame, bound) {
                Queued::Yes if narrow => {
                    queued += 1;
                    dirty.mark_prompt(conn, sub.conn);
                }
                Queued::Yes => {
                    queued += 1;
                    dirty.mark(conn, sub.conn);
                }
                Queued::Over => found.evict.push(sub.conn),
                Queued::No => {}
            }
            if !conn.stuck(bound.now, bound.stuck_after) {
                reading += 1;
                deep += usize::from(conn.out.len() > deep_queue);
            }
        }
        let now_hot = deep >= HOT_MIN && deep * 2 > reading;
        if now_hot != hot.get() {
            hot.set(now_hot);
            found.flips.push((topic.clone(), now_hot));
        }
    }
    queued
}

enum Queued {
    Yes,
    /// Already has it, or is not streaming.
    No,
    /// Over its queue bound: to be evicted.
    Over,
}

/// How far past its bound a subscriber that is still reading may queue: frames pile up
/// there only while its worker runs behind (publishes then wait, see
/// `Shared::publish_capacity`) or after a batch larger than the bound.
pub const BOUND_WHILE_READING: usize = 4;

/// Queues event `id` for one subscriber unless it already has it: `last_id` makes an
/// event published to several of its topics arrive once, and makes the seam between a
/// replay and live events gap- and duplicate-free.
///
/// A subscriber is over its bound, and evicted as slow, when `bound.frames` frames or
/// `bound.bytes` bytes wait while the kernel has not taken its last write for
/// [`HELD_AFTER`] (a send parked on a full socket buffer, or refused with EAGAIN: it is
/// not reading). One whose frames wait only for the worker, or whose write is making
/// progress, gets [`BOUND_WHILE_READING`] times the room.
/// (The loop reaps completions before it fans out, so a finished write no longer
/// counts as in flight here.)
fn queue(conn: &mut Conn, id: u64, frame: &Bytes, bound: &Bound) -> Queued {
    if id <= conn.last_id || conn.phase() != Phase::Stream || conn.has(flags::EVICT) {
        return Queued::No;
    }
    conn.last_id = id;
    let held = conn.stuck(bound.now, bound.held_after);
    let room = if held { 1 } else { BOUND_WHILE_READING };
    if conn.out.len() >= bound.frames * room || conn.out.bytes() >= bound.bytes * room {
        conn.set(flags::EVICT);
        return Queued::Over;
    }
    conn.queue(frame);
    Queued::Yes
}

mod express;
#[cfg(test)]
mod tests;
