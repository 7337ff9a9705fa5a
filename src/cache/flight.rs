//! Single flight: one store request per key at a time (issue 4, point 3), and what a store
//! request does to the cache when it ends.
//!
//! A flight is a spawned task, registered in the flight table under its key with an id.
//! Waiters hold a [`Shared`] of its output, so all of them get the same object or the same
//! `Arc<StoreError>`, and none of them can cancel it by going away. When it ends it stores its
//! answer and unregisters itself in one critical section, so a lookup always finds either the
//! entry or the flight, never neither. A flight that is no longer registered under its id (a
//! purge removed it) still answers its waiters but does not store: the purge must win.
//!
//! Revalidation compares the metadata the store reports now with the cached object's
//! (`same_version`), and for types that may have precompressed sidecars also the sidecars',
//! because a sidecar can be replaced without touching its original.

use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{HotCache, State};
use crate::encoding::Encoding;
use crate::object::Object;
use crate::store::{ObjectInfo, StoreError};

/// What the waiters of a flight get.
pub(super) type Outcome = Result<Fetched, Arc<StoreError>>;

/// A flight's output, shareable between waiters.
pub(super) type Shared = futures::future::Shared<BoxFuture<'static, Outcome>>;

/// A registered flight.
pub(super) struct Flight {
    id: u64,
    future: Shared,
}

/// What a flight does.
pub(super) enum FlightKind {
    /// The key is not cached (or its not-found expired): load it.
    Load,
    /// The key holds this stale object: check it with the store.
    Revalidate(Arc<Object>),
}

/// A successful flight's answer.
#[derive(Debug, Clone)]
pub(super) struct Fetched {
    /// The object, or `None` when the store does not have the key.
    pub object: Option<Arc<Object>>,
    /// The answer was stored in the cache.
    pub stored: bool,
    /// Revalidation found the cached object unchanged (no body was transferred).
    pub unchanged: bool,
}

enum Answer {
    Unchanged(Arc<Object>),
    Loaded(Option<Arc<Object>>),
}

impl HotCache {
    /// The flight for `key`: the one in progress (`collapsed = true`) or a new one.
    pub(super) fn join_or_start(
        self: &Arc<Self>,
        state: &mut State,
        key: &str,
        kind: FlightKind,
    ) -> (Shared, bool) {
        if let Some(flight) = state.flights.get(key) {
            return (flight.future.clone(), true);
        }
        let id = state.next_flight;
        state.next_flight += 1;
        let this = self.clone();
        let owned = key.to_string();
        let task = tokio::spawn(async move { this.fly(owned, kind, id).await });
        let future = async move {
            match task.await {
                Ok(outcome) => outcome,
                // The task panicked or the runtime is shutting down: an error, not a hang.
                Err(join) => Err(Arc::new(StoreError::Io {
                    store: "cache".into(),
                    source: std::io::Error::other(join),
                })),
            }
        }
        .boxed()
        .shared();
        state.flights.insert(
            key.to_string(),
            Flight {
                id,
                future: future.clone(),
            },
        );
        (future, false)
    }

    async fn fly(self: Arc<Self>, key: String, kind: FlightKind, id: u64) -> Outcome {
        let answer = match kind {
            FlightKind::Load => {
                let loaded = self.loader.load(&key).await;
                loaded.map(|o| Answer::Loaded(o.map(|o| self.keepable(o))))
            }
            FlightKind::Revalidate(old) => self.revalidate(&key, old).await,
        };
        if let Err(error) = &answer {
            tracing::debug!(key, %error, "cache fill failed");
        }
        let now = Instant::now();
        let mut state = self.write_state();
        let registered = state.flights.get(&key).is_some_and(|f| f.id == id);
        if registered {
            state.flights.remove(&key);
        }
        let fetched = match answer.map_err(Arc::new)? {
            Answer::Unchanged(object) => {
                let stored = state.lru.touch(&key, &object, now);
                Fetched {
                    object: Some(object),
                    stored,
                    unchanged: true,
                }
            }
            Answer::Loaded(object) => {
                let keep = registered
                    && self.enabled()
                    && (object.is_some() || !self.config.negative_ttl.is_zero());
                let stored = if keep {
                    state.lru.insert(&key, object.clone(), now)
                } else {
                    if registered {
                        state.lru.remove(&key); // never leave an older answer behind
                    }
                    false
                };
                Fetched {
                    object,
                    stored,
                    unchanged: false,
                }
            }
        };
        Ok(fetched)
    }

    /// HEADs the key (and its sidecars); loads it again only when something changed.
    ///
    /// A HEAD that finds nothing where we held an object is confirmed with a load (a GET): a
    /// HEAD's 404 has no body, so it cannot tell a deleted object from a bucket that is gone,
    /// whose GET is a store failure ([`crate::store::is_missing_object`]) and keeps the held
    /// copy for stale-if-error instead of turning it into a cached 404. One more request, only
    /// when a held object disappears.
    async fn revalidate(&self, key: &str, old: Arc<Object>) -> Result<Answer, StoreError> {
        let Some(info) = self.loader.head(key).await? else {
            let confirmed = self.loader.load(key).await?;
            return Ok(Answer::Loaded(confirmed.map(|o| self.keepable(o))));
        };
        if same_version(&old.info, &info) && self.sidecars_unchanged(key, &old).await? {
            return Ok(Answer::Unchanged(old));
        }
        self.loader
            .load_known(key, info)
            .await
            .map(|o| Answer::Loaded(Some(self.keepable(o))))
    }

    async fn sidecars_unchanged(&self, key: &str, old: &Object) -> Result<bool, StoreError> {
        if !old.compressible {
            return Ok(true); // the loader looks for sidecars of compressible types only
        }
        let stores = self.loader.stores();
        let heads = Encoding::COMPRESSED.map(|encoding| async move {
            let sidecar_key = format!("{key}{}", encoding.sidecar_suffix().unwrap_or(""));
            (
                encoding,
                stores.head_in(old.info.source, &sidecar_key).await,
            )
        });
        for (encoding, now) in futures::future::join_all(heads).await {
            let before = old.sidecar(encoding).map(|s| &s.info);
            match (before, now?) {
                (None, None) => {}
                // Left out as stale when loaded, and still stale.
                (None, Some(now)) if crate::object::is_stale_sidecar(&old.info, &now) => {}
                (Some(before), Some(now)) if same_version(before, &now) => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Drops bodies above `max_object` so an oversized object is cached as metadata only
    /// (the loader normally does not keep them in the first place).
    fn keepable(&self, mut object: Object) -> Arc<Object> {
        let max = self.config.max_object;
        let too_big = |b: &Option<bytes::Bytes>| b.as_ref().is_some_and(|b| b.len() as u64 > max);
        if too_big(&object.body) {
            object.body = None;
        }
        for sidecar in &mut object.sidecars {
            if too_big(&sidecar.body) {
                sidecar.body = None;
            }
        }
        Arc::new(object)
    }
}

/// True when the store describes the same version of the object: everything that changes
/// when the bytes change (the inputs of the ETag) is equal.
pub(super) fn same_version(a: &ObjectInfo, b: &ObjectInfo) -> bool {
    a.source == b.source
        && a.location == b.location
        && a.size == b.size
        && a.last_modified == b.last_modified
        && a.store_etag == b.store_etag
        && a.version == b.version
        && a.mtime_nanos == b.mtime_nanos
}
