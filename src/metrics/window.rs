//! Running totals and a rolling 15-minute window of per-second buckets.
//!
//! Prometheus computes rates from counters on its side, but `/health/detailed` and the database
//! writer need the hit ratio over the last 1, 5 and 15 minutes and per-minute deltas without a
//! Prometheus server. A ring of 900 one-second slots answers any window up to 15 minutes with
//! one-second resolution; each slot is a handful of atomics, so recording a request takes no
//! lock except for the first request of a new second, which resets the slot it reuses under a
//! short mutex (never held across an await).

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::Release};

/// Number of one-second slots: the longest window (15 minutes).
pub(crate) const WINDOW_SLOTS: u64 = 15 * 60;

/// Plain counts of requests and bytes, summed over some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub bypass: u64,
    pub bytes_sent: u64,
    pub saved_not_modified: u64,
    pub saved_compression: u64,
    pub store_bytes: u64,
}

impl Tally {
    /// Field-wise `self - earlier`, saturating (the counters only grow, so this is the delta).
    pub fn since(&self, earlier: &Tally) -> Tally {
        Tally {
            requests: self.requests.saturating_sub(earlier.requests),
            hits: self.hits.saturating_sub(earlier.hits),
            misses: self.misses.saturating_sub(earlier.misses),
            stale: self.stale.saturating_sub(earlier.stale),
            bypass: self.bypass.saturating_sub(earlier.bypass),
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            saved_not_modified: self
                .saved_not_modified
                .saturating_sub(earlier.saved_not_modified),
            saved_compression: self
                .saved_compression
                .saturating_sub(earlier.saved_compression),
            store_bytes: self.store_bytes.saturating_sub(earlier.store_bytes),
        }
    }
}

/// Running totals since start, one atomic per field.
#[derive(Debug, Default)]
pub(crate) struct AtomicTally {
    requests: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    bypass: AtomicU64,
    bytes_sent: AtomicU64,
    saved_not_modified: AtomicU64,
    saved_compression: AtomicU64,
    store_bytes: AtomicU64,
}

impl AtomicTally {
    pub fn add(&self, t: &Tally) {
        add_nonzero(&self.requests, t.requests);
        add_nonzero(&self.hits, t.hits);
        add_nonzero(&self.misses, t.misses);
        add_nonzero(&self.stale, t.stale);
        add_nonzero(&self.bypass, t.bypass);
        add_nonzero(&self.bytes_sent, t.bytes_sent);
        add_nonzero(&self.saved_not_modified, t.saved_not_modified);
        add_nonzero(&self.saved_compression, t.saved_compression);
        add_nonzero(&self.store_bytes, t.store_bytes);
    }

    pub fn load(&self) -> Tally {
        Tally {
            requests: self.requests.load(Relaxed),
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stale: self.stale.load(Relaxed),
            bypass: self.bypass.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            saved_not_modified: self.saved_not_modified.load(Relaxed),
            saved_compression: self.saved_compression.load(Relaxed),
            store_bytes: self.store_bytes.load(Relaxed),
        }
    }
}

fn add_nonzero(a: &AtomicU64, v: u64) {
    if v != 0 {
        a.fetch_add(v, Relaxed);
    }
}

/// One second of traffic. `stamp` is the second it holds plus one (0 = never used).
#[derive(Debug, Default)]
struct Slot {
    stamp: AtomicU64,
    requests: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    bytes_sent: AtomicU64,
}

/// The subset of a [`Tally`] the window keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowCounts {
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub bytes_sent: u64,
}

/// The ring of per-second slots.
#[derive(Debug)]
pub(crate) struct Window {
    slots: Box<[Slot]>,
    rotate: Mutex<()>,
}

impl Window {
    pub fn new() -> Window {
        Window {
            slots: (0..WINDOW_SLOTS).map(|_| Slot::default()).collect(),
            rotate: Mutex::new(()),
        }
    }

    fn slot_for(&self, second: u64) -> &Slot {
        // The index is below WINDOW_SLOTS, which fits in usize.
        &self.slots[(second % WINDOW_SLOTS) as usize]
    }

    /// Adds `t` to the slot of `second` (seconds since the metrics started).
    pub fn add(&self, second: u64, t: &Tally) {
        let slot = self.slot_for(second);
        let stamp = second + 1;
        if slot.stamp.load(std::sync::atomic::Ordering::Acquire) != stamp {
            let _guard = self.rotate.lock();
            if slot.stamp.load(Relaxed) != stamp {
                // Reset the counts before publishing the new stamp, so a reader or writer that
                // sees the new stamp never sees the old second's counts.
                slot.requests.store(0, Relaxed);
                slot.hits.store(0, Relaxed);
                slot.misses.store(0, Relaxed);
                slot.stale.store(0, Relaxed);
                slot.bytes_sent.store(0, Relaxed);
                slot.stamp.store(stamp, Release);
            }
        }
        add_nonzero(&slot.requests, t.requests);
        add_nonzero(&slot.hits, t.hits);
        add_nonzero(&slot.misses, t.misses);
        add_nonzero(&slot.stale, t.stale);
        add_nonzero(&slot.bytes_sent, t.bytes_sent);
    }

    /// Sums the last `span` seconds up to and including `now` (capped at the ring length).
    pub fn sum(&self, now: u64, span: u64) -> WindowCounts {
        let span = span.min(WINDOW_SLOTS);
        let first = (now + 1).saturating_sub(span);
        let mut out = WindowCounts::default();
        for second in first..=now {
            let slot = self.slot_for(second);
            if slot.stamp.load(std::sync::atomic::Ordering::Acquire) != second + 1 {
                continue;
            }
            out.requests += slot.requests.load(Relaxed);
            out.hits += slot.hits.load(Relaxed);
            out.misses += slot.misses.load(Relaxed);
            out.stale += slot.stale.load(Relaxed);
            out.bytes_sent += slot.bytes_sent.load(Relaxed);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hit(bytes: u64) -> Tally {
        Tally {
            requests: 1,
            hits: 1,
            bytes_sent: bytes,
            ..Tally::default()
        }
    }

    #[test]
    fn window_sums_only_the_requested_span() {
        let w = Window::new();
        w.add(0, &one_hit(10));
        w.add(30, &one_hit(20));
        w.add(59, &one_hit(40));
        assert_eq!(w.sum(59, 60).requests, 3);
        assert_eq!(w.sum(59, 60).bytes_sent, 70);
        assert_eq!(
            w.sum(60, 60).bytes_sent,
            60,
            "second 0 left the 1-minute window"
        );
        assert_eq!(w.sum(59, 30).bytes_sent, 60, "seconds 30..=59");
        assert_eq!(w.sum(59, 29).bytes_sent, 40, "seconds 31..=59");
    }

    #[test]
    fn reused_slot_forgets_the_old_second() {
        let w = Window::new();
        w.add(5, &one_hit(100));
        w.add(5 + WINDOW_SLOTS, &one_hit(1));
        assert_eq!(w.sum(5 + WINDOW_SLOTS, WINDOW_SLOTS).bytes_sent, 1);
        // A slot last written more than 15 minutes ago is not counted even if not reused.
        w.add(7, &one_hit(100));
        assert_eq!(w.sum(7 + WINDOW_SLOTS, WINDOW_SLOTS).bytes_sent, 1);
    }

    #[test]
    fn tally_delta_subtracts_fieldwise() {
        let a = Tally {
            requests: 10,
            hits: 7,
            bytes_sent: 500,
            ..Tally::default()
        };
        let b = Tally {
            requests: 4,
            hits: 2,
            bytes_sent: 100,
            ..Tally::default()
        };
        let d = a.since(&b);
        assert_eq!((d.requests, d.hits, d.bytes_sent), (6, 5, 400));
    }
}
