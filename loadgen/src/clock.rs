//! One monotonic clock for the whole process.
//!
//! `Instant` is CLOCK_MONOTONIC on Linux, the same clock on every thread, so nanoseconds since
//! one process-wide base taken on one shard can be compared with those read on another: a
//! timestamp written into a payload by a publisher on shard 0 gives a true latency when a
//! subscriber on shard 1 reads it.

use std::sync::OnceLock;
use std::time::Instant;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process-wide base.
#[inline]
pub fn now_ns() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
