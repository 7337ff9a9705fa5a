//! Compressed variants made once: single flight and a bound on concurrent compressions.
//!
//! A held object that a client wants compressed, with no sidecar for that encoding, is
//! compressed once at the cached level and kept with its entry (`ByteLru::put_variant`). Made
//! per request, a cold cache under load compressed the same file once for every request that
//! arrived before the first one finished: a 760 KB font asked for with `br` by 100 clients at
//! once took 3-8 s per response and 2 GB of memory (each brotli compressor holds its window).
//!
//! So, as for store loads (`flight.rs`):
//! - **One compression per variant at a time.** A variant (key, the object's ETag, encoding)
//!   being made is registered; later requests wait for it and get the same bytes. It runs as
//!   its own task, so a client that leaves does not cancel what others wait for, and it keeps
//!   its result with the entry *before* it unregisters, so a request finds one or the other.
//!   Where nothing can be kept (the cache is off, the variant does not fit, the entry was
//!   evicted or replaced meanwhile), the next request after the flight compresses again.
//! - **At most one compression per core at once** (at least [`MIN_PERMITS`]): variants of
//!   different files wait for a permit instead of each taking a blocking thread and a
//!   compressor's memory. Compression streams (objects too big to hold, compressed at a low
//!   level as they are sent) are not counted here.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use super::HotCache;
use crate::encoding::{self, Encoding};
use crate::etag::ETag;

/// The least number of compressions allowed at once (also when the core count is unknown).
pub const MIN_PERMITS: usize = 2;

/// A variant being made: what its waiters share.
type Making = Shared<BoxFuture<'static, Result<Bytes, Arc<io::Error>>>>;

/// Which variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct VariantKey {
    key: String,
    etag: ETag,
    encoding: Encoding,
}

/// The variants being made, and the permits for making them.
#[derive(Debug)]
pub(super) struct VariantFlights {
    making: Mutex<HashMap<VariantKey, Making>>,
    permits: Arc<Semaphore>,
}

impl VariantFlights {
    pub(super) fn new() -> VariantFlights {
        let cores = std::thread::available_parallelism().map_or(MIN_PERMITS, |n| n.get());
        VariantFlights {
            making: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(cores.max(MIN_PERMITS))),
        }
    }

    /// How many variants are being made now (for tests).
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> usize {
        self.making.lock().len()
    }

    /// How many requests wait for variants being made now (for tests).
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        let making = self.making.lock();
        // Each registered flight is held once by the table itself.
        making
            .values()
            .map(|shared| shared.strong_count().unwrap_or(1) - 1)
            .sum()
    }

    /// Takes every permit, so that no compression starts until the returned permit is
    /// dropped (for tests).
    #[cfg(test)]
    pub(super) async fn hold_all(&self) -> tokio::sync::OwnedSemaphorePermit {
        let all = u32::try_from(self.permits.available_permits()).unwrap_or(u32::MAX);
        self.permits
            .clone()
            .acquire_many_owned(all)
            .await
            .expect("the semaphore is never closed")
    }
}

impl HotCache {
    /// The `encoding` variant of `body`, the held body of the object under `key` whose ETag is
    /// `etag`: the kept one, the one another request is making, or a new one, made on the
    /// blocking pool and kept with the entry when it fits (see the module docs).
    pub async fn compressed_variant(
        self: &Arc<Self>,
        key: &str,
        etag: &ETag,
        encoding: Encoding,
        body: &Bytes,
    ) -> io::Result<Bytes> {
        if let Some(bytes) = self.variant(key, etag, encoding) {
            return Ok(bytes);
        }
        let id = VariantKey {
            key: key.to_string(),
            etag: etag.clone(),
            encoding,
        };
        let making = {
            let mut making = self.variants.making.lock();
            // Kept since the look above: the maker keeps its bytes before it unregisters.
            if let Some(bytes) = self.variant(key, etag, encoding) {
                return Ok(bytes);
            }
            match making.get(&id) {
                Some(shared) => shared.clone(),
                None => {
                    let shared = self.clone().make_variant(id.clone(), body.clone());
                    making.insert(id, shared.clone());
                    shared
                }
            }
        };
        making
            .await
            .map_err(|e| io::Error::new(e.kind(), e.to_string()))
    }

    /// Starts making a variant in its own task; it keeps the result and unregisters itself.
    fn make_variant(self: Arc<Self>, id: VariantKey, body: Bytes) -> Making {
        let this = self.clone();
        let unregister = id.clone();
        let task = tokio::spawn(async move {
            let made = match self.variants.permits.clone().acquire_owned().await {
                Ok(_permit) => encoding::compress_bytes(id.encoding, body)
                    .await
                    .map(|bytes| self.loader.keep(bytes)),
                Err(closed) => Err(io::Error::other(closed)),
            };
            if let Ok(bytes) = &made {
                self.put_variant(&id.key, &id.etag, id.encoding, bytes.clone());
            }
            self.variants.making.lock().remove(&id);
            made.map_err(Arc::new)
        });
        async move {
            task.await.unwrap_or_else(|join| {
                // The task panicked or the runtime is shutting down: an error, not a hang,
                // and not one that later requests would be handed.
                this.variants.making.lock().remove(&unregister);
                Err(Arc::new(io::Error::other(join)))
            })
        }
        .boxed()
        .shared()
    }
}
