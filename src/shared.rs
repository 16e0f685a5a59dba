//! What every worker of a process shares: the configuration, the sequencer and the
//! inboxes, the counters, the connection count; and the publish back-pressure that reads
//! them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::broadcast::inbox::Inbox;
use crate::broadcast::sequencer::Sequencer;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::metrics::{self, WorkerStats};

/// What every worker shares.
pub struct Shared {
    pub config: Config,
    pub sequencer: Arc<Sequencer>,
    /// The Redis link, in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
    pub inboxes: Box<[Arc<Inbox>]>,
    pub stats: Box<[WorkerStats]>,
    /// Open connections in the process, against `max_connections`.
    pub open: AtomicUsize,
    pub max_connections: usize,
    /// The response head and `retry:` frame every subscriber starts with.
    pub stream_preamble: Bytes,
    pub(crate) draining: AtomicBool,
}

/// How a publish may proceed. An overloaded server slows its publishers down rather than
/// evicting subscribers that read as fast as they can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    Free,
    /// A worker left published events in its inbox longer than `--max-lag`, or has more
    /// than half a queue bound of events there (each may be for all its subscribers):
    /// publishes wait until it catches up (or answer 503 after the handshake timeout).
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
    /// whole read slower than events come. Each publish waits up to `--max-lag` for
    /// them (pacing the publisher, never refusing it); single slow readers are evicted
    /// as usual.
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

    /// Whether fan-out keeps up with publishing (see [`Capacity`]).
    pub fn publish_capacity(&self) -> Capacity {
        let max = self.config.max_lag;
        let backlog = self.config.max_queued_frames / 2;
        if self
            .inboxes
            .iter()
            .any(|i| i.waiting() > max || i.events() > backlog)
        {
            Capacity::Lagging
        } else if self.stats.iter().any(|w| w.saturated.get() != 0) {
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
