//! Per-worker timers: the "expired timers" step of the worker loop.
//!
//! - [`wheel`]: the hierarchical timing wheel, keyed by slab index, one per worker.
//! - `list`: its storage, intrusive lists threaded through one key-indexed `Vec`.

mod list;
pub mod wheel;

pub use wheel::{Wheel, MAX_KEY};

#[cfg(test)]
mod wheel_model;
#[cfg(test)]
mod wheel_tests;
