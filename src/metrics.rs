//! Counters, kept per worker so the hot path never shares a cache line, and summed
//! only when `/metrics` is scraped (Prometheus text exposition).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::conn::CloseReason;
use crate::forward_auth::Outcome;

/// A counter written by one worker thread and read by any. A relaxed load and store is a
/// plain move on x86-64: no locked instruction on the hot path.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// For gauges (connections, subscribers): the owning worker adds before it subtracts.
    pub fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

/// Response statuses counted by code; anything else lands in the last slot.
pub const STATUSES: [u16; 19] = [
    200, 202, 204, 304, 308, 400, 401, 403, 404, 405, 408, 413, 414, 415, 429, 431, 500, 503, 0,
];

/// Upper bounds (seconds) of the publish-to-write latency histogram buckets.
pub const LATENCY_BOUNDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct WorkerStats {
    /// Open connections of every kind (gauge).
    pub connections: Counter,
    /// Streaming subscribers (gauge).
    pub subscribers: Counter,
    /// Topic memberships of subscribers (gauge).
    pub subscriptions: Counter,
    /// Topics with subscribers on this worker (gauge).
    pub topics: Counter,
    /// Milliseconds the longest-waiting subscriber written in the last turn waited for
    /// this worker to start its write (gauge): how far fan-out runs behind publishing.
    pub lag: Counter,
    /// 1 while most subscribers the last flush looked at had over half a queue bound of
    /// frames waiting: subscribers as a whole are not keeping up (gauge).
    pub saturated: Counter,
    /// Events accepted by publishes served on this worker.
    pub published: Counter,
    /// Publishes that waited for fan-out to catch up before being accepted.
    pub publish_waits: Counter,
    /// Event frames queued to subscribers (deliveries).
    pub frames: Counter,
    /// Write operations started (one may carry many frames).
    pub writes: Counter,
    /// Flushes ended early for a request that came in (see `stream::readers`).
    pub flushes_cut: Counter,
    /// TLS handshakes completed (those refused are closes with reason `tls`).
    pub tls_handshakes: Counter,
    pub bytes: Counter,
    pub heartbeats: Counter,
    pub replay_gaps: Counter,
    pub replayed: Counter,
    /// Subscription events published (`--subscription-events`).
    pub subscription_events: Counter,
    pub closes: [Counter; CloseReason::ALL.len()],
    /// Forward-auth checks (`--auth-url`), by how they ended.
    pub forward_auth: [Counter; Outcome::ALL.len()],
    pub statuses: [Counter; STATUSES.len()],
    /// Batches fanned out by this worker, by how long after the publish their writes
    /// were submitted; the last slot is +Inf.
    pub latency: [Counter; LATENCY_BOUNDS.len() + 1],
    pub latency_sum_us: Counter,
}

impl WorkerStats {
    pub fn count_status(&self, status: u16) {
        let i = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.statuses[i].add(1);
    }

    pub fn observe_latency(&self, seconds: f64) {
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency[i].add(1);
        self.latency_sum_us.add((seconds * 1e6) as u64);
    }
}

/// What `/metrics` shows besides the workers' counters.
pub struct Process<'a> {
    /// Memory held by event history, and the topics that have some.
    pub history: (usize, usize),
    /// The Redis link's counters, in cluster mode.
    pub cluster: Option<&'a crate::cluster::Stats>,
}

/// Renders every metric in the Prometheus text format.
pub fn render(workers: &[WorkerStats], process: Process) -> String {
    let mut out = String::with_capacity(8 << 10);
    let per_worker =
        |out: &mut String, name: &str, help: &str, kind: &str, f: &dyn Fn(&WorkerStats) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (i, w) in workers.iter().enumerate() {
                let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", f(w));
            }
        };
    let total = |f: &dyn Fn(&WorkerStats) -> u64| workers.iter().map(f).sum::<u64>();
    per_worker(
        &mut out,
        "ringcast_connections",
        "Open connections.",
        "gauge",
        &|w| w.connections.get(),
    );
    per_worker(
        &mut out,
        "ringcast_subscribers",
        "Streaming subscribers.",
        "gauge",
        &|w| w.subscribers.get(),
    );
    per_worker(
        &mut out,
        "ringcast_subscribed_topics",
        "Topics with subscribers (a topic followed on several workers counts on each).",
        "gauge",
        &|w| w.topics.get(),
    );
    per_worker(
        &mut out,
        "ringcast_fanout_saturated",
        "1 while most subscribers written to have over half of --max-queued-frames waiting: publishes are paced (each waits up to --max-lag).",
        "gauge",
        &|w| w.saturated.get(),
    );
    let _ = writeln!(
        out,
        "# HELP ringcast_fanout_lag_seconds How long queued frames waited for their worker \
         to start writing them (the last turn's longest).\n# TYPE ringcast_fanout_lag_seconds gauge"
    );
    for (i, w) in workers.iter().enumerate() {
        let seconds = w.lag.get() as f64 / 1000.0;
        let _ = writeln!(
            out,
            "ringcast_fanout_lag_seconds{{worker=\"{i}\"}} {seconds}"
        );
    }
    type Read<'a> = &'a dyn Fn(&WorkerStats) -> u64;
    let simple: [(&str, &str, &str, Read<'_>); 12] = [
        (
            "ringcast_subscriptions",
            "Topic subscriptions of streaming subscribers.",
            "gauge",
            &|w| w.subscriptions.get(),
        ),
        (
            "ringcast_events_published_total",
            "Events accepted for publishing.",
            "counter",
            &|w| w.published.get(),
        ),
        (
            "ringcast_publish_waits_total",
            "Publishes held back until fan-out caught up.",
            "counter",
            &|w| w.publish_waits.get(),
        ),
        (
            "ringcast_frames_delivered_total",
            "Event frames queued to subscribers.",
            "counter",
            &|w| w.frames.get(),
        ),
        (
            "ringcast_writes_total",
            "Write operations to subscribers.",
            "counter",
            &|w| w.writes.get(),
        ),
        (
            "ringcast_flushes_cut_total",
            "Flushes of subscriber writes ended early because a request came in.",
            "counter",
            &|w| w.flushes_cut.get(),
        ),
        (
            "ringcast_tls_handshakes_total",
            "TLS handshakes completed (refused ones close with reason tls).",
            "counter",
            &|w| w.tls_handshakes.get(),
        ),
        (
            "ringcast_bytes_written_total",
            "Bytes written to subscribers.",
            "counter",
            &|w| w.bytes.get(),
        ),
        (
            "ringcast_heartbeats_total",
            "Heartbeat comments sent.",
            "counter",
            &|w| w.heartbeats.get(),
        ),
        (
            "ringcast_replay_gaps_total",
            "Resumes that could not be served without loss.",
            "counter",
            &|w| w.replay_gaps.get(),
        ),
        (
            "ringcast_replayed_frames_total",
            "Frames replayed from history.",
            "counter",
            &|w| w.replayed.get(),
        ),
        (
            "ringcast_subscription_events_total",
            "join and leave events published on sys:subscriptions/ topics.",
            "counter",
            &|w| w.subscription_events.get(),
        ),
    ];
    for (name, help, kind, f) in simple {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            total(f)
        );
    }
    let _ = writeln!(out, "# HELP ringcast_closes_total Connections closed, by reason.\n# TYPE ringcast_closes_total counter");
    for reason in CloseReason::ALL {
        let n = total(&|w| w.closes[reason.index()].get());
        let _ = writeln!(
            out,
            "ringcast_closes_total{{reason=\"{}\"}} {n}",
            reason.name()
        );
    }
    let _ = writeln!(out, "# HELP ringcast_forward_auth_total Forward-auth checks (--auth-url), by outcome.\n# TYPE ringcast_forward_auth_total counter");
    for outcome in Outcome::ALL {
        let n = total(&|w| w.forward_auth[outcome.index()].get());
        let _ = writeln!(
            out,
            "ringcast_forward_auth_total{{outcome=\"{}\"}} {n}",
            outcome.name()
        );
    }
    let _ = writeln!(out, "# HELP ringcast_requests_total Responses sent, by status.\n# TYPE ringcast_requests_total counter");
    for (i, status) in STATUSES.iter().enumerate() {
        let n = total(&|w| w.statuses[i].get());
        let label = if *status == 0 {
            "other".to_string()
        } else {
            status.to_string()
        };
        let _ = writeln!(out, "ringcast_requests_total{{status=\"{label}\"}} {n}");
    }
    let (history_bytes, topics) = process.history;
    let _ = writeln!(
        out,
        "# HELP ringcast_history_bytes Memory held by event history.\n# TYPE ringcast_history_bytes gauge\n\
         ringcast_history_bytes {history_bytes}\n# HELP ringcast_topics Topics with history.\n\
         # TYPE ringcast_topics gauge\nringcast_topics {topics}"
    );
    render_latency(&mut out, workers);
    if let Some(cluster) = process.cluster {
        render_cluster(&mut out, cluster);
    }
    out
}

fn render_cluster(out: &mut String, stats: &crate::cluster::Stats) {
    use std::sync::atomic::Ordering::Relaxed;
    let up = u64::from(stats.up.load(Relaxed));
    let rows: [(&str, &str, &str, u64); 7] = [
        (
            "ringcast_cluster_up",
            "Whether the Redis stream is being read.",
            "gauge",
            up,
        ),
        (
            "ringcast_cluster_errors_total",
            "Failed Redis operations.",
            "counter",
            stats.errors.load(Relaxed),
        ),
        (
            "ringcast_cluster_reconnects_total",
            "Reconnection attempts to Redis.",
            "counter",
            stats.reconnects.load(Relaxed),
        ),
        (
            "ringcast_cluster_entries_read_total",
            "Stream entries read (all topics).",
            "counter",
            stats.read.load(Relaxed),
        ),
        (
            "ringcast_cluster_invalid_entries_total",
            "Stream entries that were not ringcast events.",
            "counter",
            stats.invalid.load(Relaxed),
        ),
        (
            "ringcast_cluster_publish_refused_total",
            "Publishes answered 503 because Redis was unavailable.",
            "counter",
            stats.refused.load(Relaxed),
        ),
        (
            "ringcast_cluster_gaps_total",
            "Reconnects that found stream entries missing (gap notices sent).",
            "counter",
            stats.gaps.load(Relaxed),
        ),
    ];
    for (name, help, kind, value) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

fn render_latency(out: &mut String, workers: &[WorkerStats]) {
    let name = "ringcast_publish_to_write_seconds";
    let _ = writeln!(out, "# HELP {name} Time from taking an id to submitting its writes, per worker batch.\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BOUNDS
        .iter()
        .map(|b| b.to_string())
        .chain(["+Inf".to_string()])
        .enumerate()
    {
        cumulative += workers.iter().map(|w| w.latency[i].get()).sum::<u64>();
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let sum: u64 = workers.iter().map(|w| w.latency_sum_us.get()).sum();
    let _ = writeln!(
        out,
        "{name}_sum {}\n{name}_count {cumulative}",
        sum as f64 / 1e6
    );
}
