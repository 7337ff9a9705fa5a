//! The answer of a cache lookup and its `Cache-Status` field (RFC 9211).
//!
//! RFC 9211 section 2 describes one cache per list member: its name, then parameters. We are
//! one cache, named `cdn-origin`, and use:
//! - `hit` (2.1) when the response came from the cache without asking the store, with `ttl`
//!   (2.4) the freshness left; a stale entry served while a background refresh runs is also a
//!   hit, with a negative `ttl` and `detail=revalidating` (2.8);
//! - `fwd=uri-miss` (2.2) when the store was asked because the key was not cached, with
//!   `stored` (2.5) when the answer was kept and `collapsed` (2.6) when this request waited
//!   for another one's store request instead of making its own;
//! - `fwd=stale` with `detail=store-error` when the entry was stale, the store failed, and
//!   the stale entry was served anyway (stale-if-error);
//! - `fwd=bypass` when the cache is disabled.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::HeaderValue;

use crate::object::Object;

/// The cache's name in `Cache-Status` (an sf-token, RFC 9211 section 2).
pub const CACHE_NAME: &str = "cdn-origin";

/// How a lookup was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// From the cache, fresh (or revalidated with the store and found unchanged).
    Hit,
    /// From the store.
    Miss,
    /// A stale entry served on purpose.
    Stale(StaleReason),
    /// The cache is disabled; the store answered.
    Bypass,
}

/// Why a stale entry was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// Within the stale-while-revalidate window; a background refresh is running.
    Revalidating,
    /// The store failed, timed out or its breaker is open (stale-if-error).
    StoreError,
}

/// The result of [`super::HotCache::lookup`].
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The object; `None` means not found (404), possibly from the negative cache.
    pub object: Option<Arc<Object>>,
    /// How it was answered.
    pub status: CacheStatus,
    /// Seconds of freshness left; negative when stale; `None` when nothing is cached.
    pub ttl: Option<i64>,
    /// The answer was kept in the cache (RFC 9211 `stored`; meaningful for misses).
    pub stored: bool,
    /// This lookup waited for another lookup's store request (RFC 9211 `collapsed`).
    pub collapsed: bool,
    /// For a cached not-found: what it remembers of `KEY/index.html` ([`IndexMemo`]).
    pub index: Option<Arc<IndexMemo>>,
}

/// What a cached not-found for `KEY` remembers of `KEY/index.html`, whose existence decides
/// between a 404 and a 308 to `KEY/` (see [`crate::pipeline`]): asked once per negative
/// entry instead of on every request, and forgotten with the entry (the negative TTL, or a
/// purge of `KEY` or of `KEY/index.html`, which drops the not-found too), so it is never
/// older than the not-found itself may be.
#[derive(Debug, Default)]
pub struct IndexMemo(OnceLock<bool>);

impl IndexMemo {
    /// Whether `KEY/index.html` exists, once known.
    pub fn get(&self) -> Option<bool> {
        self.0.get().copied()
    }

    /// Remembers whether `KEY/index.html` exists (the first answer stays).
    pub fn set(&self, exists: bool) {
        let _ = self.0.set(exists);
    }
}

impl Lookup {
    /// The `Cache-Status` field value for this lookup (RFC 9211), for example
    /// `cdn-origin; hit; ttl=12` or `cdn-origin; fwd=uri-miss; stored`.
    pub fn cache_status_header(&self) -> HeaderValue {
        match (&self.status, self.ttl) {
            (CacheStatus::Hit, Some(ttl)) => RECENT_HITS.with_borrow_mut(|hits| hits.value(ttl)),
            _ => self.render(),
        }
    }

    /// Writes the value ([`Lookup::cache_status_header`] without the thread's memo).
    fn render(&self) -> HeaderValue {
        render(&self.status, self.ttl, self.stored, self.collapsed)
    }
}

/// Writes a `Cache-Status` value from the parts of a lookup it depends on.
fn render(status: &CacheStatus, ttl: Option<i64>, stored: bool, collapsed: bool) -> HeaderValue {
    let kind: &[u8] = match status {
        CacheStatus::Hit | CacheStatus::Stale(StaleReason::Revalidating) => b"; hit",
        CacheStatus::Stale(StaleReason::StoreError) => b"; fwd=stale",
        CacheStatus::Miss => b"; fwd=uri-miss",
        CacheStatus::Bypass => b"; fwd=bypass",
    };
    let mut digits = itoa::Buffer::new();
    let (ttl_key, ttl): (&[u8], &[u8]) = match ttl {
        Some(ttl) => (b"; ttl=", digits.format(ttl).as_bytes()),
        None => (b"", b""),
    };
    let stored: &[u8] = if stored && matches!(status, CacheStatus::Miss) {
        b"; stored"
    } else {
        b""
    };
    let collapsed: &[u8] = if collapsed && matches!(status, CacheStatus::Miss | CacheStatus::Bypass)
    {
        b"; collapsed"
    } else {
        b""
    };
    let detail: &[u8] = match status {
        CacheStatus::Stale(StaleReason::Revalidating) => b"; detail=revalidating",
        CacheStatus::Stale(StaleReason::StoreError) => b"; detail=store-error",
        _ => b"",
    };
    let parts = [
        CACHE_NAME.as_bytes(),
        kind,
        ttl_key,
        ttl,
        stored,
        collapsed,
        detail,
    ];
    // Sized exactly, so the buffer becomes the value's `Bytes` as it is: one allocation
    // per response (a buffer with room to spare costs a second one for its shared header).
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        v.extend_from_slice(part);
    }
    // Only ASCII tokens and integers are written above, so this cannot fail.
    HeaderValue::from_maybe_shared(Bytes::from(v))
        .unwrap_or_else(|_| HeaderValue::from_static(CACHE_NAME))
}

/// Slots of [`RecentHits`]: more than the seconds of freshness a hot object's ttl runs
/// through before it is refreshed at the defaults, so a loop renders each value about once.
const HIT_SLOTS: usize = 64;

thread_local! {
    /// The event loop's recent `hit` values (one per thread: no lock, no sharing).
    static RECENT_HITS: RefCell<RecentHits> = const { RefCell::new(RecentHits::new()) };
}

/// `cdn-origin; hit; ttl=N` by `N`, direct-mapped: a hit's value depends on its ttl alone,
/// which changes once a second, so nearly every cache hit, the most common response, clones
/// a rendered value (a reference count) instead of writing and checking a new one.
struct RecentHits([(i64, Option<HeaderValue>); HIT_SLOTS]);

impl RecentHits {
    const fn new() -> RecentHits {
        RecentHits([const { (0, None) }; HIT_SLOTS])
    }

    fn value(&mut self, ttl: i64) -> HeaderValue {
        // `rem_euclid` of a positive modulus is in 0..HIT_SLOTS, negative ttls too.
        let slot = &mut self.0[ttl.rem_euclid(HIT_SLOTS as i64) as usize];
        match slot {
            (kept, Some(value)) if *kept == ttl => value.clone(),
            _ => {
                let value = render(&CacheStatus::Hit, Some(ttl), false, false);
                *slot = (ttl, Some(value.clone()));
                value
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(status: CacheStatus, ttl: Option<i64>, stored: bool, collapsed: bool) -> Lookup {
        Lookup {
            object: None,
            status,
            ttl,
            stored,
            collapsed,
            index: None,
        }
    }

    #[test]
    fn cache_status_values_follow_rfc_9211() {
        use CacheStatus::*;
        let table = [
            (
                lookup(Hit, Some(12), false, false),
                "cdn-origin; hit; ttl=12",
            ),
            (
                lookup(Miss, Some(30), true, false),
                "cdn-origin; fwd=uri-miss; ttl=30; stored",
            ),
            (
                lookup(Miss, None, false, true),
                "cdn-origin; fwd=uri-miss; collapsed",
            ),
            (
                lookup(Stale(StaleReason::Revalidating), Some(-3), false, false),
                "cdn-origin; hit; ttl=-3; detail=revalidating",
            ),
            (
                lookup(Stale(StaleReason::StoreError), Some(-40), false, true),
                "cdn-origin; fwd=stale; ttl=-40; detail=store-error",
            ),
            (lookup(Bypass, None, false, false), "cdn-origin; fwd=bypass"),
            (lookup(Hit, Some(4), true, true), "cdn-origin; hit; ttl=4"),
        ];
        for (lookup, want) in table {
            assert_eq!(lookup.cache_status_header(), want, "{lookup:?}");
        }
    }

    proptest::proptest! {
        /// Hits answered from the thread's recent values equal freshly written ones, with
        /// ttls that share a slot (64 apart), negative ttls and the extremes.
        #[test]
        fn remembered_hit_values_equal_written_ones(
            ttls in proptest::collection::vec(
                proptest::prop_oneof![-130i64..130, proptest::prelude::any::<i64>()],
                1..80,
            )
        ) {
            for ttl in ttls {
                let hit = lookup(CacheStatus::Hit, Some(ttl), false, false);
                proptest::prop_assert_eq!(hit.cache_status_header(), hit.render());
                let want = format!("cdn-origin; hit; ttl={ttl}");
                proptest::prop_assert_eq!(hit.cache_status_header(), want.as_str());
            }
        }
    }
}
