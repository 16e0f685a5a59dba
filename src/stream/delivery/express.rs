//! The express pass: between two groups of a flush (`Fanout::run_narrow`), while the
//! turn's fan-out has left a batch over, the events of narrow topics queued behind it
//! go out to every subscriber that nothing left over is for.
//!
//! The worker that also serves the wide fan-out's publisher leaves batches over at most
//! turns (its inbox gets each of them the moment it is published). With the personal
//! publishers on that worker too, the personal events waited for the next turn: 1.65,
//! 2.11, 2.49 and 2.53 ms at the median in the four such runs of 24, against 0.64-1.10
//! ms in the others (issue 14's mixed run, logged placement).
//!
//! Order is kept per subscriber, and nothing is lost: an event is queued early only to a
//! subscriber none of whose topics has an event ahead of it still waiting (a blocked
//! topic). That sets its `last_id`, so the in-order pass that reaches the event later
//! skips it there, and queues it to the subscribers that had to wait. A subscriber
//! that joins in between starts after the event (its stream starts at the last id
//! sequenced), so a batch queued early to all its subscribers can be dropped at once.

use super::*;

/// Frames one express pass may queue: a quarter of [`FANOUT_BUDGET`], that is 32 events
/// to topics of 64 subscribers, or 2,048 to topics of one. The publish gate keeps up to
/// a queue bound (`--max-queued-frames`) of events to narrow topics in an inbox
/// (`Shared::publish_capacity`).
const EXPRESS_BUDGET: usize = FANOUT_BUDGET / 4;

impl Fanout {
    /// Takes every batch waiting in `inbox` behind `resume`, and queues the events of
    /// narrow topics among them to the subscribers that nothing ahead is for (see the
    /// module's doc), up to [`EXPRESS_BUDGET`]. Batches queued to all their subscribers
    /// are done; the others stay in `behind` for the in-order pass. Returns the number of
    /// frames queued.
    pub(super) fn express(
        &mut self,
        inbox: &Inbox,
        hub: &Hub,
        conns: &mut Slab<Conn>,
        dirty: &mut DirtyList,
        bound: &Bound,
    ) -> u64 {
        while let Some(batch) = inbox.take() {
            self.behind.push_back(batch);
        }
        let Some((front, from)) = &self.resume else {
            return 0;
        };
        // The batch left over is a notice not yet sent (`run_narrow` stops at one):
        // nothing may pass it.
        if *from == 0 && front.notice.is_some() {
            return 0;
        }
        let blocked = &mut self.blocked;
        blocked.clear();
        for event in &front.events[*from..] {
            block(hub, blocked, event);
        }
        let (mut queued, mut budget, mut open) = (0, EXPRESS_BUDGET, true);
        let found = &mut self.found;
        let published = &mut self.published;
        self.behind.retain(|batch| {
            // A notice goes to every subscriber of a topic, or to all: nothing behind
            // it may pass it.
            open &= batch.notice.is_none() && budget > 0;
            if !open {
                return true;
            }
            let mut whole = !batch.heavy;
            for event in &batch.events {
                if batch.heavy || budget == 0 {
                    whole = false;
                    block(hub, blocked, event);
                    continue;
                }
                let sent = send(hub, conns, dirty, found, blocked, event, bound);
                budget = budget.saturating_sub(sent.visits.max(1));
                queued += sent.queued;
                if !sent.whole {
                    whole = false;
                    block(hub, blocked, event);
                }
            }
            if whole {
                inbox.finished(batch);
                published.push(batch.published_at);
            }
            !whole
        });
        queued
    }
}

/// Marks the local topics of `event` as blocked: it waits for the in-order pass.
fn block(hub: &Hub, blocked: &mut FxHashSet<u32>, event: &Event) {
    for topic in &event.topics {
        if let Some((slot, _)) = hub.slot(topic) {
            blocked.insert(slot);
        }
    }
}

/// What [`send`] did with one event.
struct Sent {
    queued: u64,
    /// Subscribers visited.
    visits: usize,
    /// Every local subscriber of the event has it (or never will: over its bound, not
    /// streaming).
    whole: bool,
}

/// Queues `event` to the subscribers of its narrow, unblocked topics whose own topics
/// are all unblocked (a connection on one topic needs no look at its links).
fn send(
    hub: &Hub,
    conns: &mut Slab<Conn>,
    dirty: &mut DirtyList,
    found: &mut Found,
    blocked: &FxHashSet<u32>,
    event: &Event,
    bound: &Bound,
) -> Sent {
    let mut sent = Sent {
        queued: 0,
        visits: 0,
        whole: true,
    };
    for topic in &event.topics {
        let Some((slot, subs)) = hub.slot(topic) else {
            continue;
        };
        if subs.len() >= HEAVY || blocked.contains(&slot) {
            sent.whole = false;
            continue;
        }
        sent.visits += subs.len();
        for sub in subs {
            let conn = &mut conns[sub.conn as usize];
            if conn.links.len() > 1 && conn.links.iter().any(|l| blocked.contains(&l.topic)) {
                sent.whole = false;
                continue;
            }
            match queue(conn, event.id, &event.frame, bound) {
                Queued::Yes => {
                    sent.queued += 1;
                    dirty.mark_prompt(conn, sub.conn);
                }
                Queued::Over => found.evict.push(sub.conn),
                Queued::No => {}
            }
        }
    }
    sent
}

#[cfg(test)]
mod tests;
