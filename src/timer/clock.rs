//! A worker's clock: ticks of its timer wheel since the worker started.

use std::time::{Duration, Instant};

/// Ticks since the worker started; `u32` in connection entries (497 days at 10 ms),
/// `u64` in the wheel.
pub struct Clock {
    start: Instant,
    tick: Duration,
}

impl Clock {
    pub fn new(tick: Duration) -> Clock {
        Clock {
            start: Instant::now(),
            tick,
        }
    }

    pub fn now(&self) -> u64 {
        (self.start.elapsed().as_nanos() / self.tick.as_nanos()) as u64
    }

    /// A duration in ticks, rounded up so timers never fire early.
    pub fn ticks(&self, d: Duration) -> u64 {
        d.as_nanos().div_ceil(self.tick.as_nanos()) as u64
    }

    /// Milliseconds since the worker started, wrapping (compare with `wrapping_sub`).
    pub fn millis(&self) -> u32 {
        self.start.elapsed().as_millis() as u32
    }

    pub fn instant(&self, tick: u64) -> Instant {
        self.start + self.tick * u32::try_from(tick).unwrap_or(u32::MAX)
    }
}
