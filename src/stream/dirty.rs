//! The connections waiting for the loop to start their write, in two lanes.

use std::collections::VecDeque;

use crate::conn::{flags, Conn};

/// A connection waiting for the loop to start its write, and since when (the turn's
/// millisecond stamp): how long the oldest waits is how far the worker runs behind.
#[derive(Clone, Copy, Debug)]
pub struct Dirty {
    pub key: u32,
    pub since: u32,
}

/// Connections with frames queued since the last flush, in two lanes, each oldest
/// first; each connection is listed once (its `DIRTY` flag), with the turn it began to
/// wait in. Each turn writes up to a batch from each lane, so neither waits for the
/// other.
///
/// The `bulk` lane holds the subscribers of wide fan-outs and those catching up: while
/// they wait, more frames join their next write, which is what keeps a saturated
/// fan-out cheap per delivery. The `prompt` lane holds writes that are small and few:
/// an event to a topic that is not heavy here (`broadcast::hub::HEAVY`), a heartbeat, a
/// response head. With one topic's 5,000 subscribers per worker behind a saturating
/// 1 KiB fan-out, a notification in a single lane waited for all of them to be written,
/// a batch of 32 a turn: 340 ms here (issue 14's mixed run).
#[derive(Default)]
pub struct DirtyList {
    prompt: VecDeque<Dirty>,
    bulk: VecDeque<Dirty>,
    now_ms: u32,
}

/// Which of [`DirtyList`]'s lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lane {
    Prompt = 0,
    Bulk = 1,
}

impl DirtyList {
    /// With room for `n` connections in each lane.
    pub fn with_capacity(n: usize) -> DirtyList {
        DirtyList {
            prompt: VecDeque::with_capacity(n),
            bulk: VecDeque::with_capacity(n),
            now_ms: 0,
        }
    }

    /// The current turn's stamp, given to connections listed from now on.
    pub fn begin_turn(&mut self, now_ms: u32) {
        self.now_ms = now_ms;
    }

    /// The current turn's stamp.
    pub(super) fn now_ms(&self) -> u32 {
        self.now_ms
    }

    /// Lists `conn` (key `key`) in the bulk lane, behind every connection waiting there.
    pub fn mark(&mut self, conn: &mut Conn, key: u32) {
        self.list(conn, key, Lane::Bulk, false);
    }

    /// Lists `conn` in the prompt lane, behind every connection waiting there.
    pub fn mark_prompt(&mut self, conn: &mut Conn, key: u32) {
        self.list(conn, key, Lane::Prompt, false);
    }

    /// Lists `conn` ahead of every connection waiting: a client waiting for its response
    /// head must not wait for a whole fan-out pass (150-300 ms for 1 KiB to 19,000
    /// subscribers here) to go by.
    pub fn mark_first(&mut self, conn: &mut Conn, key: u32) {
        self.list(conn, key, Lane::Prompt, true);
    }

    fn list(&mut self, conn: &mut Conn, key: u32, lane: Lane, first: bool) {
        if conn.has(flags::DIRTY) {
            return;
        }
        conn.set(flags::DIRTY);
        let entry = Dirty {
            key,
            since: self.now_ms,
        };
        let queue = match lane {
            Lane::Prompt => &mut self.prompt,
            Lane::Bulk => &mut self.bulk,
        };
        match first {
            true => queue.push_front(entry),
            false => queue.push_back(entry),
        }
    }

    pub fn len(&self) -> usize {
        self.prompt.len() + self.bulk.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompt.is_empty() && self.bulk.is_empty()
    }

    /// Every listed connection: the prompt lane, then the bulk lane.
    pub fn iter(&self) -> impl Iterator<Item = &Dirty> {
        self.prompt.iter().chain(self.bulk.iter())
    }

    pub(super) fn pop(&mut self, lane: Lane) -> Option<Dirty> {
        match lane {
            Lane::Prompt => self.prompt.pop_front(),
            Lane::Bulk => self.bulk.pop_front(),
        }
    }
}
