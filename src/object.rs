//! The resolved object: metadata, validators, content type, the whole body when it is small,
//! and the precompressed sidecars that exist beside it. [`Loader`] builds one from the stores;
//! the hot cache ([`crate::cache`]) keeps them.
//!
//! ETags (issue 2, point 6) must be the same on every node and every deploy for the same bytes:
//! - objects up to `etag_hash_limit` get the SHA-256 of their content, computed once and
//!   remembered in a memo keyed by (source, location, size, modification time, store ETag), so
//!   the same bytes are hashed once, not per request;
//! - larger objects get a SHA-256 derived from what changes with the content: the store's ETag
//!   and version for remote stores, size and modification time for local files (never the
//!   inode), so serving a range never reads the whole object.
//!
//! A precompressed sidecar (`style.css.br` beside `style.css`) is its own representation with
//! its own bytes, so its ETag is derived from the identity ETag *and* the sidecar's own
//! validators: replacing either changes it.

use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::HeaderValue;
use lru::LruCache;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::content_type::{TextBytes, essence_for, header_for, is_text};
use crate::encoding::Encoding;
use crate::etag::ETag;
use crate::policy::{Policy, PolicyChoice, PolicySet};
use crate::response::Prepared;
use crate::sendfile::BodyArena;
use crate::store::{ObjectInfo, StoreError, Stores};

/// A precompressed sibling of an object.
#[derive(Debug, Clone)]
pub struct Sidecar {
    /// Its encoding.
    pub encoding: Encoding,
    /// Where it lives.
    pub info: ObjectInfo,
    /// Its representation ETag.
    pub etag: ETag,
    /// The ETag rendered once as a header value.
    pub etag_value: HeaderValue,
    /// Its bytes when small enough to keep.
    pub body: Option<Bytes>,
}

/// Everything the pipeline needs to answer for one key.
#[derive(Debug, Clone)]
pub struct Object {
    /// The key it was found under.
    pub key: String,
    /// Store metadata.
    pub info: ObjectInfo,
    /// Strong ETag of the identity representation.
    pub etag: ETag,
    /// The identity ETag rendered once as a header value (no formatting per request).
    pub etag_value: HeaderValue,
    /// The Last-Modified we state: the store's, clamped to the load time (RFC 9110 §8.8.2.1:
    /// never later than the response's `Date`), so a file with a future modification time is
    /// judged by `If-Modified-Since` and `If-Range` against what we sent, not its own clock.
    pub last_modified: std::time::SystemTime,
    /// Last-Modified rendered once.
    pub last_modified_value: HeaderValue,
    /// ETags of the on-the-fly compressed representations (compressible types only): strong
    /// for a body held here, weak for a compression stream.
    pub variant_etags: Vec<(Encoding, ETag, HeaderValue)>,
    /// Content-Type for every representation.
    pub content_type: HeaderValue,
    /// The content type's essence (`text/css`), for policy matching and compressibility.
    pub mime: String,
    /// The metrics content class of `mime`, classified once.
    pub class: crate::metrics::ContentClass,
    /// Whether `mime` is worth compressing ([`crate::encoding::is_compressible`]), decided
    /// once: only these have sidecars looked up and may be compressed on the fly.
    pub compressible: bool,
    /// The whole identity body, when small enough to keep in memory.
    pub body: Option<Bytes>,
    /// Sidecars that exist, in server preference order.
    pub sidecars: Vec<Sidecar>,
    /// The policy chosen for this object on its last request, and the path it was chosen for
    /// (see [`Object::choose`]).
    policy_memo: PolicyMemo,
}

/// The last policy choice for an object and the path it was made for ([`Object::choose`]),
/// with the response headers prepared under that policy.
#[derive(Debug, Default)]
struct PolicyMemo(ArcSwapOption<Chosen>);

impl Clone for PolicyMemo {
    /// A clone starts with no memo: the copy may be changed (a refreshed object), and
    /// prepared headers must never outlive the object they were made from.
    fn clone(&self) -> PolicyMemo {
        PolicyMemo::default()
    }
}

/// The policy chosen for an object requested under one path, and what was prepared with it:
/// the header maps of each representation ([`Chosen::prepared`]).
#[derive(Debug)]
pub struct Chosen {
    choice: PolicyChoice,
    path: Box<str>,
    prepared: [OnceLock<Prepared>; Encoding::COUNT],
}

impl Chosen {
    /// The prepared headers of the representation in `encoding`, made by `make` the first
    /// time.
    pub fn prepared(&self, encoding: Encoding, make: impl FnOnce() -> Prepared) -> &Prepared {
        self.prepared[encoding.index()].get_or_init(make)
    }
}

impl Object {
    /// The policy of `set` for this object requested as `url_path`: the same answer as
    /// [`PolicySet::select`], remembered with the object so that repeated requests for it
    /// skip the rule matching (one atomic load and a string comparison). A reload makes a new
    /// set, whose choices are made afresh; a request for the object under another path (as
    /// `/dir/` and `/dir/index.html` are) is matched again and remembered instead. The memo
    /// it was remembered in also keeps the response headers prepared under that policy.
    pub fn choose<'s>(&self, set: &'s PolicySet, url_path: &str) -> (&'s Policy, Arc<Chosen>) {
        if let Some(memo) = self.policy_memo.0.load_full()
            && *memo.path == *url_path
            && let Some(policy) = set.chosen(memo.choice)
        {
            return (policy, memo);
        }
        let (choice, policy) = set.choose(url_path, &self.mime);
        let memo = Arc::new(Chosen {
            choice,
            path: url_path.into(),
            prepared: Default::default(),
        });
        self.policy_memo.0.store(Some(memo.clone()));
        (policy, memo)
    }

    /// Bytes this object holds in memory (for the cache's byte budget).
    pub fn weight(&self) -> u64 {
        let meta = 256 + self.key.len() as u64 + self.mime.len() as u64;
        let body = self.body.as_ref().map_or(0, |b| b.len() as u64);
        let sidecars: u64 = self
            .sidecars
            .iter()
            .map(|s| 128 + s.body.as_ref().map_or(0, |b| b.len() as u64))
            .sum();
        meta + body + sidecars
    }

    /// The ETag (and its header value) of an on-the-fly compressed representation.
    pub fn variant_etag(&self, encoding: Encoding) -> Option<(&ETag, &HeaderValue)> {
        self.variant_etags
            .iter()
            .find(|(e, _, _)| *e == encoding)
            .map(|(_, tag, value)| (tag, value))
    }

    /// The sidecar for `encoding`, if one exists.
    pub fn sidecar(&self, encoding: Encoding) -> Option<&Sidecar> {
        self.sidecars.iter().find(|s| s.encoding == encoding)
    }
}

/// Memo key: everything that changes when the bytes change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MemoKey {
    source: usize,
    location: String,
    size: u64,
    mtime_nanos: u128,
    last_modified: std::time::SystemTime,
    store_etag: Option<String>,
}

impl MemoKey {
    fn of(info: &ObjectInfo) -> MemoKey {
        MemoKey {
            source: info.source,
            location: info.location.to_string(),
            size: info.size,
            mtime_nanos: info.mtime_nanos,
            last_modified: info.last_modified,
            store_etag: info.store_etag.clone(),
        }
    }
}

/// Loads [`Object`]s from the stores.
#[derive(Debug)]
pub struct Loader {
    stores: Arc<Stores>,
    hash_limit: u64,
    keep_body_limit: u64,
    memo: Mutex<LruCache<MemoKey, Checked>>,
    arena: Option<Arc<BodyArena>>,
}

impl Loader {
    /// `hash_limit`: content-hash ETags up to this size; `keep_body_limit`: bodies up to this
    /// size are kept in the [`Object`] (0 keeps none).
    pub fn new(stores: Arc<Stores>, hash_limit: u64, keep_body_limit: u64) -> Loader {
        let cap = NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN);
        Loader {
            stores,
            hash_limit,
            keep_body_limit,
            memo: Mutex::new(LruCache::new(cap)),
            arena: None,
        }
    }

    /// Kept bodies go into `arena` (see [`crate::sendfile`]).
    pub fn with_arena(mut self, arena: Option<Arc<BodyArena>>) -> Loader {
        self.arena = arena;
        self
    }

    /// `body` in the arena when there is one and it fits there (see [`BodyArena::adopt`]).
    pub fn keep(&self, body: Bytes) -> Bytes {
        match &self.arena {
            Some(arena) => arena.adopt(body),
            None => body,
        }
    }

    /// The stores behind this loader.
    pub fn stores(&self) -> &Arc<Stores> {
        &self.stores
    }

    /// Metadata only (for revalidation): `None` when no source has the key.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.stores.head(key).await
    }

    /// Loads an object with its validators and sidecars; `None` when no source has it.
    ///
    /// A remote object small enough to hash or keep comes back with its metadata in one GET
    /// ([`Stores::get_whole`]); a local one is `stat`ed and read with positional reads.
    pub async fn load(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let limit = self.keep_body_limit.max(self.hash_limit);
        let Some((info, body)) = self.stores.get_whole(key, limit).await? else {
            return Ok(None);
        };
        self.build(key, info, body).await.map(Some)
    }

    /// Builds the object for metadata already looked up.
    pub async fn load_known(&self, key: &str, info: ObjectInfo) -> Result<Object, StoreError> {
        self.build(key, info, None).await
    }

    /// Builds the object; `fetched` is the whole body when the lookup already brought it.
    async fn build(
        &self,
        key: &str,
        info: ObjectInfo,
        fetched: Option<Bytes>,
    ) -> Result<Object, StoreError> {
        let mime = essence_for(key);
        let (Checked { etag, text: bytes }, body) =
            self.validators(&info, fetched, is_text(&mime)).await?;
        let content_type = header_for(&mime, bytes);
        let compressible = crate::encoding::is_compressible(&mime);
        let sidecars = if compressible {
            self.sidecars(key, &info, &etag).await?
        } else {
            Vec::new()
        };
        // An on-the-fly variant of a body held here is compressed once, at the cached level,
        // so every node makes the same bytes: a strong tag. One too big to hold is a
        // compression stream, at another level and cut where the store's chunks fall: the
        // same content, not the same bytes, so a weak tag (§8.8.1), which also keeps it out of
        // `If-Match` and `If-Range`.
        let streamed = body.is_none();
        let variant_etags = if compressible {
            Encoding::COMPRESSED
                .iter()
                .map(|enc| {
                    // A stream's bytes are not a held variant's (another level, cut where
                    // the store's chunks fall): a weak tag, and another opaque one, so that
                    // a cache that freshens its stream copy with a 304 never takes on the
                    // held variant's strong tag for it (RFC 9111 §4.3.4).
                    let tag = if streamed {
                        etag.with_suffix(&format!("{}-stream", enc.token()))
                            .into_weak()
                    } else {
                        etag.with_suffix(enc.token())
                    };
                    let value = tag.header_value();
                    (*enc, tag, value)
                })
                .collect()
        } else {
            Vec::new()
        };
        let now = crate::store::whole_seconds(std::time::SystemTime::now());
        let last_modified = info.last_modified.min(now);
        let last_modified_value = crate::response::http_date(last_modified);
        Ok(Object {
            key: key.to_string(),
            info,
            last_modified,
            etag_value: etag.header_value(),
            etag,
            last_modified_value,
            variant_etags,
            content_type,
            class: crate::metrics::ContentClass::from_content_type(&mime),
            compressible,
            mime,
            body,
            sidecars,
            policy_memo: PolicyMemo::default(),
        })
    }

    /// The ETag of `info` and what its bytes are (checked for UTF-8 when `text`), and its body
    /// when it is small enough to keep.
    async fn validators(
        &self,
        info: &ObjectInfo,
        fetched: Option<Bytes>,
        text: bool,
    ) -> Result<(Checked, Option<Bytes>), StoreError> {
        let memo_key = MemoKey::of(info);
        let keep = info.size <= self.keep_body_limit;
        let remembered = self.memo.lock().get(&memo_key).cloned();
        if let Some(checked) = remembered {
            let body = match (keep, fetched) {
                (false, _) => None,
                (true, Some(b)) => Some(b),
                (true, None) => Some(self.stores.read_all(info).await?),
            };
            return Ok((checked, body.map(|b| self.keep(b))));
        }
        if info.size > self.hash_limit {
            let body = fetched.filter(|_| keep).map(|b| self.keep(b));
            let checked = Checked {
                etag: derived_etag(info),
                text: TextBytes::Unread,
            };
            return Ok((checked, body));
        }
        let bytes = match fetched {
            Some(b) => b,
            None => self.stores.read_all(info).await?,
        };
        let checked = match check_bytes(bytes.clone(), text).await {
            Some(checked) => {
                self.memo.lock().put(memo_key, checked.clone());
                checked
            }
            // The blocking pool is shutting down: a tag that never matches content, not
            // remembered for this version.
            None => Checked {
                etag: ETag::derive(&[b"unhashed"]),
                text: TextBytes::Unread,
            },
        };
        Ok((checked, keep.then(|| self.keep(bytes))))
    }

    async fn sidecars(
        &self,
        key: &str,
        identity: &ObjectInfo,
        identity_etag: &ETag,
    ) -> Result<Vec<Sidecar>, StoreError> {
        let lookups = Encoding::COMPRESSED.map(|enc| {
            let sidecar_key = format!("{key}{}", enc.sidecar_suffix().unwrap_or(""));
            async move {
                (
                    enc,
                    self.stores.head_in(identity.source, &sidecar_key).await,
                )
            }
        });
        let mut found = Vec::new();
        for (encoding, result) in futures::future::join_all(lookups).await {
            let Some(info) = result? else { continue };
            if is_stale_sidecar(identity, &info) {
                tracing::warn!(
                    key,
                    sidecar = info.location.as_ref(),
                    "a precompressed sidecar older than its original is not served (regenerate it); the original is compressed as it is sent instead"
                );
                continue;
            }
            // Compressed bytes: no text to check.
            let (Checked { etag: own, .. }, body) = self.validators(&info, None, false).await?;
            let etag = ETag::derive(&[
                identity_etag.opaque().as_bytes(),
                encoding.token().as_bytes(),
                own.opaque().as_bytes(),
            ]);
            let etag_value = etag.header_value();
            found.push(Sidecar {
                encoding,
                info,
                etag,
                etag_value,
                body,
            });
        }
        Ok(found)
    }
}

/// Whether `sidecar` (`style.css.br`) was last modified more than [`SIDECAR_SLACK`] before
/// its `original` (`style.css`): then it was made from an older version (the original was
/// deployed and the sidecar not regenerated) and would send clients that accept its
/// encoding old content. Such a sidecar is left out; the original is compressed as it is
/// sent. The slack is for copies and uploads that do not keep modification times and write
/// the pair out of order (`cp -r`, parallel uploaders): seconds apart, where a forgotten
/// sidecar is usually a deploy or more behind.
pub fn is_stale_sidecar(original: &ObjectInfo, sidecar: &ObjectInfo) -> bool {
    sidecar.last_modified + SIDECAR_SLACK < original.last_modified
}

/// How much older than its original a sidecar may be and still be served.
pub const SIDECAR_SLACK: std::time::Duration = std::time::Duration::from_secs(60);

/// What reading a version's bytes found out, remembered per version.
#[derive(Clone, Debug)]
struct Checked {
    /// The SHA-256 of the bytes.
    etag: ETag,
    /// Whether they are UTF-8, for the charset ([`crate::content_type`]).
    text: TextBytes,
}

/// SHA-256 of a body, and, when `text`, whether it is UTF-8; large bodies are read on the
/// blocking pool (`None` when it is shutting down).
async fn check_bytes(bytes: Bytes, text: bool) -> Option<Checked> {
    let check = move |bytes: &[u8]| Checked {
        etag: ETag::from_sha256(&Sha256::digest(bytes)),
        text: if text {
            TextBytes::check(bytes)
        } else {
            TextBytes::Utf8
        },
    };
    if bytes.len() <= 64 * 1024 {
        return Some(check(&bytes));
    }
    tokio::task::spawn_blocking(move || check(&bytes))
        .await
        .ok()
}

/// ETag for objects above the hash limit, from what changes with the content.
fn derived_etag(info: &ObjectInfo) -> ETag {
    let size = info.size.to_be_bytes();
    match (&info.store_etag, &info.version) {
        (Some(tag), version) => ETag::derive(&[
            b"store",
            tag.as_bytes(),
            version.as_deref().unwrap_or("").as_bytes(),
            &size,
        ]),
        (None, _) => {
            let mtime = info.mtime_nanos.to_be_bytes();
            ETag::derive(&[b"local", &size, &mtime])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Source;
    use crate::testing::CountingStore;
    use std::time::Duration;

    fn set(text: &str) -> PolicySet {
        PolicySet::from_str(text, "t.toml").unwrap()
    }

    fn cache_control(policy: &Policy) -> String {
        let mut h = http::HeaderMap::new();
        policy.apply(&mut h);
        h.get(http::header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_remembered_policy_is_always_the_one_select_gives() {
        let store = Arc::new(CountingStore::new());
        store
            .put_bytes("blog/index.html", "<p>hi</p>")
            .await
            .unwrap();
        let stores = Arc::new(Stores::new(
            vec![Source::custom("mem", store)],
            Duration::from_secs(5),
            Duration::from_secs(5),
        ));
        let loader = Loader::new(stores, 1 << 20, 1 << 20);
        let object = loader.load("blog/index.html").await.unwrap().unwrap();

        let first = set(r#"
            [[rule]]
            name = "dir"
            path = "/blog/"
            max-age = "1m"

            [[rule]]
            name = "html"
            content-type = ["text/html"]
            no-cache = true

            [default]
            max-age = "1h"

            [errors]
            max-age = "60s"
        "#);
        // Two paths for one object, alternately, then again: each answer is select's.
        for path in [
            "/blog/",
            "/blog/index.html",
            "/blog/",
            "/blog/",
            "/blog/index.html",
        ] {
            assert_eq!(
                cache_control(object.choose(&first, path).0),
                cache_control(first.select(path, &object.mime)),
                "{path}"
            );
        }
        assert_eq!(
            cache_control(object.choose(&first, "/blog/").0),
            "max-age=60"
        );
        assert_eq!(
            cache_control(object.choose(&first, "/blog/index.html").0),
            "no-cache"
        );

        // A reloaded set with other rules: the choice remembered for the old set is not used.
        let reloaded = set(r#"
            [default]
            max-age = "2h"

            [errors]
            max-age = "60s"
        "#);
        assert_eq!(
            cache_control(object.choose(&reloaded, "/blog/index.html").0),
            "max-age=7200"
        );
        assert_eq!(
            cache_control(object.choose(&first, "/blog/index.html").0),
            "no-cache"
        );
    }
}
