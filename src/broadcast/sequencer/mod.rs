//! Id assignment, history and the push to the inboxes, as one ordered step.
//!
//! Taking ids, appending to the topics' histories and pushing the batch to the inboxes
//! of the workers with subscribers of its topics ([`interest`]) happen under one short
//! lock, so every worker sees batches in id order and a resume that reads the history
//! under the same lock sees exactly the events that precede everything still to arrive
//! in its inbox. The lock covers no encoding (frames are drafted before it) and no wake
//! (workers are woken after it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::flags::TopicFlags;
use super::frame::Draft;
use super::history::{Bounds, Entry, History};
use super::inbox::{Batch, Event, Inbox};
use interest::Workers;

/// Empty histories kept so a resume can still tell a trimmed topic from an unknown one;
/// past this many, the emptiest are forgotten (and resumes on unknown topics from before
/// their trim point get a conservative gap).
const MAX_IDLE_TOPICS: usize = 100_000;

/// An event ready for an id: its topics (already validated) and its drafted frame.
pub struct NewEvent<'a> {
    pub topics: SmallVec<[&'a str; 2]>,
    pub draft: Draft,
}

/// What a subscriber resuming from a `Last-Event-ID` must be sent before live events.
#[derive(Debug, Default)]
pub struct Replay {
    /// Some when events may have been lost: the oldest id still retained on the requested
    /// topics (None when nothing is retained).
    pub gap: Option<Option<u64>>,
    /// Retained frames with a greater id, in id order, each once.
    pub frames: Vec<Bytes>,
    /// The last id issued when the replay was taken: live events start after it.
    pub upto: u64,
    /// Cluster mode, when local history does not reach back: what to fetch (up to
    /// `upto`) from the shared stream, which then also decides about gaps.
    pub remote: Option<Start>,
}

/// Where a new subscriber's stream starts, before its live events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// After this id (a `Last-Event-ID` resume).
    After(u64),
    /// With the last this many events of its topics (`?replay=N`).
    Last(usize),
}

pub struct Sequencer {
    state: Mutex<State>,
    inboxes: Box<[Arc<Inbox>]>,
    /// The last id issued, readable without the lock by subscribes that need no replay.
    last_id: AtomicU64,
    /// The first id of this process: anything below it was issued by an earlier run.
    first_id: u64,
    clock: Instant,
    bounds: Bounds,
    /// Cluster mode: ids come from the shared stream (see `ordered`), and a topic keeps
    /// history only while it has local subscribers.
    clustered: bool,
    /// The topics a worker has many subscribers of (`hub::HEAVY`), flagged by the
    /// workers; batches to them are marked [`Batch::heavy`] for the publish gate.
    heavy: Arc<TopicFlags>,
}

struct State {
    next_id: u64,
    topics: FxHashMap<Arc<str>, History>,
    /// The highest trim point of any topic forgotten to respect `MAX_IDLE_TOPICS`.
    forgotten_upto: u64,
    /// The workers with local subscribers of each topic (a topic nobody here subscribes
    /// to has no entry). In cluster mode, only these topics are kept.
    interest: FxHashMap<Arc<str>, Workers>,
}

impl Sequencer {
    /// Ids continue from the wall clock in microseconds, so they keep increasing across a
    /// restart unless the previous run averaged more than a million publishes a second.
    pub fn new(inboxes: Box<[Arc<Inbox>]>, bounds: Bounds) -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_micros());
        Self::starting_at(
            inboxes,
            bounds,
            u64::try_from(micros).unwrap_or(u64::MAX / 2).max(1),
        )
    }

    pub fn starting_at(inboxes: Box<[Arc<Inbox>]>, bounds: Bounds, first_id: u64) -> Self {
        Sequencer {
            state: Mutex::new(State {
                next_id: first_id,
                topics: FxHashMap::default(),
                forgotten_upto: 0,
                interest: FxHashMap::default(),
            }),
            inboxes,
            last_id: AtomicU64::new(first_id - 1),
            first_id,
            clock: Instant::now(),
            bounds,
            clustered: false,
            heavy: Arc::default(),
        }
    }

    /// The heavy topics, which the workers flag and the publish gate reads.
    pub fn heavy_topics(&self) -> &Arc<TopicFlags> {
        &self.heavy
    }

    /// Assigns consecutive ids to `events`, records them in history, hands them to the
    /// workers with subscribers of their topics (marked [`Batch::heavy`] when one is
    /// heavy) and wakes each at most once. Returns the first id.
    pub fn publish(&self, events: Vec<NewEvent<'_>>) -> u64 {
        let heavy = self
            .heavy
            .any(events.iter().flat_map(|e| e.topics.iter().copied()));
        let published_at = Instant::now();
        let now_ms = self.now_ms();
        let mut state = self.lock();
        let first = state.next_id;
        let mut batch = Vec::with_capacity(events.len());
        let mut to = Workers::default();
        for (id, event) in (first..).zip(events) {
            let frame = event.draft.finish(id);
            let mut topics: SmallVec<[Arc<str>; 1]> = SmallVec::new();
            for name in event.topics {
                if topics.iter().any(|t| &**t == name) {
                    continue;
                }
                let (key, history) = state.topic(name);
                history.push(
                    Entry {
                        id,
                        at_ms: now_ms,
                        frame: frame.clone(),
                    },
                    &self.bounds,
                );
                topics.push(key);
                if let Some(workers) = state.interest.get(name) {
                    to.extend(workers);
                }
            }
            batch.push(Event { id, topics, frame });
        }
        let count = batch.len() as u64;
        state.next_id = first + count;
        let batch = Arc::new(Batch {
            events: batch,
            published_at,
            heavy,
            notice: None,
        });
        self.hand_out(batch, Some(&to));
        self.last_id.store(first + count - 1, Ordering::Release);
        drop(state);
        self.wake_workers(Some(&to));
        first
    }

    /// The last id issued. A new subscriber without `Last-Event-ID` that registers on its
    /// worker now receives exactly the events after this one: every earlier event is
    /// already in (or through) that worker's inbox.
    pub fn last_id(&self) -> u64 {
        self.last_id.load(Ordering::Acquire)
    }

    /// What a subscriber resuming on `topics` from `last_event_id` (as sent) must be
    /// replayed. A value that is not a decimal id this server could have issued is a gap
    /// and replays everything retained.
    pub fn resume(&self, topics: &[&str], last_event_id: &[u8]) -> Replay {
        let mut state = self.lock();
        if self.clustered {
            return self.resume_clustered(&mut state, topics, parse_id(last_event_id));
        }
        let upto = state.next_id - 1;
        let parsed = parse_id(last_event_id).filter(|&id| id <= upto);
        let after = parsed.unwrap_or(0);
        let mut lost = parsed.is_none() || after < self.first_id - 1;
        let mut oldest: Option<u64> = None;
        let mut frames: Vec<(u64, Bytes)> = Vec::new();
        let now_ms = self.now_ms();
        for &name in topics {
            match state.topics.get_mut(name) {
                Some(history) => {
                    history.trim(now_ms, &self.bounds);
                    lost |= !history.reaches_back_to(after);
                    oldest = min_some(oldest, history.oldest_id());
                    frames.extend(history.after(after).map(|e| (e.id, e.frame.clone())));
                }
                None => lost |= after < state.forgotten_upto,
            }
        }
        drop(state);
        if topics.len() > 1 {
            frames.sort_unstable_by_key(|&(id, _)| id);
            frames.dedup_by_key(|&mut (id, _)| id);
        }
        Replay {
            gap: lost.then_some(oldest),
            frames: frames.into_iter().map(|(_, frame)| frame).collect(),
            upto,
            remote: None,
        }
    }

    /// The last `n` retained events of `topics` (an event on several of them counts once),
    /// in id order, for `?replay=N`; `n` is capped at the history's count bound. Live
    /// events start after `upto`, read under the same lock, so there is no gap and no
    /// duplicate at the seam. In cluster mode, when local history holds fewer than `n`
    /// of them or may miss some (it records a topic only while it is watched here), the
    /// shared stream is asked instead.
    pub fn recent(&self, topics: &[&str], n: usize) -> Replay {
        let n = n.min(self.bounds.count);
        let mut state = self.lock();
        let upto = match self.clustered {
            true => self.last_id(),
            false => state.next_id - 1,
        };
        let now_ms = self.now_ms();
        // Local history holds every event of its topics above this id.
        let mut complete_above = 0;
        let mut frames: Vec<(u64, Bytes)> = Vec::new();
        for &name in topics {
            match state.topics.get_mut(name) {
                Some(history) => {
                    history.trim(now_ms, &self.bounds);
                    complete_above = complete_above.max(history.complete_above());
                    frames.extend(history.newest(n).map(|e| (e.id, e.frame.clone())));
                }
                None => complete_above = upto,
            }
        }
        drop(state);
        frames.sort_unstable_by_key(|&(id, _)| id);
        frames.dedup_by_key(|&mut (id, _)| id);
        let frames = frames.split_off(frames.len().saturating_sub(n));
        let enough = frames.len() == n && frames.first().is_none_or(|&(id, _)| id > complete_above);
        if self.clustered && !enough {
            return Replay {
                upto,
                remote: Some(Start::Last(n)),
                ..Replay::default()
            };
        }
        Replay {
            frames: frames.into_iter().map(|(_, frame)| frame).collect(),
            upto,
            ..Replay::default()
        }
    }

    /// Applies the age bound to every topic; workers call this about once a second.
    pub fn expire(&self) {
        let now = self.now_ms();
        if let Ok(mut state) = self.state.try_lock() {
            state.trim_all(now, &self.bounds);
        }
    }

    /// Heap bytes held by all histories, and the number of topics.
    pub fn history_stats(&self) -> (usize, usize) {
        let state = self.lock();
        let bytes = state.topics.iter().map(|(k, h)| k.len() + h.memory()).sum();
        (bytes, state.topics.len())
    }

    /// What history holds of `topic`: the newest id it saw (None: none here), and the
    /// retained events' count and bytes.
    pub fn topic_history(&self, topic: &str) -> (Option<u64>, usize, usize) {
        let mut state = self.lock();
        let now_ms = self.now_ms();
        match state.topics.get_mut(topic) {
            Some(history) => {
                history.trim(now_ms, &self.bounds);
                (history.newest_id(), history.len(), history.bytes())
            }
            None => (None, 0, 0),
        }
    }

    pub fn first_id(&self) -> u64 {
        self.first_id
    }

    /// Worker `worker` has its first local subscribers of `topics` (topics it already
    /// has need not be named). Returns the id that live delivery to a new subscriber on
    /// that worker starts after: every later event on these topics is handed to it.
    pub fn watch(&self, worker: usize, topics: &[&str]) -> u64 {
        if topics.is_empty() {
            return self.last_id();
        }
        let mut state = self.lock();
        let upto = self.last_id();
        for &name in topics {
            if let Some(workers) = state.interest.get_mut(name) {
                workers.insert(worker);
                continue;
            }
            let key: Arc<str> = Arc::from(name);
            let mut workers = Workers::default();
            workers.insert(worker);
            state.interest.insert(key.clone(), workers);
            if self.clustered {
                // Cluster mode records a topic's history only while it is watched.
                state.topics.insert(key, History::starting_after(upto));
            }
        }
        upto
    }

    /// Worker `worker` lost its last local subscriber of each of `topics`. A topic nobody
    /// here watches any more stops costing anything (in cluster mode its history goes).
    pub fn unwatch<'a>(&self, worker: usize, topics: impl IntoIterator<Item = &'a str>) {
        let mut state = self.lock();
        for name in topics {
            let Some(workers) = state.interest.get_mut(name) else {
                continue;
            };
            workers.remove(worker);
            if workers.is_empty() {
                state.interest.remove(name);
                if self.clustered {
                    state.topics.remove(name);
                }
            }
        }
    }

    /// Whether any worker here has subscribers of `topic`.
    pub fn is_watched(&self, topic: &str) -> bool {
        self.lock().interest.contains_key(topic)
    }

    /// Queues `batch` in the inboxes of workers `to` (None: all); call inside the critical
    /// section, so every inbox sees batches in the same order.
    fn hand_out(&self, batch: Arc<Batch>, to: Option<&Workers>) {
        for (i, inbox) in self.inboxes.iter().enumerate() {
            if to.is_none_or(|to| to.contains(i)) {
                inbox.push(batch.clone());
            }
        }
    }

    /// Wakes the workers `to` (None: all) that have no wake pending; call after the
    /// critical section.
    fn wake_workers(&self, to: Option<&Workers>) {
        for (i, inbox) in self.inboxes.iter().enumerate() {
            if to.is_none_or(|to| to.contains(i)) {
                inbox.notify();
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state torn in a way that matters
        // more than stopping every publish would.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn topic(&mut self, name: &str) -> (Arc<str>, &mut History) {
        if !self.topics.contains_key(name) {
            if self.topics.len() >= MAX_IDLE_TOPICS {
                self.forget_idle();
            }
            self.topics.insert(Arc::from(name), History::default());
        }
        let key = self
            .topics
            .get_key_value(name)
            .expect("inserted above")
            .0
            .clone();
        (key, self.topics.get_mut(name).expect("inserted above"))
    }

    fn trim_all(&mut self, now_ms: u64, bounds: &Bounds) {
        for history in self.topics.values_mut() {
            history.trim(now_ms, bounds);
        }
    }

    fn forget_idle(&mut self) {
        let forgotten = &mut self.forgotten_upto;
        self.topics.retain(|_, history| {
            let keep = !history.is_empty();
            if !keep {
                *forgotten = (*forgotten).max(history.trimmed_upto());
            }
            keep
        });
    }
}

/// A decimal id as sent: digits only, no sign, no spaces, no overflow.
pub fn parse_id(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    raw.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests;

mod interest;
mod ordered;
pub use ordered::Stamped;
