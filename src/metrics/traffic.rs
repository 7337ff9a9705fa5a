//! The hit-rate and bandwidth figures reported by `/health/detailed` and written per minute to
//! the database. The hit-ratio definition is in the parent module's documentation.

use super::window::{Tally, Window, WindowCounts};
use serde::Serialize;
use std::time::Duration;

/// Hit ratio (`hits / (hits + misses + stale)`), `None` when there was no cache decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HitRatios {
    /// Since the process started.
    pub since_start: Option<f64>,
    /// Over the last minute.
    pub last_1m: Option<f64>,
    /// Over the last 5 minutes.
    pub last_5m: Option<f64>,
    /// Over the last 15 minutes.
    pub last_15m: Option<f64>,
}

/// A per-second rate over the last 1, 5 and 15 minutes (or the uptime, if shorter).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Over the last minute.
    pub last_1m: f64,
    /// Over the last 5 minutes.
    pub last_5m: f64,
    /// Over the last 15 minutes.
    pub last_15m: f64,
}

/// Request counts since start, by cache status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// All responses.
    pub total: u64,
    /// Cache hits.
    pub hits: u64,
    /// Cache misses.
    pub misses: u64,
    /// Stale answers.
    pub stale: u64,
    /// Requests that did not involve the cache.
    pub bypass: u64,
}

/// Bytes not sent since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BytesSaved {
    /// By 304 responses: the body sizes the 200s would have sent.
    pub not_modified: u64,
    /// By content coding: original minus encoded sizes.
    pub compression: u64,
    /// The sum of both.
    pub total: u64,
}

/// Hit rate and bandwidth at a glance (part of `/health/detailed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficSnapshot {
    /// Seconds since the metrics were created.
    pub uptime_seconds: f64,
    /// Hit ratios since start and over the recent windows.
    pub hit_ratio: HitRatios,
    /// Request counts since start.
    pub requests: RequestCounts,
    /// Requests per second over the recent windows.
    pub requests_per_second: Rates,
    /// Response body bytes sent since start.
    pub bytes_sent: u64,
    /// Body bytes per second over the recent windows.
    pub bytes_sent_per_second: Rates,
    /// Bytes saved since start.
    pub bytes_saved: BytesSaved,
    /// Bytes read from the object stores since start.
    pub bytes_from_store: u64,
}

/// Totals of one minute for the database writer ([`super::Metrics::take_minute`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MinuteTotals {
    /// Responses.
    pub requests: u64,
    /// Cache hits.
    pub hits: u64,
    /// Cache misses.
    pub misses: u64,
    /// Stale answers.
    pub stale: u64,
    /// Requests that bypassed the cache.
    pub bypass: u64,
    /// Body bytes sent.
    pub bytes_sent: u64,
    /// Bytes saved by 304s and compression.
    pub bytes_saved: u64,
    /// Bytes read from the stores.
    pub store_bytes: u64,
}

impl MinuteTotals {
    /// Whether nothing happened in the minute.
    pub fn is_empty(&self) -> bool {
        *self == MinuteTotals::default()
    }
}

impl From<Tally> for MinuteTotals {
    fn from(t: Tally) -> MinuteTotals {
        MinuteTotals {
            requests: t.requests,
            hits: t.hits,
            misses: t.misses,
            stale: t.stale,
            bypass: t.bypass,
            bytes_sent: t.bytes_sent,
            bytes_saved: t.saved_not_modified.saturating_add(t.saved_compression),
            store_bytes: t.store_bytes,
        }
    }
}

/// `hits / (hits + misses + stale)`, or `None` without any cache decision.
/// The hit-ratio definition shared by every report (see the module docs).
pub fn hit_ratio(hits: u64, misses: u64, stale: u64) -> Option<f64> {
    let decided = hits.saturating_add(misses).saturating_add(stale);
    (decided > 0).then(|| hits as f64 / decided as f64)
}

fn ratio_of(c: &WindowCounts) -> Option<f64> {
    hit_ratio(c.hits, c.misses, c.stale)
}

impl TrafficSnapshot {
    pub(crate) fn build(totals: &Tally, window: &Window, uptime: Duration) -> TrafficSnapshot {
        let now = uptime.as_secs();
        let spans = [60u64, 300, 900].map(|span| window.sum(now, span));
        // A rate is taken over the window or the uptime, whichever is shorter, so the first
        // seconds after start do not read as a tenth of the real rate. At least one second.
        let per_sec = |n: u64, span: u64| {
            let secs = uptime.as_secs_f64().clamp(1.0, span as f64);
            n as f64 / secs
        };
        let rates = |pick: fn(&WindowCounts) -> u64| Rates {
            last_1m: per_sec(pick(&spans[0]), 60),
            last_5m: per_sec(pick(&spans[1]), 300),
            last_15m: per_sec(pick(&spans[2]), 900),
        };
        TrafficSnapshot {
            uptime_seconds: uptime.as_secs_f64(),
            hit_ratio: HitRatios {
                since_start: hit_ratio(totals.hits, totals.misses, totals.stale),
                last_1m: ratio_of(&spans[0]),
                last_5m: ratio_of(&spans[1]),
                last_15m: ratio_of(&spans[2]),
            },
            requests: RequestCounts {
                total: totals.requests,
                hits: totals.hits,
                misses: totals.misses,
                stale: totals.stale,
                bypass: totals.bypass,
            },
            requests_per_second: rates(|c| c.requests),
            bytes_sent: totals.bytes_sent,
            bytes_sent_per_second: rates(|c| c.bytes_sent),
            bytes_saved: BytesSaved {
                not_modified: totals.saved_not_modified,
                compression: totals.saved_compression,
                total: totals
                    .saved_not_modified
                    .saturating_add(totals.saved_compression),
            },
            bytes_from_store: totals.store_bytes,
        }
    }
}
