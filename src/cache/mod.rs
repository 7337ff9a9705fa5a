//! The hot cache in front of the object stores (issue 4).
//!
//! [`HotCache::lookup`] answers "what is under this key?" with an [`Object`] (or not-found)
//! and a [`CacheStatus`]; a hit and a miss return the same `Object`, so the rest of the
//! pipeline treats them alike (point 10). In order:
//!
//! 1. **Fresh entry** (confirmed by the store less than `revalidate_after` ago): a hit. A
//!    cached not-found is fresh for `negative_ttl` (point 7), then simply asked for again: a
//!    not-found is never served stale.
//! 2. **Stale within `stale_while_revalidate`** (RFC 5861 section 3): served at once as
//!    `Stale(Revalidating)` while one background refresh runs.
//! 3. **Stale beyond that**: revalidated before answering (point 2). The refresh asks the store
//!    for metadata only (a HEAD, plus the sidecars' HEADs for compressible types); when size,
//!    modification time, the store's ETag and version are unchanged, only the entry's timestamp
//!    moves and no body is transferred. A changed object is loaded again and replaces the entry
//!    with its variants.
//! 4. **Not cached**: loaded through the [`Loader`].
//!
//! **Single flight** (point 3): at most one store request per key is in flight. It runs as its
//! own task, so a client that disconnects does not cancel a fill others wait for, and every
//! waiter gets the same result or the same `Arc<StoreError>`. The waiters hold a
//! `futures::future::Shared` of the task's output.
//!
//! **Compressed variants** (`variants.rs`) are made once per object version and encoding
//! too, by one task that the others wait for, and a few at a time.
//!
//! **stale-if-error** (RFC 5861 section 4, point 5): when the refresh of a stale entry fails,
//! times out, or meets an open circuit breaker ([`StoreError::CircuitOpen`]), an entry that
//! went stale less than `stale_if_error` ago is served as `Stale(StoreError)`; otherwise the
//! error goes to the caller (502/503/504).
//!
//! **Memory** (point 1): entries live in a byte-bounded LRU (`entries.rs`) that never exceeds
//! `budget`. Objects above `max_object` keep their metadata only (the body streams from the
//! store). A budget of 0 disables caching: every lookup goes to the loader (still coalesced)
//! and reports `Bypass`.
//!
//! One `parking_lot` read-write lock guards the LRU and the flight table together, so "not
//! cached and no flight" is decided atomically under the write lock; it is held for map
//! operations only, never across an await. Fresh hits need only the read lock (see
//! `HotCache::fresh_hit`), so hits on different event loops never wait for each other, except
//! a hit on an entry that has drifted out of the front quarter of the recency list, which
//! takes the write lock to move it (`entries.rs`).

pub mod breaker;
mod entries;
mod flight;
mod status;
#[cfg(test)]
mod tests;
mod variants;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::encoding::Encoding;
use crate::etag::ETag;
use crate::object::{Loader, Object};
use crate::store::StoreError;

pub use breaker::{BreakerPermit, BreakerState, CircuitBreaker};
pub use status::{CACHE_NAME, CacheStatus, IndexMemo, Lookup, StaleReason};

use entries::{ByteLru, Entry};
use flight::{Flight, FlightKind};

/// Hot cache settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Total bytes the cache may hold; 0 disables it.
    pub budget: u64,
    /// Bodies above this size are not kept (their metadata is).
    pub max_object: u64,
    /// How long the store's answer stays fresh before revalidation.
    pub revalidate_after: Duration,
    /// After freshness ends, how long a stale entry is served while refreshing in the background.
    pub stale_while_revalidate: Duration,
    /// After freshness ends, how long a stale entry may stand in for a failing store.
    pub stale_if_error: Duration,
    /// How long a not-found answer is remembered.
    pub negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            budget: 256 * 1024 * 1024,
            max_object: 8 * 1024 * 1024,
            revalidate_after: Duration::from_secs(30),
            stale_while_revalidate: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(86_400),
            negative_ttl: Duration::from_secs(5),
        }
    }
}

/// Counters and gauges for metrics and the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Bytes held.
    pub bytes: u64,
    /// Entries held (cached not-founds included).
    pub entries: u64,
    /// Entries evicted to stay under the budget.
    pub evictions: u64,
    /// The byte budget.
    pub budget: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups answered by the store (bypasses included).
    pub misses: u64,
    /// Lookups answered with a stale entry.
    pub stale: u64,
}

/// The LRU and the flights in progress, under one lock.
struct State {
    lru: ByteLru,
    flights: HashMap<String, Flight>,
    next_flight: u64,
}

/// The hot cache. Create with [`HotCache::new`]; share the `Arc`.
pub struct HotCache {
    config: CacheConfig,
    loader: Arc<Loader>,
    state: RwLock<State>,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    variants: variants::VariantFlights,
}

impl std::fmt::Debug for HotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotCache")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What to do for one lookup, decided under the lock.
enum Plan {
    Answer(Lookup),
    Wait {
        flight: flight::Shared,
        collapsed: bool,
        stale: Option<(Arc<Object>, Instant)>,
    },
}

impl HotCache {
    /// A cache in front of `loader` (built with `keep_body_limit = config.max_object`).
    pub fn new(config: CacheConfig, loader: Arc<Loader>) -> Arc<HotCache> {
        Arc::new(HotCache {
            state: RwLock::new(State {
                lru: ByteLru::new(config.budget),
                flights: HashMap::new(),
                next_flight: 0,
            }),
            config,
            loader,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            variants: variants::VariantFlights::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The loader behind the cache.
    pub fn loader(&self) -> &Arc<Loader> {
        &self.loader
    }

    fn enabled(&self) -> bool {
        self.config.budget > 0
    }

    /// Resolves `key`: from the cache when fresh, else from the store (one request per key at
    /// a time), serving stale entries within their windows. `Err` only when the store failed
    /// and no usable stale entry exists.
    pub async fn lookup(self: &Arc<Self>, key: &str) -> Result<Lookup, Arc<StoreError>> {
        self.lookup_at(key, Instant::now()).await
    }

    /// [`HotCache::lookup`] judged at `now`, a clock reading the caller already has (the
    /// pipeline's, taken when the request arrived).
    pub async fn lookup_at(
        self: &Arc<Self>,
        key: &str,
        now: Instant,
    ) -> Result<Lookup, Arc<StoreError>> {
        if let Some(lookup) = self.fresh_hit(key, now) {
            self.count(&lookup.status);
            return Ok(lookup);
        }
        let plan = {
            let mut state = self.write_state();
            self.plan(&mut state, key, now)
        };
        let (flight, collapsed, stale) = match plan {
            Plan::Answer(lookup) => {
                self.count(&lookup.status);
                return Ok(lookup);
            }
            Plan::Wait {
                flight,
                collapsed,
                stale,
            } => (flight, collapsed, stale),
        };
        let lookup = match flight.await {
            Ok(fetched) => self.fetched_lookup(fetched, collapsed),
            Err(error) => {
                let now = Instant::now();
                let usable = stale.filter(|(_, checked)| {
                    now.saturating_duration_since(*checked)
                        < self.config.revalidate_after + self.config.stale_if_error
                });
                let Some((object, checked)) = usable else {
                    return Err(error);
                };
                tracing::debug!(key, %error, "serving a stale entry: store failed");
                Lookup {
                    object: Some(object),
                    status: CacheStatus::Stale(StaleReason::StoreError),
                    ttl: Some(self.ttl(checked, self.config.revalidate_after, now)),
                    stored: false,
                    collapsed,
                    index: None,
                }
            }
        };
        self.count(&lookup.status);
        Ok(lookup)
    }

    /// The fast path: a fresh entry (object or not-found) answered under the shared lock, so
    /// hits on different event loops never wait for each other (they wait only while another
    /// thread changes the map: a fill, a refresh, a purge). An entry still near the front of
    /// the recency list stays where it is; one that has drifted back is moved to the front
    /// under the exclusive lock (`entries.rs`, "Recency": that is what bounds the order's
    /// error). Anything else (absent, stale, disabled) returns `None` for [`HotCache::plan`].
    fn fresh_hit(&self, key: &str, now: Instant) -> Option<Lookup> {
        if !self.enabled() {
            return None;
        }
        let (lookup, promote) = {
            let state = self.state.read();
            let (entry, promote) = state.lru.hit(key)?;
            (self.fresh(entry, now)?, promote)
        };
        if promote {
            self.write_state().lru.promote(key);
        }
        Some(lookup)
    }

    /// The hit for `entry` while it is fresh: an object younger than `revalidate_after`, a
    /// not-found younger than `negative_ttl`. The one freshness rule of both paths.
    fn fresh(&self, entry: &Entry, now: Instant) -> Option<Lookup> {
        let life = match &entry.object {
            Some(_) => self.config.revalidate_after,
            None => self.config.negative_ttl,
        };
        (now.saturating_duration_since(entry.checked) < life).then(|| Lookup {
            object: entry.object.clone(),
            status: CacheStatus::Hit,
            ttl: Some(self.ttl(entry.checked, life, now)),
            stored: false,
            collapsed: false,
            index: entry.index.clone(),
        })
    }

    fn plan(self: &Arc<Self>, state: &mut State, key: &str, now: Instant) -> Plan {
        let cfg = &self.config;
        let wait = |state: &mut State, kind, stale| {
            let (flight, collapsed) = self.join_or_start(state, key, kind);
            Plan::Wait {
                flight,
                collapsed,
                stale,
            }
        };
        if !self.enabled() {
            return wait(state, FlightKind::Load, None);
        }
        let Some(entry) = state.lru.get(key) else {
            return wait(state, FlightKind::Load, None);
        };
        if let Some(lookup) = self.fresh(entry, now) {
            return Plan::Answer(lookup);
        }
        let age = now.saturating_duration_since(entry.checked);
        let checked = entry.checked;
        let Some(object) = entry.object.clone() else {
            return wait(state, FlightKind::Load, None);
        };
        if age < cfg.revalidate_after + cfg.stale_while_revalidate {
            // RFC 5861 section 3: answer now, refresh in the background (one flight per key).
            drop(self.join_or_start(state, key, FlightKind::Revalidate(object.clone())));
            return Plan::Answer(Lookup {
                object: Some(object),
                status: CacheStatus::Stale(StaleReason::Revalidating),
                ttl: Some(self.ttl(checked, cfg.revalidate_after, now)),
                stored: false,
                collapsed: false,
                index: None,
            });
        }
        wait(
            state,
            FlightKind::Revalidate(object.clone()),
            Some((object, checked)),
        )
    }

    fn fetched_lookup(&self, fetched: flight::Fetched, collapsed: bool) -> Lookup {
        let life = if fetched.object.is_some() {
            self.config.revalidate_after
        } else {
            self.config.negative_ttl
        };
        let status = if !self.enabled() {
            CacheStatus::Bypass
        } else if fetched.unchanged {
            CacheStatus::Hit
        } else {
            CacheStatus::Miss
        };
        let ttl = (fetched.stored || fetched.unchanged).then_some(life.as_secs() as i64);
        Lookup {
            object: fetched.object,
            status,
            ttl,
            stored: fetched.stored,
            collapsed,
            index: None,
        }
    }

    /// Whole seconds of freshness left for an entry confirmed at `checked` with lifetime
    /// `life`: rounded down while fresh, and at most -1 once stale, so a stale entry never
    /// shows `ttl=0`.
    fn ttl(&self, checked: Instant, life: Duration, now: Instant) -> i64 {
        let age = now.saturating_duration_since(checked);
        match life.checked_sub(age) {
            Some(left) if !left.is_zero() => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            _ => {
                let over = age.saturating_sub(life).as_secs_f64().ceil().max(1.0);
                -(over.min(i64::MAX as f64) as i64)
            }
        }
    }

    fn count(&self, status: &CacheStatus) {
        let counter = match status {
            CacheStatus::Hit => &self.hits,
            CacheStatus::Miss | CacheStatus::Bypass => &self.misses,
            CacheStatus::Stale(_) => &self.stale,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The compressed variant cached for the object under `key`, if it still has `etag`.
    pub fn variant(&self, key: &str, etag: &ETag, encoding: Encoding) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        self.state.read().lru.variant(key, etag, encoding)
    }

    /// Keeps a compressed variant made for the cached object under `key`. Counted in the
    /// budget and dropped with the entry; ignored if the entry is gone or changed (its ETag
    /// differs from `etag`) or the variant would not fit.
    pub fn put_variant(&self, key: &str, etag: &ETag, encoding: Encoding, bytes: Bytes) {
        if !self.enabled() {
            return;
        }
        self.write_state()
            .lru
            .put_variant(key, etag, encoding, bytes);
    }

    /// Drops the entry for `key` if it still holds `object`, which the store no longer has
    /// (replaced, resized or deleted). An entry another request has loaded since stays, and
    /// so does a load in flight: it started after the entry was found stale or missing.
    pub fn forget(&self, key: &str, object: &Arc<Object>) {
        self.write_state().lru.remove_holding(key, object);
    }

    /// Drops the entry for `path_or_prefix` (or, with `prefix`, every entry whose key starts
    /// with it), cached not-founds included; returns how many. A leading `/` is ignored, so a
    /// URL path works as well as a key. Store requests in flight for those keys will not
    /// store their answers.
    pub fn purge(&self, path_or_prefix: &str, prefix: bool) -> usize {
        let target = path_or_prefix.trim_start_matches('/');
        let mut state = self.write_state();
        let mut removed = if prefix {
            state.lru.remove_prefix(target)
        } else {
            usize::from(state.lru.remove(target))
        };
        // A not-found for `dir` remembers whether `dir/index.html` exists (`IndexMemo`), so
        // purging that index forgets the not-found too: `/dir` redirects as soon as the
        // index is there, not a negative TTL later.
        if let Some(dir) = index_parent(target, prefix)
            && state.lru.remove_not_found(dir)
        {
            removed += 1;
        }
        // A flight that is no longer registered does not store its answer (see flight.rs);
        // its waiters still get it.
        state.flights.retain(|k, _| {
            if prefix {
                !k.starts_with(target)
            } else {
                k != target
            }
        });
        drop(state);
        tracing::info!(path = target, prefix, removed, "cache purge");
        removed
    }

    /// The exclusive lock on the state; see [`StateWrite`].
    fn write_state(&self) -> StateWrite<'_> {
        StateWrite(Some(self.state.write()))
    }

    /// Current counters and gauges.
    pub fn stats(&self) -> CacheStats {
        let state = self.state.read();
        CacheStats {
            bytes: state.lru.bytes(),
            entries: state.lru.len() as u64,
            evictions: state.lru.evictions(),
            budget: self.config.budget,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
        }
    }
}

/// The cache's exclusive lock. The entries the LRU takes out while it is held (evicted,
/// replaced, purged) are dropped after the lock is released, so that what their drop costs
/// (a `sendfile` arena body punches its pages out of the memory file) never holds up other
/// loops' hits.
struct StateWrite<'a>(Option<RwLockWriteGuard<'a, State>>);

impl std::ops::Deref for StateWrite<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        self.0.as_deref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for StateWrite<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.0.as_deref_mut().expect("held until dropped")
    }
}

impl Drop for StateWrite<'_> {
    fn drop(&mut self) {
        if let Some(mut guard) = self.0.take() {
            let released = guard.lru.take_released();
            drop(guard);
            drop(released);
        }
    }
}

/// The key `dir` whose `dir/index.html` a purge of `target` (a key, or a key prefix) removes.
fn index_parent(target: &str, prefix: bool) -> Option<&str> {
    const INDEX: &str = "/index.html";
    let slash = target.rfind('/')?;
    let rest = &target[slash..];
    let covered = if prefix {
        INDEX.starts_with(rest)
    } else {
        rest == INDEX
    };
    covered.then(|| &target[..slash])
}
