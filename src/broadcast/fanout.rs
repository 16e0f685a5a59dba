//! Step 2 of the worker loop: every event in the inbox goes to every local subscriber
//! of its topics, as a reference-counted clone of the one shared frame.

use std::collections::VecDeque;

use bytes::Bytes;

use slab::Slab;

use super::hub::Hub;
use super::inbox::{Event, Inbox};
use crate::conn::{flags, CloseReason, Conn, Phase};
use crate::worker::Worker;

impl Worker {
    /// Drains the inbox into subscriber queues. Subscribers pushed over their queue bound
    /// are evicted after the walk (closing one mid-walk would reorder the list being walked).
    pub fn drain_inbox(&mut self, inbox: &Inbox) {
        let max_queued = self.shared.config.max_queued_frames;
        let mut queued = 0u64;
        let mut evict = std::mem::take(&mut self.evict);
        while let Some(batch) = inbox.pop() {
            if let Some((topic, frame)) = &batch.notice {
                self.notify(topic.as_deref(), frame);
            }
            for event in &batch.events {
                queued += fan_out(
                    &self.hub,
                    &mut self.conns,
                    &mut self.dirty,
                    &mut evict,
                    event,
                    max_queued,
                );
            }
            self.turn_batches.push(batch.published_at);
        }
        self.stats().frames.add(queued);
        for key in evict.drain(..) {
            self.close(key, CloseReason::Slow);
        }
        self.evict = evict;
    }
}

/// Queues one event for every local subscriber of its topics: a reference-count bump
/// and a queue push each. Connections that got their first frame of the turn go on
/// `dirty`; those over `max_queued` go on `evict`. Returns the number queued.
pub fn fan_out(
    hub: &Hub,
    conns: &mut Slab<Conn>,
    dirty: &mut VecDeque<u32>,
    evict: &mut Vec<u32>,
    event: &Event,
    max_queued: usize,
) -> u64 {
    let mut queued = 0;
    for topic in &event.topics {
        for sub in hub.subscribers(topic) {
            let conn = &mut conns[sub.conn as usize];
            match queue(conn, event.id, &event.frame, max_queued) {
                Queued::Yes => {
                    queued += 1;
                    if !conn.has(flags::DIRTY) {
                        conn.set(flags::DIRTY);
                        dirty.push_back(sub.conn);
                    }
                }
                Queued::Over => evict.push(sub.conn),
                Queued::No => {}
            }
        }
    }
    queued
}

impl Worker {
    /// Queues an id-less frame to this worker's subscribers of `topic`, or to all.
    fn notify(&mut self, topic: Option<&str>, frame: &Bytes) {
        let keys: Vec<u32> = match topic {
            Some(topic) => self.hub.subscribers(topic).iter().map(|s| s.conn).collect(),
            None => self
                .conns
                .iter()
                .filter(|(_, c)| c.phase == Phase::Stream)
                .map(|(k, _)| k as u32)
                .collect(),
        };
        for key in keys {
            self.push_control(key, frame.clone());
        }
    }
}

enum Queued {
    Yes,
    /// Already has it, or is not streaming.
    No,
    /// Over its queue bound: to be evicted.
    Over,
}

/// Queues event `id` for one subscriber unless it already has it: `last_id` makes an
/// event published to several of its topics arrive once, and makes the seam between a
/// replay and live events gap- and duplicate-free.
fn queue(conn: &mut Conn, id: u64, frame: &Bytes, max_queued: usize) -> Queued {
    if id <= conn.last_id || conn.phase != Phase::Stream || conn.has(flags::EVICT) {
        return Queued::No;
    }
    conn.last_id = id;
    if conn.out.len() >= max_queued {
        conn.set(flags::EVICT);
        return Queued::Over;
    }
    conn.out.push(frame.clone());
    Queued::Yes
}
