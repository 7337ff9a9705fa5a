//! Test helpers shared by unit tests and the integration tests in `tests/`: two wrappers
//! around any `object_store` store (an [`InMemory`] one by default) that act on its reads and
//! pass writes, lists, deletes, copies and renames straight through (tests seed and change
//! objects through them; those are never delayed or failed). Both are a [`WrappedStore`], one
//! `ObjectStore` implementation whose read side is given by a [`ReadHooks`]:
//!
//! - [`CountingStore`] counts GET and HEAD requests, can delay every read, and can fail on
//!   demand. It is how the cache tests prove "exactly one store GET for 100 concurrent misses"
//!   or "revalidation transfers no body", and how outages are simulated without a real network.
//! - [`FaultyStore`] is for the fault-injection tests (issue 7, points 4 and 5): failures on a
//!   pattern ("every other read"), bodies that end early *cleanly* (the stream just stops: the
//!   nastiest truncation, since nothing below the server notices), and switches that a soak
//!   can flip while load runs. Every switch is an atomic, so tests change the fault mode from
//!   any task while requests are in flight.
//!
//! `object_store` 0.14 routes `head` through `get_opts` with `GetOptions::head` set, so the one
//! `get_opts` override sees both kinds of read and tells them apart by that flag.
//!
//! [`CapturedLog`] collects what the server logs, for tests of the access log.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, Result,
};

/// What a [`WrappedStore`] does around the reads of the store it wraps.
#[async_trait::async_trait]
pub trait ReadHooks: fmt::Debug + Default + Send + Sync + 'static {
    /// The wrapper's name, in `Display` and in injected errors.
    const NAME: &'static str;

    /// Runs before every read (`head`: a metadata read); an error fails the read.
    async fn before_read(&self, head: bool) -> Result<()>;

    /// Sees the result of every successful body read (not HEAD); unchanged by default.
    fn after_get(&self, result: GetResult) -> GetResult {
        result
    }

    /// The error an injected failure returns.
    fn injected() -> object_store::Error {
        object_store::Error::Generic {
            store: Self::NAME,
            source: "injected failure".into(),
        }
    }
}

/// A store that runs `H` around the reads of `inner` and passes everything else through. It
/// dereferences to `H`, whose methods are the wrapper's switches and counters.
#[derive(Debug)]
pub struct WrappedStore<H> {
    inner: Arc<dyn ObjectStore>,
    hooks: H,
}

impl<H: ReadHooks> WrappedStore<H> {
    /// Wraps a fresh in-memory store.
    pub fn new() -> Self {
        Self::wrap(Arc::new(InMemory::new()))
    }

    /// Wraps any store.
    pub fn wrap(inner: Arc<dyn ObjectStore>) -> Self {
        WrappedStore {
            inner,
            hooks: H::default(),
        }
    }

    /// Writes `bytes` under `key` (test seeding; never delayed, failed or counted).
    pub async fn put_bytes(&self, key: &str, bytes: impl Into<Bytes>) -> Result<PutResult> {
        self.inner
            .put(&Path::from(key), PutPayload::from(bytes.into()))
            .await
    }

    /// Deletes `key` (never delayed, failed or counted).
    pub async fn delete_key(&self, key: &str) -> Result<()> {
        self.inner.delete(&Path::from(key)).await
    }
}

impl<H: ReadHooks> Default for WrappedStore<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H> Deref for WrappedStore<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.hooks
    }
}

impl<H: ReadHooks> fmt::Display for WrappedStore<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", H::NAME, self.inner)
    }
}

#[async_trait::async_trait]
impl<H: ReadHooks> ObjectStore for WrappedStore<H> {
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
        let head = options.head;
        self.hooks.before_read(head).await?;
        let result = self.inner.get_opts(location, options).await?;
        Ok(if head {
            result
        } else {
            self.hooks.after_get(result)
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.hooks.before_read(false).await?;
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

/// A delay before each read, changed from any task while reads are in flight.
#[derive(Debug, Default)]
struct ReadDelay(AtomicU64);

impl ReadDelay {
    fn set(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.0.store(ms, Ordering::SeqCst);
    }

    async fn wait(&self) {
        let ms = self.0.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// Counts reads, delays them and fails them on demand (see the module doc).
pub type CountingStore = WrappedStore<ReadCounts>;

/// The counters and switches of a [`CountingStore`].
#[derive(Debug, Default)]
pub struct ReadCounts {
    gets: AtomicU64,
    heads: AtomicU64,
    delay: ReadDelay,
    failing: AtomicBool,
    fail_next: AtomicU32,
}

impl ReadCounts {
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
        self.delay.set(delay);
    }

    /// While true, every read fails with a generic store error (an outage).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The next `n` reads fail, then reads succeed again.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    fn should_fail(&self) -> bool {
        if self.failing.load(Ordering::SeqCst) {
            return true;
        }
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[async_trait::async_trait]
impl ReadHooks for ReadCounts {
    const NAME: &'static str = "CountingStore";

    async fn before_read(&self, head: bool) -> Result<()> {
        let counter = if head { &self.heads } else { &self.gets };
        counter.fetch_add(1, Ordering::SeqCst);
        self.delay.wait().await;
        if self.should_fail() {
            return Err(Self::injected());
        }
        Ok(())
    }
}

/// Fails reads on patterns and truncates bodies cleanly, switched while load runs (see the
/// module doc). A fresh one injects no fault.
pub type FaultyStore = WrappedStore<Faults>;

/// The switches and counters of a [`FaultyStore`].
#[derive(Debug)]
pub struct Faults {
    reads: AtomicU64,
    gets: AtomicU64,
    failures: AtomicU64,
    /// Every Nth read fails (0: off). 2 means every other read.
    fail_every: AtomicU64,
    /// Every Nth body read (GET, not HEAD) fails (0: off).
    fail_every_get: AtomicU64,
    /// Every read fails.
    outage: AtomicBool,
    /// Delay before each read is answered.
    delay: ReadDelay,
    /// Body streams stop cleanly after this many bytes (u64::MAX: off).
    truncate_at: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            reads: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            fail_every: AtomicU64::new(0),
            fail_every_get: AtomicU64::new(0),
            outage: AtomicBool::new(false),
            delay: ReadDelay::default(),
            truncate_at: AtomicU64::new(u64::MAX),
        }
    }
}

impl Faults {
    /// Reads (GET and HEAD) so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Reads failed on purpose so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// Every `n`th read fails (0 turns it off).
    pub fn fail_every(&self, n: u64) {
        self.fail_every.store(n, Ordering::SeqCst);
    }

    /// Every `n`th body read fails (0 turns it off); metadata reads pass. With one body read
    /// per uncached request, 2 fails every other request.
    pub fn fail_every_get(&self, n: u64) {
        self.fail_every_get.store(n, Ordering::SeqCst);
    }

    /// Body reads (GET, not HEAD) so far.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// While on, every read fails.
    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
    }

    /// Every read waits `delay` first (zero turns it off).
    pub fn set_delay(&self, delay: Duration) {
        self.delay.set(delay);
    }

    /// Body streams end cleanly after `bytes` bytes (`None` turns it off). Metadata still
    /// announces the full size.
    pub fn truncate_at(&self, bytes: Option<u64>) {
        self.truncate_at
            .store(bytes.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Turns every fault off.
    pub fn heal(&self) {
        self.fail_every(0);
        self.fail_every_get(0);
        self.set_outage(false);
        self.set_delay(Duration::ZERO);
        self.truncate_at(None);
    }
}

#[async_trait::async_trait]
impl ReadHooks for Faults {
    const NAME: &'static str = "FaultyStore";

    async fn before_read(&self, head: bool) -> Result<()> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let get_failure = !head && {
            let g = self.gets.fetch_add(1, Ordering::SeqCst) + 1;
            let every = self.fail_every_get.load(Ordering::SeqCst);
            every > 0 && g.is_multiple_of(every)
        };
        self.delay.wait().await;
        let every = self.fail_every.load(Ordering::SeqCst);
        if self.outage.load(Ordering::SeqCst)
            || (every > 0 && n.is_multiple_of(every))
            || get_failure
        {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(Self::injected());
        }
        Ok(())
    }

    fn after_get(&self, mut result: GetResult) -> GetResult {
        let limit = self.truncate_at.load(Ordering::SeqCst);
        if limit == u64::MAX {
            return result;
        }
        result.payload = match result.payload {
            GetResultPayload::Stream(s) => GetResultPayload::Stream(truncated(s, limit)),
            other => other,
        };
        result
    }
}

/// Ends `stream` cleanly once `limit` bytes have passed.
fn truncated(
    stream: BoxStream<'static, Result<Bytes>>,
    limit: u64,
) -> BoxStream<'static, Result<Bytes>> {
    futures::stream::unfold((stream, 0u64), move |(mut stream, sent)| async move {
        if sent >= limit {
            return None;
        }
        match stream.next().await? {
            Ok(mut chunk) => {
                let room = (limit - sent) as usize;
                if chunk.len() > room {
                    chunk.truncate(room);
                }
                let sent = sent + chunk.len() as u64;
                Some((Ok(chunk), (stream, sent)))
            }
            Err(e) => Some((Err(e), (stream, u64::MAX))),
        }
    })
    .boxed()
}

/// What the server logs, kept in memory for tests of the access log: install
/// [`CapturedLog::subscriber`] (globally, or for one thread) and read the lines back.
#[derive(Clone, Debug, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// A subscriber that writes every event at INFO and above here, as one JSON object a
    /// line (the format `--log-format json` uses).
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish()
    }

    /// Every line written so far, as written.
    pub fn raw_lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The access-log lines (target `access`) written so far, parsed from JSON.
    pub fn access_lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect()
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

    #[tokio::test]
    async fn faults_fail_on_a_pattern_and_truncate_bodies_cleanly() {
        let store = FaultyStore::new();
        store.put_bytes("a", vec![b'x'; 1000]).await.unwrap();
        let a = Path::from("a");
        store.fail_every(2);
        assert!(store.head(&a).await.is_ok());
        assert!(store.head(&a).await.is_err());
        store.heal();
        store.truncate_at(Some(300));
        let meta = store.head(&a).await.unwrap();
        assert_eq!(meta.size, 1000, "metadata still announces the whole object");
        let body = store.get(&a).await.unwrap().bytes().await.unwrap();
        assert_eq!(body.len(), 300, "the body ends cleanly, early");
        assert_eq!((store.reads(), store.gets(), store.failures()), (4, 1, 1));
        assert_eq!(store.to_string(), "FaultyStore(InMemory)");
    }
}
