//! The line protocol between the parent process and its worker processes: one JSON
//! object per line, plan and commands on the worker's stdin, progress and results on
//! its stdout. A worker whose stdin closes (the parent died) stops by itself.

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::stats::{Counters, Failures, HistDumps};
use crate::tls::Negotiated;

/// First line to a worker: the run's plan and the worker's slice of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildPlan {
    pub plan: Plan,
    /// Global index of the worker's first subscriber.
    pub first: u32,
    pub count: u32,
    /// This worker's share of the connect rate and of the connects in flight.
    pub connect_rate: f64,
    pub connect_inflight: u32,
    /// Hard deadline (CLOCK_MONOTONIC ns, host-wide).
    pub deadline_ns: u64,
}

/// Parent to worker, after the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToChild {
    /// Publishing starts at `t0_ns`.
    Start { t0_ns: u64 },
    /// Publishing ended; `final_seq[t]` is the last seq of topic t. Finish when every
    /// subscriber has it, or at `deadline_ns`.
    Drain {
        final_seq: Vec<u64>,
        deadline_ns: u64,
    },
    /// Close everything and report.
    Stop,
}

/// Worker to parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromChild {
    Progress(Snapshot),
    /// Every first connect has finished (established or failed).
    Ready {
        rss_bytes: u64,
    },
    Result(Box<ShardResult>),
    /// The worker could not run at all.
    Error(String),
}

/// A progress snapshot, summed over the worker's threads.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub live: u64,
    pub settled: u64,
    pub failed: u64,
    pub events: u64,
    /// Highest p99 of the worker's threads (µs): an approximation for the live line.
    pub p99_us: u64,
}

/// Everything a worker measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardResult {
    pub counters: Counters,
    pub connect_failures: Failures,
    pub reconnect_failures: Failures,
    pub hists: HistDumps,
    /// Own RSS at start, once connected, and at the end.
    pub rss_start_bytes: u64,
    pub rss_ready_bytes: u64,
    pub rss_end_bytes: u64,
    /// Own CPU seconds: all, and from `Start` to the end.
    pub cpu_s: f64,
    pub cpu_run_s: f64,
    pub threads: u32,
    /// io_uring, or epoll when io_uring is unavailable.
    pub io_driver: String,
    /// The first TLS session of the worker's threads (https only).
    pub tls: Option<Negotiated>,
    pub errors: Vec<String>,
}
