//! What every worker of a process shares: the configuration, the sequencer and the
//! inboxes, the counters, the connection count; and the publish back-pressure that reads
//! them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::broadcast::inbox::Inbox;
use crate::broadcast::sequencer::Sequencer;
use crate::census::Census;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::metrics::{self, WorkerStats};

/// What every worker shares.
pub struct Shared {
    pub config: Config,
    pub sequencer: Arc<Sequencer>,
    /// Subscribers per topic, for `GET /topics`.
    pub census: Arc<Census>,
    /// The Redis link, in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
    pub inboxes: Box<[Arc<Inbox>]>,
    pub stats: Box<[WorkerStats]>,
    /// Open connections in the process, against `max_connections`.
    pub open: AtomicUsize,
    pub max_connections: usize,
    /// The response head and `retry:` line every subscriber starts with, for each body
    /// framing (index: `Body as usize`, chunked first); CORS heads are built per request.
    pub stream_preamble: [Bytes; 2],
    pub(crate) draining: AtomicBool,
    /// Topics whose subscribers are saturated, and topics with many subscribers, for
    /// the publish gate (see [`Capacity`]).
    pub hot: TopicFlags,
    pub heavy: TopicFlags,
}

/// Topics that some worker has flagged, each with the number of workers that did: the
/// hot topics (most of a worker's subscribers of it held more than half their queue
/// bound at its last fan-out) and the heavy ones (a worker has at least
/// `broadcast::hub::HEAVY` subscribers of it). Workers report only changes, so the map
/// is touched rarely; the publish gate reads it only when a worker is behind.
#[derive(Default)]
pub struct TopicFlags(Mutex<FxHashMap<Arc<str>, usize>>);

impl TopicFlags {
    /// One worker's flag for `topic` changed to `on`.
    pub fn mark(&self, topic: &Arc<str>, on: bool) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (on, map.get_mut(topic)) {
            (true, Some(workers)) => *workers += 1,
            (true, None) => {
                map.insert(topic.clone(), 1);
            }
            (false, Some(workers)) if *workers > 1 => *workers -= 1,
            (false, Some(_)) => {
                map.remove(topic);
            }
            (false, None) => debug_assert!(false, "{topic} unflagged but was not flagged"),
        }
    }

    /// Whether any worker flags any of `topics`.
    pub fn any<'a>(&self, topics: impl IntoIterator<Item = &'a str>) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        !map.is_empty() && topics.into_iter().any(|t| map.contains_key(t))
    }
}

/// How a publish may proceed. An overloaded server slows its publishers down rather than
/// evicting subscribers that read as fast as they can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    Free,
    /// A worker left published events in its inbox longer than `--max-lag`, or has more
    /// than half a queue bound of events there (each may be for all its subscribers;
    /// twice that for a publish to no heavy topic): publishes wait until it catches up
    /// (or answer 503 after the handshake timeout). Measured with the same room for
    /// all: the backlog sat at the bound behind a firehose publisher, and a publish to a
    /// topic of one subscriber waited up to 428 ms for a free place (epoll driver,
    /// 19,000 subscribers of the firehose).
    ///
    /// How long a fan-out pass over the worker's subscribers takes is deliberately not a
    /// reason: a pass costs about one send per subscriber however many events it
    /// carries, so holding publishes back does not shorten it, it only leaves fewer
    /// events per send. When it was a reason, 1 KiB fan-outs to 19,000 subscribers
    /// (150–300 ms a pass here) tripped it and fell into one event per send: 0.3–0.9 M
    /// deliveries/s against 2.4 M/s without it (BENCHMARKS.md). Deep per-subscriber
    /// queues, the sign that passes no longer keep up, are [`Capacity::Saturated`].
    Lagging,
    /// Most of a worker's writes carry over half a queue bound: its subscribers as a
    /// whole read slower than events come. A publish to a topic that is hot (most of
    /// its subscribers are that far behind, see [`TopicFlags`]) waits up to `--max-lag`
    /// for them (pacing the publisher, never refusing it); single slow readers are
    /// evicted as usual. Publishes to other topics are not held: they add nothing to
    /// the queues that are deep, and a publisher to a quiet topic must not wait for a
    /// hot one.
    Saturated,
}

impl Shared {
    /// The `/metrics` page: every worker's counters and the process's own.
    pub fn metrics(&self) -> String {
        let process = metrics::Process {
            history: self.sequencer.history_stats(),
            cluster: self.cluster.as_ref().map(|c| &*c.stats),
        };
        metrics::render(&self.stats, process)
    }

    /// Whether fan-out keeps up with publishing to `topics` (see [`Capacity`]).
    pub fn publish_capacity<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Capacity {
        let backlog = self.config.max_queued_frames / 2;
        let late = self
            .inboxes
            .iter()
            .any(|i| i.waiting() > self.config.max_lag);
        let queued = self.inboxes.iter().map(|i| i.events()).max().unwrap_or(0);
        let saturated = self.stats.iter().any(|w| w.saturated.get() != 0);
        if !late && queued <= backlog && !saturated {
            return Capacity::Free;
        }
        // A worker's backlog holds publishes to heavy topics at `backlog` events and
        // the others at twice that: a publisher to a topic of a few subscribers, whose
        // event costs the fan-out next to nothing, is not queued behind a firehose.
        let room = match self.heavy.any(topics.clone()) {
            true => backlog,
            false => backlog * 2,
        };
        if late || queued > room {
            Capacity::Lagging
        } else if saturated && self.hot.any(topics) {
            Capacity::Saturated
        } else {
            Capacity::Free
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts the shutdown drain on every worker.
    pub fn begin_drain(&self) {
        if !self.draining.swap(true, Ordering::AcqRel) {
            for inbox in self.inboxes.iter() {
                inbox.notify();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_stays_flagged_until_every_worker_that_flagged_it_unflags_it() {
        let flags = TopicFlags::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        assert!(!flags.any(["a"]));
        flags.mark(&a, true);
        flags.mark(&a, true);
        assert!(flags.any(["b", "a"]));
        assert!(!flags.any(["b"]));
        flags.mark(&a, false);
        assert!(flags.any(["a"]), "one worker still flags it");
        flags.mark(&a, false);
        assert!(!flags.any(["a"]));
        flags.mark(&b, true);
        assert!(flags.any(["b"]) && !flags.any(["a"]));
    }
}
