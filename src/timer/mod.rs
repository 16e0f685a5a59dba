//! Per-worker timers: the "expired timers" step of the worker loop.
//!
//! - [`Timers`]: a worker's wheel and the clock it counts in, one per worker.
//! - [`wheel`]: the hierarchical timing wheel, keyed by slab index.
//! - `list`: its storage, intrusive lists threaded through one key-indexed `Vec`.
//! - [`clock`]: ticks since the worker started, and their `Instant`s.

pub mod clock;
mod list;
pub mod wheel;

use std::time::{Duration, Instant};

pub use clock::Clock;
pub use wheel::{Wheel, MAX_KEY};

#[cfg(test)]
mod wheel_model;
#[cfg(test)]
mod wheel_tests;

/// One timer per connection key, in ticks of one clock.
pub struct Timers {
    wheel: Wheel,
    clock: Clock,
}

impl Timers {
    pub fn new(tick: Duration) -> Timers {
        Timers {
            wheel: Wheel::new(),
            clock: Clock::new(tick),
        }
    }

    /// Ticks since the worker started.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// A duration in ticks, rounded up so timers never fire early.
    pub fn ticks(&self, d: Duration) -> u64 {
        self.clock.ticks(d)
    }

    /// Milliseconds since the worker started, wrapping.
    pub fn millis(&self) -> u32 {
        self.clock.millis()
    }

    pub fn instant(&self, tick: u64) -> Instant {
        self.clock.instant(tick)
    }

    /// Sets `key`'s one timer to fire at tick `at`, replacing any earlier setting.
    pub fn set(&mut self, key: u32, at: u64) {
        self.wheel.insert(key, at);
    }

    pub fn cancel(&mut self, key: u32) {
        self.wheel.cancel(key);
    }

    /// The next key whose timer is due at tick `now`, removed from the wheel.
    pub fn poll(&mut self, now: u64) -> Option<u32> {
        self.wheel.poll(now)
    }

    /// When the earliest timer fires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.wheel.next_expiry().map(|t| self.clock.instant(t))
    }
}
