//! A store wrapper for fault-injection tests (issue 7, points 4 and 5).
//!
//! `cdn_origin::testing::CountingStore` can delay reads and fail the next N of them; the fault
//! tests also need failures on a pattern ("every other read"), bodies that end early *cleanly*
//! (the stream just stops: the nastiest truncation, since nothing below the server notices),
//! and switches that a soak can flip while load runs. Every switch is an atomic, so tests change
//! the fault mode from any task while requests are in flight. Writes, lists and deletes pass
//! straight through and are never faulted.
//!
//! Include it beside `common` with `#[path = "common/faulty.rs"] mod faulty;`.
#![allow(dead_code)]

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// See the module docs.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    reads: AtomicU64,
    gets: AtomicU64,
    failures: AtomicU64,
    /// Every Nth read fails (0: off). 2 means every other read.
    fail_every: AtomicU64,
    /// Every Nth body read (GET, not HEAD) fails (0: off).
    fail_every_get: AtomicU64,
    /// Every read fails.
    outage: AtomicBool,
    /// Delay before each read is answered, in milliseconds.
    delay_ms: AtomicU64,
    /// Body streams stop cleanly after this many bytes (u64::MAX: off).
    truncate_at: AtomicU64,
}

impl FaultyStore {
    /// A fault-free wrapper around a fresh in-memory store.
    pub fn new() -> Arc<FaultyStore> {
        FaultyStore::wrap(Arc::new(InMemory::new()))
    }

    /// A fault-free wrapper around `inner`.
    pub fn wrap(inner: Arc<dyn ObjectStore>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            reads: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            fail_every: AtomicU64::new(0),
            fail_every_get: AtomicU64::new(0),
            outage: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            truncate_at: AtomicU64::new(u64::MAX),
        })
    }

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
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
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

    /// Writes `bytes` under `key` (never faulted).
    pub async fn put_bytes(&self, key: &str, bytes: impl Into<Bytes>) {
        self.inner
            .put(&Path::parse(key).unwrap(), PutPayload::from(bytes.into()))
            .await
            .unwrap();
    }

    async fn before_read(&self, head: bool) -> Result<()> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let get_failure = !head && {
            let g = self.gets.fetch_add(1, Ordering::SeqCst) + 1;
            let every = self.fail_every_get.load(Ordering::SeqCst);
            every > 0 && g.is_multiple_of(every)
        };
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let every = self.fail_every.load(Ordering::SeqCst);
        if self.outage.load(Ordering::SeqCst)
            || (every > 0 && n.is_multiple_of(every))
            || get_failure
        {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "FaultyStore",
                source: "injected failure".into(),
            });
        }
        Ok(())
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

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
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
        self.before_read(head).await?;
        let result = self.inner.get_opts(location, options).await?;
        let limit = self.truncate_at.load(Ordering::SeqCst);
        if head || limit == u64::MAX {
            return Ok(result);
        }
        let GetResult {
            payload,
            meta,
            range,
            attributes,
            extensions,
        } = result;
        let stream = match payload {
            GetResultPayload::Stream(s) => s,
            other => {
                return Ok(GetResult {
                    payload: other,
                    meta,
                    range,
                    attributes,
                    extensions,
                });
            }
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(truncated(stream, limit)),
            meta,
            range,
            attributes,
            extensions,
        })
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
