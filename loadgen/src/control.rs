//! What a worker process's main thread tells its runtime threads (the run's phase,
//! publishing start, the last seq of each topic), and what they tell it back
//! (progress). Plain atomics: read a few times per tick, never per event.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

/// The run's phase, as the parent process announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Opening connections (and, for idle, holding them).
    Connecting = 0,
    /// The publisher is sending.
    Running = 1,
    /// Publishing ended; waiting for every subscriber to reach the last seq.
    Draining = 2,
    /// Close everything and report.
    Stopping = 3,
}

#[derive(Debug)]
pub struct Control {
    phase: AtomicU8,
    t0_ns: AtomicU64,
    drain_deadline_ns: AtomicU64,
    final_seq: OnceLock<Vec<u64>>,
    /// Set once every thread's runtime is up and the process's baseline RSS is read,
    /// so that "RSS per connection" holds connections only.
    connect_go: AtomicBool,
    /// Hard deadline of the run (CLOCK_MONOTONIC ns); everything stops by then.
    pub deadline_ns: u64,
}

impl Control {
    pub fn new(deadline_ns: u64) -> Control {
        Control {
            phase: AtomicU8::new(Phase::Connecting as u8),
            t0_ns: AtomicU64::new(0),
            drain_deadline_ns: AtomicU64::new(u64::MAX),
            final_seq: OnceLock::new(),
            connect_go: AtomicBool::new(false),
            deadline_ns,
        }
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Relaxed) {
            0 => Phase::Connecting,
            1 => Phase::Running,
            2 => Phase::Draining,
            _ => Phase::Stopping,
        }
    }

    /// Moves forward only: a late `Start` after `Stop` changes nothing.
    fn advance(&self, p: Phase) {
        self.phase.fetch_max(p as u8, Relaxed);
    }

    pub fn start(&self, t0_ns: u64) {
        self.t0_ns.store(t0_ns, Relaxed);
        self.advance(Phase::Running);
    }

    /// Publishing start (CLOCK_MONOTONIC ns), 0 before it.
    pub fn t0_ns(&self) -> u64 {
        self.t0_ns.load(Relaxed)
    }

    pub fn drain(&self, final_seq: Vec<u64>, deadline_ns: u64) {
        let _ = self.final_seq.set(final_seq);
        self.drain_deadline_ns.store(deadline_ns, Relaxed);
        self.advance(Phase::Draining);
    }

    pub fn drain_deadline_ns(&self) -> u64 {
        self.drain_deadline_ns.load(Relaxed)
    }

    /// Last seq published per topic, once draining.
    pub fn final_seq(&self) -> Option<&[u64]> {
        self.final_seq.get().map(Vec::as_slice)
    }

    pub fn allow_connects(&self) {
        self.connect_go.store(true, Relaxed);
    }

    pub fn connects_allowed(&self) -> bool {
        self.connect_go.load(Relaxed)
    }

    pub fn stop(&self) {
        self.advance(Phase::Stopping);
    }
}

/// Progress of one runtime thread, refreshed by its control task.
#[derive(Debug, Default)]
pub struct Progress {
    /// Subscribers streaming now.
    pub live: AtomicU64,
    /// First connects finished, successfully or not.
    pub settled: AtomicU64,
    pub failed: AtomicU64,
    pub events: AtomicU64,
    /// p99 latency so far (µs).
    pub p99_us: AtomicU64,
    /// The thread's runtime is built.
    pub started: AtomicBool,
    pub finished: AtomicBool,
}

impl Progress {
    pub fn set(&self, live: u64, settled: u64, failed: u64, events: u64) {
        self.live.store(live, Relaxed);
        self.settled.store(settled, Relaxed);
        self.failed.store(failed, Relaxed);
        self.events.store(events, Relaxed);
    }
}
