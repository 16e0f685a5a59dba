//! The sequencer in cluster mode: events arrive already numbered and ordered by the
//! shared Redis stream, and only topics with local subscribers are kept.
//!
//! A topic is "watched" while a worker of this process has subscribers of it. Watching
//! and the filtering of stream entries happen under the sequencer's lock, and a new
//! subscriber reads its starting point under the same lock, so no event slips between a
//! subscriber's registration and the first event it receives. A topic's history records
//! from the moment it became watched (`History::starting_after`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use smallvec::SmallVec;

use super::interest::Workers;
use super::{Replay, Sequencer, Start, State};
use crate::broadcast::frame::Draft;
use crate::broadcast::history::{Bounds, Entry};
use crate::broadcast::inbox::{Batch, Event, Inbox};

/// An event read from the shared stream, numbered by it.
pub struct Stamped {
    pub id: u64,
    pub topics: SmallVec<[String; 2]>,
    pub draft: Draft,
}

impl Sequencer {
    /// A sequencer whose ids come from the cluster's stream.
    pub fn clustered(inboxes: Box<[Arc<Inbox>]>, bounds: Bounds) -> Self {
        let mut seq = Sequencer::starting_at(inboxes, bounds, 1);
        seq.clustered = true;
        seq
    }

    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Hands stream events (ascending ids) of watched topics to the workers watching them and records
    /// them in history; the rest are dropped unread. `processed` is the last stream id
    /// read, which is where live delivery to a new subscriber starts.
    pub fn publish_ordered(&self, events: Vec<Stamped>, processed: u64) {
        let now_ms = self.now_ms();
        let published_at = Instant::now();
        let mut state = self.lock();
        let (mut batch, mut heavy) = (Vec::new(), false);
        let mut to = Workers::default();
        for event in events {
            let mut topics: SmallVec<[Arc<str>; 1]> = SmallVec::new();
            for name in &event.topics {
                if let Some((key, workers)) = state.interest.get_key_value(name.as_str()) {
                    if !topics.contains(key) {
                        topics.push(key.clone());
                        to.extend(workers);
                    }
                }
            }
            if topics.is_empty() {
                continue;
            }
            heavy = heavy || self.heavy.any(topics.iter().map(|t| &**t));
            let frame = event.draft.finish(event.id);
            for key in &topics {
                let history = state.topics.entry(key.clone()).or_default();
                history.push(
                    Entry {
                        id: event.id,
                        at_ms: now_ms,
                        frame: frame.clone(),
                    },
                    &self.bounds,
                );
            }
            batch.push(Event {
                id: event.id,
                topics,
                frame,
            });
        }
        if !batch.is_empty() {
            let batch = Arc::new(Batch {
                events: batch,
                published_at,
                heavy,
                notice: None,
            });
            self.hand_out(batch, Some(&to));
        }
        self.last_id.fetch_max(processed, Ordering::AcqRel);
        drop(state);
        self.wake_workers(Some(&to));
    }

    /// Sends `frame` (which carries no id) to every local subscriber of `topic`, or of
    /// every topic, in order with the events around it.
    pub fn broadcast_notice(&self, topic: Option<&str>, frame: Bytes) {
        let state = self.lock();
        let notice = Some((topic.map(Arc::from), frame));
        let batch = Arc::new(Batch {
            events: Vec::new(),
            published_at: Instant::now(),
            heavy: false,
            notice,
        });
        self.hand_out(batch, None);
        drop(state);
        self.wake_workers(None);
    }

    /// Cluster resume: local history when it reaches back on every topic, else the shared
    /// stream must be asked (which also judges gaps).
    pub(super) fn resume_clustered(
        &self,
        state: &mut State,
        topics: &[&str],
        after: Option<u64>,
    ) -> Replay {
        let upto = self.last_id();
        let now_ms = self.now_ms();
        let remote = |after| Replay {
            upto,
            remote: Some(Start::After(after)),
            ..Replay::default()
        };
        let Some(after) = after else {
            return Replay {
                gap: Some(None),
                ..remote(0)
            };
        };
        if after > upto {
            return remote(after);
        }
        let mut frames: Vec<(u64, Bytes)> = Vec::new();
        for &name in topics {
            let Some(history) = state.topics.get_mut(name) else {
                return remote(after);
            };
            history.trim(now_ms, &self.bounds);
            if !history.reaches_back_to(after) {
                return remote(after);
            }
            frames.extend(history.after(after).map(|e| (e.id, e.frame.clone())));
        }
        frames.sort_unstable_by_key(|&(id, _)| id);
        frames.dedup_by_key(|&mut (id, _)| id);
        Replay {
            frames: frames.into_iter().map(|(_, f)| f).collect(),
            upto,
            ..Replay::default()
        }
    }
}
