//! Per-worker timers.
