//! The load generator's accounting: per-shard counters, snapshots of their sum, loss, and the
//! latency histogram.
//!
//! Each shard owns one [`Counters`] and is its only writer; the main thread reads all of them
//! for the progress line and at phase boundaries. Single writer means an increment is a plain
//! load and store (no locked instruction on the hot path), and the reader still sees every
//! value the writer stored. Rates come from the difference of two snapshots taken by the main
//! thread at the start and end of the measurement window; totals (and so loss) cover the whole
//! run, warm-up included, read after the drain period.

use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Adds `n` to a counter this thread alone writes.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed) + n, Relaxed);
}

/// Subtracts `n` from a counter this thread alone writes (gauges such as `sessions`).
#[inline]
pub fn unbump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).saturating_sub(n), Relaxed);
}

/// One shard's counters. Every field counts messages (or sessions) since the run began.
#[derive(Debug, Default)]
pub struct Counters {
    /// PUBLISH / CALL messages written to the socket (connect: attempts).
    pub sent: AtomicU64,
    /// Deliveries the sent messages should cause: subscribers of the topic per PUBLISH, one
    /// RESULT per CALL, one WELCOME per connect attempt.
    pub expected: AtomicU64,
    /// PUBLISHED acknowledgements received.
    pub acked: AtomicU64,
    /// EVENT / RESULT received (connect: sessions established and closed).
    pub delivered: AtomicU64,
    /// ERROR replies, refused sessions, failed connects.
    pub errors: AtomicU64,
    /// Sessions whose connection ended before the run did.
    pub disconnects: AtomicU64,
    /// Sessions currently joined.
    pub sessions: AtomicU64,
    /// Sender tasks that have finished sending (count mode, stop).
    pub senders_done: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            sent: self.sent.load(Relaxed),
            expected: self.expected.load(Relaxed),
            acked: self.acked.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            errors: self.errors.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            sessions: self.sessions.load(Relaxed),
            senders_done: self.senders_done.load(Relaxed),
        }
    }
}

/// The counters of all shards, summed, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub sent: u64,
    pub expected: u64,
    pub acked: u64,
    pub delivered: u64,
    pub errors: u64,
    pub disconnects: u64,
    pub sessions: u64,
    pub senders_done: u64,
}

impl Snapshot {
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Counters>) -> Snapshot {
        all.into_iter().fold(Snapshot::default(), |acc, c| {
            let s = c.snapshot();
            Snapshot {
                sent: acc.sent + s.sent,
                expected: acc.expected + s.expected,
                acked: acc.acked + s.acked,
                delivered: acc.delivered + s.delivered,
                errors: acc.errors + s.errors,
                disconnects: acc.disconnects + s.disconnects,
                sessions: acc.sessions + s.sessions,
                senders_done: acc.senders_done + s.senders_done,
            }
        })
    }

    /// Deliveries owed and not made. Exact once every sender stopped and the drain ended.
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }

    /// Deliveries beyond what was sent (duplicates, or a router inventing messages).
    pub fn surplus(&self) -> u64 {
        self.delivered.saturating_sub(self.expected)
    }
}

impl Sub for Snapshot {
    type Output = Snapshot;
    fn sub(self, o: Snapshot) -> Snapshot {
        Snapshot {
            sent: self.sent - o.sent,
            expected: self.expected - o.expected,
            acked: self.acked - o.acked,
            delivered: self.delivered - o.delivered,
            errors: self.errors - o.errors,
            disconnects: self.disconnects - o.disconnects,
            sessions: self.sessions.wrapping_sub(o.sessions),
            senders_done: self.senders_done - o.senders_done,
        }
    }
}

/// Highest latency the histogram keeps exactly (larger values are clamped): one hour.
const MAX_TRACKABLE_NS: u64 = 3_600_000_000_000;

/// A new latency histogram (nanoseconds, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    // Cannot fail: the bounds are constants that satisfy the constructor's rules.
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3).expect("valid histogram bounds")
}

/// A shard's latency recorder: keeps only samples received inside the measurement window.
pub struct Latency {
    pub hist: RefCell<Histogram<u64>>,
    /// `[from, to)` in [`crate::clock::now_ns`] time; empty until the run starts.
    window: Cell<(u64, u64)>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            hist: RefCell::new(new_histogram()),
            window: Cell::new((u64::MAX, u64::MAX)),
        }
    }
}

impl Latency {
    pub fn set_window(&self, from: u64, to: u64) {
        self.window.set((from, to));
    }

    /// Whether `now` is inside the measurement window.
    #[inline]
    pub fn in_window(&self, now: u64) -> bool {
        let (from, to) = self.window.get();
        now >= from && now < to
    }

    /// Records `now - sent` if `now` is in the window.
    #[inline]
    pub fn record(&self, sent: u64, now: u64) {
        if self.in_window(now) {
            self.hist
                .borrow_mut()
                .saturating_record(now.saturating_sub(sent).max(1));
        }
    }
}

/// Percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters of several shards add up exactly, and differences of snapshots give window
    /// counts.
    #[test]
    fn snapshots_sum_and_subtract_exactly() {
        let shards: Vec<Counters> = (0..3).map(|_| Counters::default()).collect();
        for (i, c) in shards.iter().enumerate() {
            for _ in 0..1000 {
                bump(&c.sent, 1);
                bump(&c.expected, 4);
            }
            bump(&c.delivered, 4000 - i as u64);
        }
        let before = Snapshot::sum(&shards);
        assert_eq!(before.sent, 3000);
        assert_eq!(before.expected, 12_000);
        assert_eq!(before.delivered, 12_000 - 3);
        assert_eq!(before.lost(), 3);
        assert_eq!(before.surplus(), 0);
        bump(&shards[1].delivered, 10);
        let after = Snapshot::sum(&shards);
        assert_eq!((after - before).delivered, 10);
        assert_eq!(after.lost(), 0);
        assert_eq!(after.surplus(), 7);
    }

    #[test]
    fn latency_keeps_only_the_window() {
        let l = Latency::default();
        l.record(0, 5);
        assert!(l.hist.borrow().is_empty());
        l.set_window(100, 200);
        l.record(50, 99);
        l.record(50, 100);
        l.record(150, 199);
        l.record(0, 200);
        let h = l.hist.borrow();
        assert_eq!(h.len(), 2);
        assert_eq!(h.max(), 50);
        assert_eq!(h.min(), 49);
    }

    #[test]
    fn summary_in_microseconds() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99 - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max - 1000.0).abs() < 1.0, "{s:?}");
    }
}
