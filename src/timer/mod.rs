//! Per-worker timers.
pub mod wheel;
