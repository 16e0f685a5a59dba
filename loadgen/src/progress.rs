//! The live progress line on stderr: connections, failures, publish and receive
//! rates, p99 so far. Redrawn in place on a terminal, one line every few seconds
//! otherwise (logs stay short).

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::plan::Plan;
use crate::protocol::Snapshot;
use crate::publisher::Live;
use crate::sys::mono_ns;

/// Redraw period on a terminal.
const TTY_EVERY_NS: u64 = 500_000_000;
/// Line period when stderr is a file or pipe.
const LOG_EVERY_NS: u64 = 5_000_000_000;

pub struct Line {
    quiet: bool,
    tty: bool,
    scenario: &'static str,
    target: u32,
    start: u64,
    last_draw: u64,
    last_events: u64,
    last_sent: u64,
    publisher: Option<Arc<Live>>,
}

impl Line {
    pub fn new(plan: &Plan, quiet: bool) -> Line {
        let now = mono_ns();
        Line {
            quiet,
            tty: std::io::stderr().is_terminal(),
            scenario: plan.scenario.name(),
            target: plan.connections,
            start: now,
            last_draw: now,
            last_events: 0,
            last_sent: 0,
            publisher: None,
        }
    }

    pub fn set_publisher(&mut self, live: Arc<Live>) {
        self.publisher = Some(live);
    }

    /// Redraws if due.
    pub fn tick(&mut self, shards: &[Snapshot]) {
        let now = mono_ns();
        let every = if self.tty { TTY_EVERY_NS } else { LOG_EVERY_NS };
        if self.quiet || now - self.last_draw < every {
            return;
        }
        let dt = (now - self.last_draw) as f64 / 1e9;
        let sum = |f: fn(&Snapshot) -> u64| shards.iter().map(f).sum::<u64>();
        let (live, failed, events) = (sum(|s| s.live), sum(|s| s.failed), sum(|s| s.events));
        let p99 = shards.iter().map(|s| s.p99_us).max().unwrap_or(0);
        let sent = self.publisher.as_ref().map_or(0, |l| l.sent.load(Relaxed));
        let text = format!(
            "[{} {:>6.1}s] conns {live}/{} failed {failed} | pub {:.0}/s | recv {:.0}/s | p99 {p99}us",
            self.scenario,
            (now - self.start) as f64 / 1e9,
            self.target,
            (sent - self.last_sent.min(sent)) as f64 / dt,
            (events - self.last_events.min(events)) as f64 / dt,
        );
        (self.last_draw, self.last_events, self.last_sent) = (now, events, sent);
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{text}")
        } else {
            writeln!(err, "{text}")
        };
    }

    /// Ends the in-place line so the table starts on its own line.
    pub fn finish(&self) {
        if self.tty && !self.quiet {
            eprintln!();
        }
    }
}
