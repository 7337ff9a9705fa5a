//! Test helpers shared by unit tests and the integration tests in `tests/`.
//!
//! [`CountingStore`] wraps any `object_store` store (an [`InMemory`] one by default) and
//! counts GET and HEAD requests, can delay every read, and can fail on demand. It is how the
//! cache tests prove "exactly one store GET for 100 concurrent misses" or "revalidation
//! transfers no body", and how outages are simulated without a real network. Writes, lists and
//! deletes pass straight through (tests seed and change objects through them) and are never
//! delayed or failed.
//!
//! `object_store` 0.14 routes `head` through `get_opts` with `GetOptions::head` set, so the one
//! `get_opts` override sees both kinds of read and tells them apart by that flag.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// A store wrapper that counts reads, delays them and fails them on demand.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    gets: AtomicU64,
    heads: AtomicU64,
    delay_ms: AtomicU64,
    failing: AtomicBool,
    fail_next: AtomicU32,
}

impl Default for CountingStore {
    fn default() -> Self {
        CountingStore::new()
    }
}

impl CountingStore {
    /// Wraps a fresh in-memory store.
    pub fn new() -> CountingStore {
        CountingStore::wrap(Arc::new(InMemory::new()))
    }

    /// Wraps any store.
    pub fn wrap(inner: Arc<dyn ObjectStore>) -> CountingStore {
        CountingStore {
            inner,
            gets: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            delay_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            fail_next: AtomicU32::new(0),
        }
    }

    /// Body reads (`get_opts` without `head`) so far, failed ones included.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// Metadata reads (`head`) so far, failed ones included.
    pub fn heads(&self) -> u64 {
        self.heads.load(Ordering::SeqCst)
    }

    /// Sets both counters back to zero.
    pub fn reset_counts(&self) {
        self.gets.store(0, Ordering::SeqCst);
        self.heads.store(0, Ordering::SeqCst);
    }

    /// Delays every read (GET and HEAD) by `delay` before it is answered or failed.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// While true, every read fails with a generic store error (an outage).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The next `n` reads fail, then reads succeed again.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Writes `bytes` under `key` (test seeding; not counted).
    pub async fn put_bytes(&self, key: &str, bytes: impl Into<Bytes>) -> Result<PutResult> {
        self.inner
            .put(&Path::from(key), PutPayload::from(bytes.into()))
            .await
    }

    /// Deletes `key` (not counted).
    pub async fn delete_key(&self, key: &str) -> Result<()> {
        self.inner.delete(&Path::from(key)).await
    }

    fn should_fail(&self) -> bool {
        if self.failing.load(Ordering::SeqCst) {
            return true;
        }
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    async fn before_read(&self, head: bool) -> Result<()> {
        let counter = if head { &self.heads } else { &self.gets };
        counter.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.should_fail() {
            return Err(object_store::Error::Generic {
                store: "CountingStore",
                source: "injected failure".into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.before_read(options.head).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.before_read(false).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_gets_and_heads_apart() {
        let store = CountingStore::new();
        store.put_bytes("a", "hello").await.unwrap();
        let meta = store.head(&Path::from("a")).await.unwrap();
        assert_eq!(meta.size, 5);
        let body = store
            .get(&Path::from("a"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&body[..], b"hello");
        assert_eq!((store.gets(), store.heads()), (1, 1));
    }

    #[tokio::test]
    async fn fails_on_demand_and_recovers() {
        let store = CountingStore::new();
        store.put_bytes("a", "x").await.unwrap();
        store.fail_next(2);
        assert!(store.head(&Path::from("a")).await.is_err());
        assert!(store.get(&Path::from("a")).await.is_err());
        assert!(store.head(&Path::from("a")).await.is_ok());
        store.set_failing(true);
        assert!(store.head(&Path::from("a")).await.is_err());
        store.set_failing(false);
        assert!(store.head(&Path::from("a")).await.is_ok());
        assert_eq!((store.gets(), store.heads()), (1, 4));
    }
}
