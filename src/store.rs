//! The only code that talks to `object_store`: builds the configured sources, looks keys up in
//! order, streams bodies and maps store errors to [`StoreError`].
//!
//! Local folders get a fast path of their own. `object_store`'s local store reads 8 KiB at a
//! time and follows symlinks anywhere; here a local key is canonicalised and must stay under the
//! root (a symlink out of the root is "not found"), metadata comes from `stat` (its ETag would
//! embed the inode, which differs between nodes, so we never use it), and bodies are read with
//! positional reads of [`LOCAL_CHUNK`] bytes on the blocking pool, one chunk at a time, so memory
//! per download stays at one chunk and no async worker ever blocks on the disk.
//!
//! Remote stores get explicit timeouts (connect, per-read, and a first-byte deadline of our own)
//! and a bounded retry policy; `object_store`'s defaults would retry for three minutes. A range
//! read pins the object with `If-Match` on the store's ETag, so an object replaced between the
//! metadata lookup and the read fails loudly instead of mixing two versions. Every body stream is
//! checked against the length it promised: a store that ends early yields an error, so the
//! client sees an aborted response, never a complete-looking truncated one.

use std::io;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig,
};

use crate::cache::breaker::CircuitBreaker;
use crate::config::{Settings, StoreSpec};
use crate::metrics::{Metrics, StoreOp, StoreOutcome};

/// Bytes read from a local file per positional read.
pub const LOCAL_CHUNK: usize = 256 * 1024;

/// A stream of body bytes.
pub type BodyStream = BoxStream<'static, io::Result<Bytes>>;

/// A failure talking to a store. Not-found is not an error (see [`Stores::head`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer within the configured time.
    #[error("store `{store}` timed out after {after:?}")]
    Timeout {
        /// Source name.
        store: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The object changed between lookup and read: replaced, resized or deleted (a remote
    /// store's `If-Match` failed, or a local file's size or modification time differs). The
    /// lookup's metadata is out of date; not a store failure.
    #[error("store `{store}`: object changed during the request")]
    Changed {
        /// Source name.
        store: String,
    },
    /// Any other store failure.
    #[error("store `{store}`: {source}")]
    Backend {
        /// Source name.
        store: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// Local file system failure.
    #[error("local store `{store}`: {source}")]
    Io {
        /// Source name.
        store: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The circuit breaker is open for this store.
    #[error("store `{store}` is unavailable (circuit open)")]
    CircuitOpen {
        /// Source name.
        store: String,
        /// When a retry makes sense.
        retry_after: Duration,
    },
}

impl StoreError {
    /// True for a timeout (answered with 504 rather than 502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, StoreError::Timeout { .. })
    }
}

/// What the store says about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Index of the source that holds it.
    pub source: usize,
    /// The key inside that source.
    pub location: Path,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, truncated to whole seconds (HTTP dates have no fractions).
    pub last_modified: SystemTime,
    /// The store's own ETag (remote stores only; never the local inode-based one).
    pub store_etag: Option<String>,
    /// The store's version id, if versioned.
    pub version: Option<String>,
    /// Modification time in nanoseconds since the epoch (local files; part of the derived ETag).
    pub mtime_nanos: u128,
}

/// One configured source.
#[derive(Debug)]
pub struct Source {
    /// A short name for logs and metrics (`local`, `s3:bucket`, ...).
    pub name: String,
    store: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
}

impl Source {
    /// A source backed by any `ObjectStore` (tests use this to inject counting or failing stores).
    pub fn custom(name: impl Into<String>, store: Arc<dyn ObjectStore>) -> Source {
        Source {
            name: name.into(),
            store,
            local_root: None,
        }
    }

    /// The underlying store (for health probes).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The local root folder, for local sources.
    pub fn local_root(&self) -> Option<&FsPath> {
        self.local_root.as_deref()
    }

    /// Builds a source from its settings.
    pub fn build(spec: &StoreSpec, settings: &Settings) -> Result<Source, String> {
        let client = ClientOptions::new()
            .with_timeout_disabled() // a total timeout would cut long video downloads
            .with_connect_timeout(settings.store_connect_timeout)
            .with_read_timeout(settings.store_timeout)
            .with_pool_idle_timeout(Duration::from_secs(60))
            .with_allow_http(settings.s3_allow_http);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: settings.store_retries,
            retry_timeout: settings.store_timeout,
        };
        let with_prefix = |store: Arc<dyn ObjectStore>, prefix: &str| -> Arc<dyn ObjectStore> {
            if prefix.is_empty() {
                store
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
            }
        };
        match spec {
            StoreSpec::Local(root) => {
                let store = object_store::local::LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| format!("{}: {e}", root.display()))?;
                Ok(Source {
                    name: format!("local:{}", root.display()),
                    store: Arc::new(store),
                    local_root: Some(root.clone()),
                })
            }
            StoreSpec::Memory => Ok(Source::custom(
                "memory",
                Arc::new(object_store::memory::InMemory::new()),
            )),
            StoreSpec::S3 { bucket, prefix } => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(client)
                    .with_retry(retry)
                    .with_allow_http(settings.s3_allow_http);
                if let Some(region) = &settings.s3_region {
                    b = b.with_region(region);
                }
                if let Some(endpoint) = &settings.s3_endpoint {
                    b = b.with_endpoint(endpoint);
                }
                let store = b.build().map_err(|e| format!("s3://{bucket}: {e}"))?;
                Ok(Source::custom(
                    format!("s3:{bucket}"),
                    with_prefix(Arc::new(store), prefix),
                ))
            }
            StoreSpec::Gcs { bucket, prefix } => {
                let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| format!("gs://{bucket}: {e}"))?;
                Ok(Source::custom(
                    format!("gs:{bucket}"),
                    with_prefix(Arc::new(store), prefix),
                ))
            }
            StoreSpec::Azure { container, prefix } => {
                let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_client_options(client)
                    .with_retry(retry)
                    .with_allow_http(settings.s3_allow_http)
                    .build()
                    .map_err(|e| format!("az://{container}: {e}"))?;
                Ok(Source::custom(
                    format!("az:{container}"),
                    with_prefix(Arc::new(store), prefix),
                ))
            }
        }
    }
}

/// For an S3 source whose environment names no credentials, what an operator should know:
/// object_store then asks the instance metadata service (EC2) at the first request, which
/// off EC2 fails every request. A warning rather than an error, since on EC2 that is how
/// credentials are meant to arrive.
pub fn credentials_warning(spec: &StoreSpec) -> Option<String> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as Key};
    let StoreSpec::S3 { bucket, .. } = spec else {
        return None;
    };
    let env = AmazonS3Builder::from_env();
    let set = |key: Key| env.get_config_value(&key).is_some();
    // As object_store reads a boolean: `true`, `1`, `yes`, `on`, `y`, any case.
    let unsigned = env.get_config_value(&Key::SkipSignature).is_some_and(|v| {
        ["true", "1", "yes", "on", "y"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t))
    });
    let named = unsigned
        || set(Key::AccessKeyId)
        || set(Key::SecretAccessKey)
        || (set(Key::WebIdentityTokenFile) && set(Key::RoleArn))
        || set(Key::ContainerCredentialsRelativeUri)
        || (set(Key::ContainerCredentialsFullUri) && set(Key::ContainerAuthorizationTokenFile));
    (!named).then(|| {
        format!(
            "s3://{bucket}: no credentials in the environment (AWS_ACCESS_KEY_ID with \
             AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or a \
             container's credentials URI), so they are asked of the instance metadata service \
             (EC2) at the first request; without one every request fails (a public bucket: \
             AWS_SKIP_SIGNATURE=true)"
        )
    })
}

/// The ordered list of sources, each behind its own circuit breaker.
pub struct Stores {
    sources: Vec<Source>,
    breakers: Vec<CircuitBreaker>,
    first_byte_timeout: Duration,
    slow: Duration,
    metrics: Option<Arc<Metrics>>,
    private_prefix: Option<String>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Wraps sources searched in order; `first_byte_timeout` bounds a lookup or the start of a
    /// read. Breakers default to 5 consecutive failures and a 30 s cooldown.
    pub fn new(sources: Vec<Source>, first_byte_timeout: Duration, slow: Duration) -> Stores {
        let breakers = sources
            .iter()
            .map(|s| CircuitBreaker::new(s.name.clone(), 5, Duration::from_secs(30)))
            .collect();
        Stores {
            sources,
            breakers,
            first_byte_timeout,
            slow,
            metrics: None,
            private_prefix: None,
        }
    }

    /// Sets the breaker threshold and cooldown for every source (call before
    /// [`Stores::with_metrics`], which attaches the metrics to the breakers).
    pub fn with_breakers(mut self, failures: u32, cooldown: Duration) -> Stores {
        self.breakers = self
            .sources
            .iter()
            .map(|s| CircuitBreaker::new(s.name.clone(), failures, cooldown))
            .collect();
        self
    }

    /// Guards local folders against symlinks from public keys into this key prefix.
    pub fn with_private_prefix(mut self, prefix: Option<String>) -> Stores {
        self.private_prefix = prefix;
        self
    }

    /// Records store calls and breaker state changes into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Stores {
        for b in &mut self.breakers {
            let m = metrics.clone();
            b.set_observer(Arc::new(move |store, to| {
                m.breaker_transition(store, crate::status::breaker_state(to));
            }));
        }
        self.metrics = Some(metrics);
        self
    }

    /// The breaker of each source, in source order.
    pub fn breakers(&self) -> &[CircuitBreaker] {
        &self.breakers
    }

    fn permit(
        &self,
        i: usize,
    ) -> Result<Option<crate::cache::breaker::BreakerPermit<'_>>, StoreError> {
        match self.breakers.get(i) {
            None => Ok(None),
            Some(b) => b
                .try_acquire()
                .map(Some)
                .map_err(|retry_after| StoreError::CircuitOpen {
                    store: self.name(i).to_string(),
                    retry_after,
                }),
        }
    }

    /// Records one store call in the metrics.
    fn observe(&self, i: usize, op: StoreOp, outcome: StoreOutcome, started: Instant, bytes: u64) {
        if let Some(m) = &self.metrics {
            m.record_store(self.name(i), op, outcome, started.elapsed(), bytes);
        }
    }

    /// The sources, in search order.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Name of source `i`.
    pub fn name(&self, i: usize) -> &str {
        self.sources.get(i).map_or("?", |s| s.name.as_str())
    }

    /// Looks `key` up in source `i` only (sidecars live beside their original).
    pub async fn head_in(&self, i: usize, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let Some(source) = self.sources.get(i) else {
            return Ok(None);
        };
        let Ok(location) = Path::parse(key) else {
            return Ok(None);
        };
        if location.as_ref().is_empty() {
            return Ok(None);
        }
        let permit = self.permit(i)?;
        let started = Instant::now();
        let result = if let Some(root) = &source.local_root {
            local_head(
                root.clone(),
                i,
                location,
                &source.name,
                self.private_prefix.clone(),
            )
            .await
        } else {
            self.timed(&source.name, source.store.head(&location))
                .await
                .and_then(|r| match r {
                    Ok(meta) => Ok(Some(remote_info(i, meta))),
                    Err(e) if is_missing_object(&e) => Ok(None),
                    Err(e) => Err(self.backend_error(&source.name, e)),
                })
        };
        self.note_slow(&source.name, "head", key, started);
        self.observe(i, StoreOp::Head, outcome_of(&result), started, 0);
        if let Some(permit) = permit {
            // Not-found is a healthy answer; only failures count towards opening the breaker.
            if result.is_ok() {
                permit.success()
            } else {
                permit.failure()
            }
        }
        result
    }

    /// Looks `key` up in every source in order; the first that has it wins.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        for i in 0..self.sources.len() {
            if let Some(info) = self.head_in(i, key).await? {
                return Ok(Some(info));
            }
        }
        Ok(None)
    }

    /// Looks `key` up in every source in order, like [`Stores::head`], but asks a remote source
    /// with one GET instead of a HEAD: an object of at most `limit` bytes comes back whole in
    /// that single round trip (a cold miss costs one store request, not two). A larger object's
    /// body is not read: its stream is dropped after the headers, and only its metadata is
    /// returned. Local sources answer from `stat` as in [`Stores::head`] (no body).
    pub async fn get_whole(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<(ObjectInfo, Option<Bytes>)>, StoreError> {
        for (i, source) in self.sources.iter().enumerate() {
            if source.local_root.is_some() {
                if let Some(info) = self.head_in(i, key).await? {
                    return Ok(Some((info, None)));
                }
                continue;
            }
            let Ok(location) = Path::parse(key) else {
                return Ok(None);
            };
            if location.as_ref().is_empty() {
                return Ok(None);
            }
            let permit = self.permit(i)?;
            let started = Instant::now();
            let result = self.fetch_whole(i, source, &location, limit).await;
            self.note_slow(&source.name, "get", key, started);
            let bytes = match &result {
                Ok(Some((_, Some(body)))) => body.len() as u64,
                _ => 0,
            };
            self.observe(i, StoreOp::Get, outcome_of(&result), started, bytes);
            match (permit, &result) {
                (Some(p), Ok(_) | Err(StoreError::Io { .. })) => p.success(),
                (Some(p), Err(_)) => p.failure(),
                (None, _) => {}
            }
            match result? {
                Some(found) => return Ok(Some(found)),
                None => continue,
            }
        }
        Ok(None)
    }

    async fn fetch_whole(
        &self,
        i: usize,
        source: &Source,
        location: &Path,
        limit: u64,
    ) -> Result<Option<(ObjectInfo, Option<Bytes>)>, StoreError> {
        let name = &source.name;
        let got = match self
            .timed(name, source.store.get_opts(location, GetOptions::default()))
            .await?
        {
            Ok(got) => got,
            Err(e) if is_missing_object(&e) => return Ok(None),
            Err(e) => return Err(self.backend_error(name, e)),
        };
        let info = remote_info(i, got.meta.clone());
        if info.size > limit {
            return Ok(Some((info, None))); // dropping `got` abandons the body
        }
        let mut buf = BytesMut::with_capacity(info.size as usize);
        let mut body = got.into_stream();
        while let Some(chunk) = body.next().await {
            // A body that breaks off is a transfer error (Io), like a broken stream in
            // `read`: the store did answer, so it does not count towards the breaker.
            let chunk = chunk.map_err(|e| io_to_store(name, io::Error::other(e)))?;
            if buf.len() + chunk.len() > info.size as usize {
                return Err(io_to_store(
                    name,
                    io::Error::other("store sent more bytes than announced"),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        if buf.len() as u64 != info.size {
            return Err(io_to_store(
                name,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "store body ended after {} of {} bytes",
                        buf.len(),
                        info.size
                    ),
                ),
            ));
        }
        Ok(Some((info, Some(buf.freeze()))))
    }

    /// Reads the whole object into memory (small objects only: the caller checks the size).
    pub async fn read_all(&self, info: &ObjectInfo) -> Result<Bytes, StoreError> {
        let stream = self.read(info, 0..info.size).await?;
        let name = self.name(info.source).to_string();
        let mut buf = BytesMut::with_capacity(info.size as usize);
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| io_to_store(&name, e))?;
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Streams `range` (end-exclusive, within the object) of the object. The first byte is awaited
    /// here, within the first-byte deadline; later stalls are bounded by the store's read timeout.
    pub async fn read(
        &self,
        info: &ObjectInfo,
        range: Range<u64>,
    ) -> Result<BodyStream, StoreError> {
        let Some(source) = self.sources.get(info.source) else {
            return Err(StoreError::Io {
                store: "?".into(),
                source: io::Error::other("unknown source"),
            });
        };
        let expected = range.end.saturating_sub(range.start);
        if expected == 0 {
            return Ok(stream::empty().boxed());
        }
        let permit = self.permit(info.source)?;
        let started = Instant::now();
        let opened = self.open(source, info, range).await;
        if let Err(e) = &opened {
            // Successful reads are recorded when their stream ends (bytes known then).
            self.observe(info.source, StoreOp::Get, error_outcome(e), started, 0);
        }
        match (permit, &opened) {
            (Some(p), Ok(_)) => p.success(),
            // The store answered; the object changed under us. Not a store failure.
            (Some(p), Err(StoreError::Changed { .. })) => drop(p),
            (Some(p), Err(_)) => p.failure(),
            (None, _) => {}
        }
        let stream = opened?;
        self.note_slow(&source.name, "get", info.location.as_ref(), started);
        let meter = self.metrics.clone().map(|m| Meter {
            metrics: m,
            store: source.name.clone(),
            started,
        });
        Ok(exact_length(stream, expected, meter))
    }

    async fn open(
        &self,
        source: &Source,
        info: &ObjectInfo,
        range: Range<u64>,
    ) -> Result<BodyStream, StoreError> {
        Ok(if let Some(root) = &source.local_root {
            local_read(root, info, range, &source.name, self.private_prefix.clone()).await?
        } else {
            let options = GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                if_match: info.store_etag.clone(),
                ..GetOptions::default()
            };
            let result = self
                .timed(&source.name, source.store.get_opts(&info.location, options))
                .await?;
            let result = result.map_err(|e| match e {
                object_store::Error::Precondition { .. } => StoreError::Changed {
                    store: source.name.clone(),
                },
                e if is_missing_object(&e) => StoreError::Changed {
                    store: source.name.clone(),
                },
                other => self.backend_error(&source.name, other),
            })?;
            result.into_stream().map_err(io::Error::other).boxed()
        })
    }

    /// A remote store's error: a [`StoreError::Timeout`] when the HTTP client gave up waiting
    /// (its read timeout, the store timeout, may pass just before ours does), so that a store
    /// that hangs is a 504 and counted as a timeout whichever deadline fired first.
    fn backend_error(&self, store: &str, e: object_store::Error) -> StoreError {
        if is_timeout(&e) {
            return StoreError::Timeout {
                store: store.to_string(),
                after: self.first_byte_timeout,
            };
        }
        StoreError::Backend {
            store: store.to_string(),
            source: e,
        }
    }

    async fn timed<T>(&self, store: &str, fut: impl Future<Output = T>) -> Result<T, StoreError> {
        tokio::time::timeout(self.first_byte_timeout, fut)
            .await
            .map_err(|_| StoreError::Timeout {
                store: store.to_string(),
                after: self.first_byte_timeout,
            })
    }

    fn note_slow(&self, store: &str, op: &'static str, key: &str, started: Instant) {
        let took = started.elapsed();
        if took >= self.slow {
            tracing::warn!(
                store,
                op,
                key,
                took_ms = took.as_millis() as u64,
                "slow store request"
            );
        }
    }
}

/// Metadata of a remote object as we keep it.
fn remote_info(i: usize, meta: object_store::ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        source: i,
        location: meta.location,
        size: meta.size,
        last_modified: whole_seconds(meta.last_modified.into()),
        store_etag: meta.e_tag,
        version: meta.version,
        mtime_nanos: 0,
    }
}

/// Whether `e` says the store's HTTP client timed out (down its chain of sources).
fn is_timeout(e: &object_store::Error) -> bool {
    chain(e).any(|err| {
        err.downcast_ref::<object_store::client::HttpError>()
            .is_some_and(|h| h.kind() == object_store::client::HttpErrorKind::Timeout)
            || err
                .downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
    })
}

/// `e` and its sources, outermost first.
fn chain<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// Whether `e` says the object does not exist: a `NotFound` that is not about the bucket or
/// container itself. A missing bucket (deleted, misspelt, another region's) also answers 404,
/// and taken for a missing object it would make every URL a cached 404 while health says
/// "ok"; it is a store failure instead (502, the breaker, stale-if-error). Told apart by the
/// error code in the XML body the store sends with the 404 (S3's and GCS's
/// `<Code>NoSuchBucket</Code>`, Azure's `<Code>ContainerNotFound</Code>`), which comes with a
/// `GET`; a `HEAD` answer has no body.
pub fn is_missing_object(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. }) && !is_missing_container(e)
}

/// Only the store's answer is read, never the error's own words: those name the requested
/// path, which a client chooses (`GET /NoSuchBucket` must stay a 404, not a store failure that
/// counts towards the breaker). A key the store echoes in its body is XML-escaped there, and
/// percent-encoded in a URL, so no key can spell the `<Code>` element.
fn is_missing_container(e: &object_store::Error) -> bool {
    const CODES: [&str; 2] = [
        "<Code>NoSuchBucket</Code>",
        "<Code>ContainerNotFound</Code>",
    ];
    chain(e).skip(1).any(|err| {
        let text = err.to_string();
        CODES.iter().any(|code| text.contains(code))
    })
}

fn outcome_of<T>(result: &Result<Option<T>, StoreError>) -> StoreOutcome {
    match result {
        Ok(Some(_)) => StoreOutcome::Ok,
        Ok(None) => StoreOutcome::NotFound,
        Err(e) => error_outcome(e),
    }
}

fn error_outcome(e: &StoreError) -> StoreOutcome {
    match e {
        StoreError::Timeout { .. } => StoreOutcome::Timeout,
        StoreError::Changed { .. } => StoreOutcome::Changed,
        _ => StoreOutcome::Error,
    }
}

fn io_to_store(store: &str, e: io::Error) -> StoreError {
    StoreError::Io {
        store: store.to_string(),
        source: e,
    }
}

/// Truncates a time to whole seconds: HTTP dates carry no fractions, and comparing a stored
/// nanosecond time against a second-precision If-Modified-Since would never match.
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

/// Resolves a key under a local root, refusing anything that leaves it (symlinks included).
/// Linux errno values that mean "no such object" for a key, however odd the key: a path
/// component that is a file (ENOTDIR), a name too long (ENAMETOOLONG), a symlink loop (ELOOP),
/// an invalid argument (EINVAL). None of them says anything about the store's health, so none
/// may count towards opening its breaker (a URL must not be able to take a store offline).
const NOT_FOUND_ERRNOS: [i32; 4] = [20, 36, 40, 22];

/// Resolves a key under a local root, refusing anything that leaves it (symlinks included), and
/// anything that reaches the private prefix through a symlink from outside it (the prefix is
/// guarded by key, so a public key must not alias a private file).
fn local_path(
    root: &FsPath,
    location: &Path,
    private_prefix: Option<&str>,
) -> io::Result<Option<PathBuf>> {
    let mut path = root.to_path_buf();
    for part in location.parts() {
        path.push(part.as_ref());
    }
    let canonical = match std::fs::canonicalize(&path) {
        Ok(p) => p,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.raw_os_error()
                    .is_some_and(|n| NOT_FOUND_ERRNOS.contains(&n)) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Ok(relative) = canonical.strip_prefix(root) else {
        tracing::warn!(
            key = location.as_ref(),
            "refused a symlink that leaves the local root"
        );
        return Ok(None);
    };
    if let Some(prefix) = private_prefix {
        let prefix = FsPath::new(prefix.trim_end_matches('/'));
        let key_is_private = FsPath::new(location.as_ref()).starts_with(prefix);
        if relative.starts_with(prefix) && !key_is_private {
            tracing::warn!(
                key = location.as_ref(),
                "refused a symlink from a public key into the private prefix"
            );
            return Ok(None);
        }
    }
    Ok(Some(canonical))
}

/// A local file's modification time in nanoseconds since the epoch (0 when unknown or
/// earlier): what [`ObjectInfo::mtime_nanos`] holds and a read compares.
fn mtime_nanos(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// Whether a local file's metadata still describes the version a lookup saw: the same size
/// and modification time (the derived ETag's inputs).
fn is_same_file(meta: &std::fs::Metadata, size: u64, mtime: u128) -> bool {
    meta.len() == size && mtime_nanos(meta) == mtime
}

/// A local file that changed while its body was read (truncated, or rewritten in place):
/// the stream ends with this error instead of its last bytes, and the read counts as
/// `changed`, not as a store failure.
#[derive(Debug)]
struct FileChanged;

impl std::fmt::Display for FileChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the file changed while it was read")
    }
}

impl std::error::Error for FileChanged {}

async fn local_head(
    root: PathBuf,
    i: usize,
    location: Path,
    name: &str,
    private_prefix: Option<String>,
) -> Result<Option<ObjectInfo>, StoreError> {
    let result = tokio::task::spawn_blocking(move || -> io::Result<Option<ObjectInfo>> {
        let Some(path) = local_path(&root, &location, private_prefix.as_deref())? else {
            return Ok(None);
        };
        let meta = std::fs::metadata(&path)?;
        if !meta.is_file() {
            return Ok(None);
        }
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        Ok(Some(ObjectInfo {
            source: i,
            location,
            size: meta.len(),
            last_modified: whole_seconds(modified),
            store_etag: None,
            version: None,
            mtime_nanos: mtime_nanos(&meta),
        }))
    })
    .await
    .map_err(|e| io_to_store(name, io::Error::other(e)))?;
    match result {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(None),
        other => other.map_err(|e| io_to_store(name, e)),
    }
}

async fn local_read(
    root: &FsPath,
    info: &ObjectInfo,
    range: Range<u64>,
    name: &str,
    private_prefix: Option<String>,
) -> Result<BodyStream, StoreError> {
    use std::os::unix::fs::FileExt;
    let root = root.to_path_buf();
    let location = info.location.clone();
    let (size, mtime_nanos) = (info.size, info.mtime_nanos);
    // `None`: the file is not the one the lookup saw (deleted, replaced, resized): the
    // caller's metadata is out of date, which is not a store failure.
    let file = tokio::task::spawn_blocking(move || -> io::Result<Option<std::fs::File>> {
        let Some(path) = local_path(&root, &location, private_prefix.as_deref())? else {
            return Ok(None);
        };
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        Ok(is_same_file(&meta, size, mtime_nanos).then_some(file))
    })
    .await
    .map_err(|e| io_to_store(name, io::Error::other(e)))?
    .map_err(|e| io_to_store(name, e))?;
    let Some(file) = file else {
        return Err(StoreError::Changed {
            store: name.to_string(),
        });
    };
    let file = Arc::new(file);
    let stream = stream::try_unfold(range, move |range| {
        let file = file.clone();
        async move {
            if range.start >= range.end {
                return Ok(None);
            }
            let want = (range.end - range.start).min(LOCAL_CHUNK as u64) as usize;
            let last = want as u64 == range.end - range.start;
            let offset = range.start;
            // Allocated here, on the connection's event loop, where it is also freed once
            // written: allocated on a blocking thread, the freed chunks stayed with that
            // thread's heap until it exited (about 4 MB per stalled download, measured).
            let mut buf = BytesMut::with_capacity(want);
            let chunk = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
                buf.resize(want, 0);
                let mut filled = 0;
                while filled < want {
                    let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
                    if n == 0 {
                        // Truncated while it was read.
                        return Err(io::Error::other(FileChanged));
                    }
                    filled += n;
                }
                // Rewritten in place while it was read (same size): the bytes sent may mix
                // two versions under the old ETag, so the body must not end as if whole.
                // Checked before the last chunk goes out, so the client sees a cut body.
                if last && !is_same_file(&file.metadata()?, size, mtime_nanos) {
                    return Err(io::Error::other(FileChanged));
                }
                Ok(buf.freeze())
            })
            .await
            .map_err(io::Error::other)??;
            if chunk.is_empty() {
                return Ok(None);
            }
            let next = range.start + chunk.len() as u64..range.end;
            Ok(Some((chunk, next)))
        }
    });
    Ok(stream.boxed())
}

/// Where a finished body read is recorded.
#[derive(Clone)]
struct Meter {
    metrics: Arc<Metrics>,
    store: String,
    started: Instant,
}

/// Fails the stream when it ends before (or runs past) `expected` bytes, and counts the bytes
/// read from the store into the metrics when it ends.
fn exact_length(inner: BodyStream, expected: u64, metrics: Option<Meter>) -> BodyStream {
    let state = (inner, 0u64, false);
    stream::unfold(state, move |(mut inner, seen, done)| {
        let metrics = metrics.clone();
        async move {
            if done {
                return None;
            }
            let finish = |seen: u64, outcome: StoreOutcome| {
                if let Some(m) = &metrics {
                    m.metrics.record_store(
                        &m.store,
                        StoreOp::Get,
                        outcome,
                        m.started.elapsed(),
                        seen,
                    );
                }
            };
            match inner.next().await {
                Some(Ok(chunk)) => {
                    let seen = seen + chunk.len() as u64;
                    if seen > expected {
                        let e = io::Error::other("store sent more bytes than announced");
                        return Some((Err(e), (inner, seen, true)));
                    }
                    Some((Ok(chunk), (inner, seen, false)))
                }
                Some(Err(e)) => {
                    let changed = e.get_ref().is_some_and(|i| i.is::<FileChanged>());
                    finish(
                        seen,
                        if changed {
                            StoreOutcome::Changed
                        } else {
                            StoreOutcome::Error
                        },
                    );
                    Some((Err(e), (inner, seen, true)))
                }
                None if seen < expected => {
                    finish(seen, StoreOutcome::Error);
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("store body ended after {seen} of {expected} bytes"),
                    );
                    Some((Err(e), (inner, seen, true)))
                }
                None => {
                    finish(seen, StoreOutcome::Ok);
                    None
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_timeout_down_the_chain_is_a_timeout() {
        let timed_out = object_store::Error::Generic {
            store: "S3",
            source: Box::new(io::Error::new(io::ErrorKind::TimedOut, "read timed out")),
        };
        assert!(is_timeout(&timed_out));
        let refused = object_store::Error::Generic {
            store: "S3",
            source: Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        assert!(!is_timeout(&refused));
    }

    #[test]
    fn only_the_stores_error_code_says_a_bucket_is_missing() {
        let not_found = |path: &str, body: &str| object_store::Error::NotFound {
            path: path.into(),
            source: body.to_string().into(),
        };
        let bucket = not_found("a.css", "<Error><Code>NoSuchBucket</Code></Error>");
        assert!(!is_missing_object(&bucket));
        let key = not_found("a.css", "<Error><Code>NoSuchKey</Code></Error>");
        assert!(is_missing_object(&key));
        // The path is the client's; an escaped echo of it in the body is not the code.
        let named = not_found(
            "<Code>NoSuchBucket</Code>",
            "<Error><Code>NoSuchKey</Code><Key>&lt;Code&gt;NoSuchBucket&lt;/Code&gt;</Key></Error>",
        );
        assert!(is_missing_object(&named));
    }

    #[tokio::test]
    async fn exact_length_fails_a_short_body() {
        let inner = stream::iter(vec![Ok(Bytes::from_static(b"abc"))]).boxed();
        let out: Vec<_> = exact_length(inner, 5, None).collect().await;
        assert!(out[0].is_ok());
        assert_eq!(
            out[1].as_ref().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[tokio::test]
    async fn a_file_rewritten_in_place_while_read_ends_the_body_cut_short() {
        let root = tempfile::tempdir().unwrap();
        let root_path = std::fs::canonicalize(root.path()).unwrap();
        let size = 3 * LOCAL_CHUNK;
        std::fs::write(root_path.join("big.bin"), vec![b'a'; size]).unwrap();
        let location = Path::parse("big.bin").unwrap();
        let info = local_head(root_path.clone(), 0, location, "t", None)
            .await
            .unwrap()
            .unwrap();
        let read = |info: ObjectInfo| {
            let root = root_path.clone();
            async move {
                let stream = local_read(&root, &info, 0..info.size, "t", None)
                    .await
                    .unwrap();
                exact_length(stream, info.size, None)
            }
        };
        // Unchanged: every byte.
        let whole: Vec<_> = read(info.clone()).await.collect().await;
        assert!(whole.iter().all(Result::is_ok));
        // The same size written over it after the first chunk went out: the body ends with
        // an error before its last chunk, so no client or cache takes it for a whole one.
        let mut stream = read(info.clone()).await;
        let first = stream.next().await.unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(root_path.join("big.bin"), vec![b'b'; size]).unwrap();
        let rest: Vec<_> = stream.collect().await;
        let sent = first.len() + rest.iter().flatten().map(Bytes::len).sum::<usize>();
        assert!(sent < size, "{sent} of {size} bytes sent");
        let err = rest.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(
            err.get_ref().is_some_and(|i| i.is::<FileChanged>()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn local_reads_refuse_symlinks_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let root = tempfile::tempdir().unwrap();
        let root_path = std::fs::canonicalize(root.path()).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root_path.join("link")).unwrap();
        std::fs::write(root_path.join("ok.txt"), b"hello").unwrap();
        let found = local_head(
            root_path.clone(),
            0,
            Path::parse("link").unwrap(),
            "t",
            None,
        )
        .await
        .unwrap();
        assert!(found.is_none());
        let ok = local_head(root_path, 0, Path::parse("ok.txt").unwrap(), "t", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ok.size, 5);
    }
}
