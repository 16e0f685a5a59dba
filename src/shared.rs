//! What every worker of a process shares: the configuration, the sequencer and the
//! inboxes, the counters, the connection count; and the publish back-pressure that reads
//! them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::broadcast::flags::TopicFlags;
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
    /// Topics whose subscribers are saturated, for the publish gate (see [`Capacity`]);
    /// the heavy ones are the sequencer's ([`Sequencer::heavy_topics`]), which marks
    /// the batches it hands to them.
    pub hot: TopicFlags,
    /// The TLS listeners' certificate and settings (`--tls-cert`), reloaded on SIGHUP.
    pub tls: Option<Arc<crate::tls::Acceptor>>,
}

/// A publish to a heavy topic waits while a worker's inbox holds this many batches
/// published to heavy topics. Each may be a fan-out to thousands of subscribers, a turn's
/// fan-out budget or more, and every event behind them, to any topic, waits for them:
/// with room for 512 events, a saturating 1 KiB publisher to 10,000 subscribers (epoll
/// driver) kept the inbox a second or two deep, and events to one-subscriber topics
/// waited 1.3 s (median) in it (issue 14's mixed run). Four keep a worker's fan-out busy
/// for its next turns while the publisher, polling every millisecond, refills it.
pub const HEAVY_QUEUED: usize = 4;

/// How a publish may proceed. An overloaded server slows its publishers down rather than
/// evicting subscribers that read as fast as they can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    Free,
    /// A worker left published events in its inbox longer than `--max-lag`, or has more
    /// than half a queue bound of events there (each may be for all its subscribers;
    /// twice that for a publish to no heavy topic), or, for a publish to a heavy topic,
    /// [`HEAVY_QUEUED`] batches to heavy topics: publishes wait until it catches up (or
    /// answer 503 after the handshake timeout). Measured with the same room for
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
        heavy: bool,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Capacity {
        let backlog = self.config.max_queued_frames / 2;
        let late = self
            .inboxes
            .iter()
            .any(|i| i.waiting() > self.config.max_lag);
        let queued = self.inboxes.iter().map(|i| i.events()).max().unwrap_or(0);
        let saturated = self.stats.iter().any(|w| w.saturated.get() != 0);
        // A worker's backlog holds publishes to heavy topics at `HEAVY_QUEUED` batches of
        // them (or `backlog` events), the others at twice `backlog` events: a publisher
        // to a topic of a few subscribers, whose event costs the fan-out next to nothing,
        // is not queued behind a firehose, and the firehose's events do not pile up in
        // front of it.
        let crowded = heavy && self.inboxes.iter().any(|i| i.heavy() >= HEAVY_QUEUED);
        let room = if heavy { backlog } else { backlog * 2 };
        if late || crowded || queued > room {
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
    use crate::broadcast::history::Bounds;
    use crate::broadcast::inbox::Batch;
    use std::time::{Duration, Instant};

    fn shared(workers: usize) -> Shared {
        let inboxes: Box<[Arc<Inbox>]> = (0..workers).map(|_| Arc::default()).collect();
        let bounds = Bounds {
            count: 16,
            bytes: 1 << 20,
            ttl_ms: 0,
        };
        let sequencer = Arc::new(Sequencer::new(inboxes.clone(), bounds));
        Shared {
            config: Config::new(),
            sequencer,
            census: Arc::new(Census::new(workers)),
            cluster: None,
            inboxes,
            stats: (0..workers).map(|_| WorkerStats::default()).collect(),
            open: AtomicUsize::new(0),
            max_connections: 16,
            stream_preamble: [Bytes::new(), Bytes::new()],
            draining: AtomicBool::new(false),
            hot: TopicFlags::default(),
            tls: None,
        }
    }

    fn batch(heavy: bool, published_at: Instant) -> Arc<Batch> {
        Arc::new(Batch {
            events: Vec::new(),
            published_at,
            heavy,
            notice: None,
        })
    }

    #[test]
    fn a_heavy_topics_publishes_wait_while_its_batches_crowd_an_inbox_and_others_go_on() {
        let shared = shared(2);
        let inbox = &shared.inboxes[1];
        for _ in 1..HEAVY_QUEUED {
            inbox.push(batch(true, Instant::now()));
        }
        assert_eq!(shared.publish_capacity(true, ["wide"]), Capacity::Free);
        inbox.push(batch(true, Instant::now()));
        assert_eq!(shared.publish_capacity(true, ["wide"]), Capacity::Lagging);
        assert_eq!(
            shared.publish_capacity(false, ["personal/1"]),
            Capacity::Free,
            "a publish to a light topic does not wait for the heavy ones"
        );
        inbox.pop();
        assert_eq!(shared.publish_capacity(true, ["wide"]), Capacity::Free);
    }

    #[test]
    fn every_publish_waits_while_a_worker_leaves_events_older_than_the_lag() {
        let shared = shared(2);
        let late = Instant::now() - shared.config.max_lag - Duration::from_millis(50);
        shared.inboxes[0].set_backlog(Some(late));
        assert_eq!(
            shared.publish_capacity(false, ["personal/1"]),
            Capacity::Lagging
        );
        shared.inboxes[0].set_backlog(None);
        assert_eq!(
            shared.publish_capacity(false, ["personal/1"]),
            Capacity::Free
        );
    }
}
