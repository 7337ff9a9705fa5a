//! The object pipeline, top to bottom. Each step is a function of its own module:
//!
//! 1. **parse** ([`crate::request`]): method, path → key (traversal-safe), preconditions,
//!    Range, Accept-Encoding. Nothing after this step reads raw headers.
//! 2. **resolve** ([`crate::cache`], [`crate::store`]): hot cache, else the stores (one request
//!    per key at a time); the result carries metadata, validators, content type and sidecars.
//! 3. **select** ([`crate::encoding`]): the representation (precompressed sidecar, cached
//!    compressed variant, on-the-fly compression, or identity) by Accept-Encoding. It comes
//!    before the preconditions because RFC 9110 §13.2 evaluates them against the *selected*
//!    representation: each encoding has its own ETag.
//! 4. **decide** ([`crate::conditional`]): §13.2.2 in order → proceed, 304 or 412.
//! 5. **range** ([`crate::range`]): the byte range(s) of the selected representation, only when
//!    its bytes are stable (never a compression stream in flight) and If-Range allows.
//! 6. **policy** ([`crate::policy`]): precomputed Cache-Control & co. for path and type.
//! 7. **respond** ([`crate::response`]), then **record** ([`crate::metrics`]).
//!
//! A cache hit goes through steps 3-7 exactly like a miss, so the two differ only in
//! `Cache-Status`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::app::App;
use crate::cache::{CacheStatus, Lookup};
use crate::conditional::{self, Precondition, Validators};
use crate::encoding::{self, Encoding};
use crate::etag::ETag;
use crate::metrics::{CacheLabel, ContentClass};
use crate::object::Object;
use crate::policy::PolicySet;
use crate::range::{self, Multipart, RangeDecision};
use crate::request::{ObjectMethod, ObjectRequest, PathError, map_path};
use crate::response::{
    self, Body, Prepared, RepresentationHeaders, RequestHeaders, SharedFields, Vary,
};
use crate::store::{BodyStream, ObjectInfo, StoreError};

/// Where the bytes of the selected representation come from.
enum Content {
    /// Whole in memory (cached body, sidecar or compressed variant).
    Memory(Bytes),
    /// Read from the store on demand (ranges read just their bytes).
    Store(ObjectInfo),
    /// On-the-fly compression of a store stream: no known length, no ranges.
    Compress(ObjectInfo, Encoding),
}

/// The selected representation; its validators are borrowed from the object, where they
/// were rendered once at load.
struct Representation<'a> {
    encoding: Encoding,
    etag: &'a ETag,
    etag_value: &'a HeaderValue,
    content: Content,
}

impl Representation<'_> {
    /// Length, when the bytes are stable and known.
    fn len(&self) -> Option<u64> {
        match &self.content {
            Content::Memory(b) => Some(b.len() as u64),
            Content::Store(info) => Some(info.size),
            Content::Compress(..) => None,
        }
    }
}

/// What the pipeline hands back for metrics and the access log.
pub struct Outcome {
    /// The response.
    pub response: Response<Body>,
    /// Cache label for metrics.
    pub cache: CacheLabel,
    /// Content class for metrics.
    pub class: ContentClass,
    /// Bytes a 304 saved (the size the 200 would have sent).
    pub saved_not_modified: u64,
    /// Bytes compression saved.
    pub saved_compression: u64,
    /// The response's fields when they are prepared fields shared with other responses
    /// ([`SharedFields`]); the response's own map is then empty.
    pub shared: Option<SharedFields>,
}

impl Outcome {
    /// The outcome of a response that serves no object (an error, a refusal).
    pub fn plain(response: Response<Body>) -> Outcome {
        Outcome {
            response,
            cache: CacheLabel::Bypass,
            class: ContentClass::Other,
            saved_not_modified: 0,
            saved_compression: 0,
            shared: None,
        }
    }

    /// The `Content-Length` the response states, if any.
    fn content_length(&self) -> Option<u64> {
        match &self.shared {
            Some(shared) => shared.content_length(),
            None => self
                .response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(response::content_length),
        }
    }
}

/// Serves one object request (every path that is not an internal endpoint) as it `arrived`
/// (the cache's freshness is judged at its instant: no second clock reading).
pub async fn handle<B>(app: &Arc<App>, req: &Request<B>, arrived: &Arrival<'_>) -> Outcome {
    let method = match *req.method() {
        http::Method::GET => ObjectMethod::Get,
        http::Method::HEAD => ObjectMethod::Head,
        http::Method::OPTIONS => return Outcome::plain(options(app, req)),
        _ => return Outcome::plain(response::method_not_allowed()),
    };
    let policies = app.policies.current();
    let error_policy = policies.error_policy();
    let target = match map_path(req.uri(), app.settings.serve_dotfiles) {
        Ok(t) => t,
        Err(PathError::Bad(why)) => {
            tracing::debug!(path = req.uri().path(), why, "bad path");
            return Outcome::plain(response::plain(
                StatusCode::BAD_REQUEST,
                "bad request\n",
                None,
            ));
        }
        Err(PathError::Hidden(_)) => {
            return Outcome::plain(not_found(error_policy));
        }
        Err(PathError::TooLong) => {
            return Outcome::plain(response::plain(
                StatusCode::URI_TOO_LONG,
                "uri too long\n",
                None,
            ));
        }
    };
    let oreq = ObjectRequest::new(method, target, req.uri(), req.headers(), req.version());

    let private = match app.access.check(&oreq) {
        crate::signing::Access::Public => false,
        crate::signing::Access::SignedPrivate => true,
        crate::signing::Access::Hidden => return Outcome::plain(not_found(error_policy)),
        crate::signing::Access::Forbidden => {
            let mut res = response::plain(StatusCode::FORBIDDEN, "forbidden\n", None);
            // A player can tell an expired signature from a network error.
            with_cors_by_name(app, &oreq, &mut res);
            return Outcome::plain(res);
        }
    };

    let key = oreq.target.key();
    let mut reloaded = false;
    loop {
        let lookup = match app.cache.lookup_at(key, arrived.started).await {
            Ok(l) => l,
            // The object changed between the load's HEAD and its read: load it again.
            Err(e) if matches!(*e, StoreError::Changed { .. }) && !reloaded => {
                reloaded = true;
                continue;
            }
            Err(e) => return Outcome::plain(store_failure_by_name(app, &oreq, &e)),
        };
        let Some(object) = lookup.object.clone() else {
            let res = missing(app, &oreq, &lookup, req.uri(), error_policy).await;
            return Outcome::plain(res);
        };
        match serve(app, &policies, &oreq, &lookup, &object, private, arrived).await {
            Ok(outcome) => return outcome,
            // The object was replaced, resized or deleted since the cache looked: forget what
            // the cache holds and answer from the store as it is now (a 404 when it is gone),
            // once; changing again at once is a 502, never a failure of the store.
            Err(_) if !reloaded => {
                tracing::info!(key, "object changed in the store; reloading it");
                app.cache.forget(key, &object);
                reloaded = true;
            }
            Err(changed) => return Outcome::plain(store_failure_by_name(app, &oreq, &changed)),
        }
    }
}

/// 404, or a 308 to `/dir/` when `dir/index.html` exists (issue 2, point 3), either with
/// the lookup's `Cache-Status`. A cached not-found remembers the answer for
/// `dir/index.html` ([`crate::cache::IndexMemo`]), so a repeated 404 costs one cache
/// lookup, not two.
async fn missing(
    app: &Arc<App>,
    oreq: &ObjectRequest,
    lookup: &Lookup,
    uri: &http::Uri,
    error_policy: &crate::policy::Policy,
) -> Response<Body> {
    if !oreq.target.is_index && index_exists(app, oreq.target.key(), lookup).await {
        let mut location = format!("{}/", uri.path());
        if let Some(q) = uri.query() {
            location.push('?');
            location.push_str(q);
        }
        return response::permanent_redirect(&location, error_policy, lookup.cache_status_header());
    }
    let mut res = response::plain_with_cache_status(
        StatusCode::NOT_FOUND,
        NOT_FOUND_TEXT,
        error_policy,
        lookup.cache_status_header(),
    );
    // A font or a video that is not there: the page may read the 404.
    with_cors_by_name(app, oreq, &mut res);
    res
}

/// CORS fields for an answer about an object we have no object for (404, 403), by the type
/// its name says: a page may read why its font or video failed.
fn with_cors_by_name(app: &App, oreq: &ObjectRequest, res: &mut Response<Body>) {
    let cors = app.cors.for_key(oreq.origin.as_ref(), oreq.target.key());
    cors.write(res.headers_mut());
    Vary {
        accept_encoding: false,
        origin: cors.varies,
    }
    .write(res.headers_mut());
}

/// `OPTIONS` on an object path: 204 with `Allow`, and a CORS preflight's fields when it is
/// one for a type that takes CORS (by the path's extension: no store request).
fn options<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let mut res = response::options();
    if app.cors.is_on()
        && let Ok(target) = map_path(req.uri(), app.settings.serve_dotfiles)
    {
        res.headers_mut()
            .extend(app.cors.preflight(req.headers(), target.key()));
    }
    res
}

/// Whether `KEY/index.html` exists, from the not-found's memo or the cache.
async fn index_exists(app: &Arc<App>, key: &str, lookup: &Lookup) -> bool {
    let memo = lookup.index.as_deref();
    if let Some(exists) = memo.and_then(crate::cache::IndexMemo::get) {
        return exists;
    }
    let mut index_key = String::with_capacity(key.len() + 11);
    index_key.push_str(key);
    index_key.push_str("/index.html");
    match app.cache.lookup(&index_key).await {
        Ok(index) => {
            let exists = index.object.is_some();
            if let Some(memo) = memo {
                memo.set(exists);
            }
            exists
        }
        // A store failure is not an answer to remember; the 404 stands for now.
        Err(_) => false,
    }
}

const NOT_FOUND_TEXT: &str = "not found\n";

fn not_found(error_policy: &crate::policy::Policy) -> Response<Body> {
    response::plain(StatusCode::NOT_FOUND, NOT_FOUND_TEXT, Some(error_policy))
}

/// The answer to a store failure for `key`: 502, 503 or 504, each `no-store` (the cause goes
/// to the log). An open breaker's refusals are logged at debug:
/// the breaker logs its own state changes, and a line per refused request would flood the
/// log for as long as a store is down.
fn store_failure(e: &StoreError, key: &str) -> Response<Body> {
    if matches!(e, StoreError::CircuitOpen { .. }) {
        tracing::debug!(key, error = %e, "store failure");
    } else {
        tracing::warn!(key, error = %e, "store failure");
    }
    match e {
        StoreError::CircuitOpen { retry_after, .. } => response::unavailable(*retry_after),
        StoreError::Timeout { .. } => {
            response::plain(StatusCode::GATEWAY_TIMEOUT, "store timeout\n", None)
        }
        _ => response::plain(StatusCode::BAD_GATEWAY, "store error\n", None),
    }
}

/// [`store_failure`] for a request whose object was not found yet, with the CORS fields its
/// type by name takes, so that a page can tell a failing store from a network error.
fn store_failure_by_name(app: &App, oreq: &ObjectRequest, e: &StoreError) -> Response<Body> {
    let mut res = store_failure(e, oreq.target.key());
    with_cors_by_name(app, oreq, &mut res);
    res
}

/// Steps 3-7 for a found object. `Err` only for [`StoreError::Changed`]: the store no longer
/// holds the object the lookup found, and no response was started.
async fn serve(
    app: &Arc<App>,
    policies: &PolicySet,
    oreq: &ObjectRequest,
    lookup: &Lookup,
    object: &Arc<Object>,
    private: bool,
    arrival: &Arrival<'_>,
) -> Result<Outcome, StoreError> {
    let (policy, chosen_policy) = object.choose(policies, oreq.target.path());
    let class = object.class;
    let cache = match lookup.status {
        CacheStatus::Hit => CacheLabel::Hit,
        CacheStatus::Miss => CacheLabel::Miss,
        CacheStatus::Stale(_) => CacheLabel::Stale,
        CacheStatus::Bypass => CacheLabel::Bypass,
    };
    let mut outcome = Outcome {
        response: Response::new(response::empty()),
        cache,
        class,
        saved_not_modified: 0,
        saved_compression: 0,
        shared: None,
    };

    // 3. select
    let on_the_fly = object.compressible
        && !policy.no_transform
        && object.info.size >= app.settings.compress_min_size;
    let negotiable = on_the_fly || !object.sidecars.is_empty();
    let cors = app.cors.for_response(oreq.origin.as_ref(), &object.mime);
    let vary = Vary {
        accept_encoding: negotiable,
        origin: cors.varies,
    };
    // An error about this object (406, 412, 416, a failed read) varies as its 200 does, and a
    // page may read it as it may read the 200.
    let as_its_200 = |h: &mut http::HeaderMap| {
        vary.write(h);
        cors.write(h);
    };
    let failed = |e: &StoreError| {
        let mut res = store_failure(e, &object.key);
        as_its_200(res.headers_mut());
        res
    };
    let chosen = if negotiable {
        // A Range request is served from stable bytes only (issue 3, point 11): when the object
        // is too big to hold a compressed variant, on-the-fly encodings are not offered for it.
        // Nor to HTTP/1.0, where a stream of unknown length ends with the connection and a
        // failed one would look complete: it gets identity with its length.
        let streamed_only = object.body.is_none();
        let needs_length = oreq.range.is_some() || !oreq.open_length;
        let mut available = [Encoding::Identity; 4];
        let mut n = 0;
        for e in Encoding::COMPRESSED {
            if object.sidecar(e).is_some() || (on_the_fly && !(needs_length && streamed_only)) {
                available[n] = e;
                n += 1;
            }
        }
        available[n] = Encoding::Identity;
        let available = &available[..=n];
        oreq.accept_encoding.negotiate(available)
    } else {
        Some(Encoding::Identity)
    };
    let request_headers = || RequestHeaders {
        cache_status: lookup.cache_status_header(),
        private,
        cors: cors.allow_origin.clone(),
    };
    let Some(chosen) = chosen.or(app.settings.identity_fallback.then_some(Encoding::Identity))
    else {
        // `no-store`, as a 412: it answers this request's `Accept-Encoding` only.
        let mut res = response::plain(StatusCode::NOT_ACCEPTABLE, "no acceptable encoding\n", None);
        as_its_200(res.headers_mut());
        outcome.response = res;
        return Ok(outcome);
    };
    let rep = match select(app, object, chosen).await {
        Ok(rep) => rep,
        Err(e @ StoreError::Changed { .. }) => return Err(e),
        Err(e) => {
            outcome.response = failed(&e);
            return Ok(outcome);
        }
    };

    let representation = RepresentationHeaders {
        etag: rep.etag_value,
        last_modified: &object.last_modified_value,
        policy,
        vary,
    };
    // The fields of this representation: prepared once and kept with the object when its
    // length is settled, otherwise made for this response alone (a compression stream).
    let make = |len| Prepared::new(&representation, &object.content_type, rep.encoding, len);
    let kept = rep
        .len()
        .map(|len| chosen_policy.prepared(rep.encoding, || make(Some(len))))
        .filter(|p| p.fits(rep.len(), vary));
    let fields = |status: StatusCode| {
        let not_modified = status == StatusCode::NOT_MODIFIED;
        match kept {
            Some(p) if not_modified => p.not_modified(request_headers()),
            Some(p) => p.ok(request_headers()),
            None if not_modified => make(rep.len()).into_not_modified(request_headers()),
            None => make(rep.len()).into_ok(request_headers()),
        }
    };
    // The kept fields, shared instead of copied, when the response adds only its
    // `Cache-Status` to them (see `response::SharedFields`).
    let shared = |status: StatusCode| {
        let p = kept.filter(|_| !private && cors.allow_origin.is_none())?;
        let cache_status = lookup.cache_status_header();
        Some(if status == StatusCode::NOT_MODIFIED {
            p.shared_not_modified(cache_status)
        } else {
            p.shared_ok(cache_status)
        })
    };

    // 4. decide
    let validators = Validators {
        etag: rep.etag,
        last_modified: Some(object.last_modified),
    };
    match conditional::evaluate(&oreq.conditions, oreq.method.as_method(), &validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            let mut res = Response::new(response::empty());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            match shared(StatusCode::NOT_MODIFIED) {
                Some(fields) => outcome.shared = Some(fields),
                None => *res.headers_mut() = fields(StatusCode::NOT_MODIFIED),
            }
            outcome.saved_not_modified = rep.len().unwrap_or(object.info.size);
            outcome.response = res;
            return Ok(outcome);
        }
        Precondition::Failed => {
            let mut res = response::plain(
                StatusCode::PRECONDITION_FAILED,
                "precondition failed\n",
                None,
            );
            res.headers_mut()
                .insert(header::ETAG, rep.etag_value.clone());
            as_its_200(res.headers_mut());
            outcome.response = res;
            return Ok(outcome);
        }
    }

    // 5. range
    let decision = match (rep.len(), &oreq.range) {
        (Some(len), Some(h)) if conditional::range_allowed(&oreq.conditions, &validators) => {
            match range::decide(Some(h), len) {
                // Parts of an encoded representation cannot be said to be so: the message's
                // `Content-Encoding` would claim the multipart body itself is encoded, and
                // clients decode it and fail. The whole representation instead (a server may
                // ignore `Range`, RFC 9110 §14.2), as nginx's `gzip_static` does.
                RangeDecision::Partial(ranges)
                    if ranges.len() > 1 && rep.encoding != Encoding::Identity =>
                {
                    RangeDecision::Full
                }
                decision => decision,
            }
        }
        _ => RangeDecision::Full,
    };

    // 6-7. respond
    if rep.encoding != Encoding::Identity
        && let Some(len) = rep.len()
    {
        outcome.saved_compression = object.info.size.saturating_sub(len);
    }
    // The 200's fields; a 206 changes what differs. A whole, non-empty 200 may share them
    // (an empty one's length is written apart from the other fields).
    let mut res = Response::new(response::empty());
    let mut shared_fields = None;
    let head_only = oreq.method == ObjectMethod::Head;
    let body: Result<Body, StoreError> = match decision {
        RangeDecision::Full => {
            match shared(StatusCode::OK).filter(|_| rep.len() != Some(0)) {
                Some(fields) => shared_fields = Some(fields),
                None => *res.headers_mut() = fields(StatusCode::OK),
            }
            if head_only {
                Ok(response::empty())
            } else {
                full_body(app, &rep, (outcome.cache, class), arrival).await
            }
        }
        RangeDecision::Partial(ranges) if ranges.len() == 1 => {
            let r = ranges[0].clone();
            let len = rep.len().unwrap_or(0);
            *res.headers_mut() = fields(StatusCode::OK);
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = res.headers_mut();
            h.insert(header::CONTENT_RANGE, range::content_range(&r, len));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            range_body(app, &rep, r).await
        }
        RangeDecision::Partial(ranges) => {
            let len = rep.len().unwrap_or(0);
            let multipart = Multipart::new(&ranges, len, &object.content_type);
            *res.headers_mut() = fields(StatusCode::OK);
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, multipart.content_type());
            h.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(multipart.content_length()),
            );
            // Boxed, as are the store reads below: a future holds room for its largest await,
            // and hyper keeps a request's future in a per-connection slot, so these paths,
            // which a cached response never takes, would otherwise widen every request's
            // future (2,880 to 1,968 bytes with both).
            Box::pin(multipart_body(app.clone(), rep.content, multipart)).await
        }
        RangeDecision::Unsatisfiable => {
            let len = rep.len().unwrap_or(0);
            let mut r = response::plain(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range not satisfiable\n",
                // `no-store`, as a 412: `Range` is not part of a cache's key (RFC 9111), so
                // a stored 416 would answer plain GETs of the object.
                None,
            );
            r.headers_mut()
                .insert(header::CONTENT_RANGE, range::unsatisfied_content_range(len));
            as_its_200(r.headers_mut());
            r.headers_mut().insert(header::ETAG, rep.etag_value.clone());
            outcome.response = r;
            return Ok(outcome);
        }
    };
    match body {
        Ok(body) => {
            *res.body_mut() = body;
            outcome.response = res;
            outcome.shared = shared_fields;
        }
        Err(e @ StoreError::Changed { .. }) => return Err(e),
        Err(e) => outcome.response = failed(&e),
    }
    Ok(outcome)
}

/// Picks the bytes for `encoding`: a sidecar, a cached compressed variant (made once), a
/// compression stream for objects too big to hold, or identity.
async fn select<'a>(
    app: &Arc<App>,
    object: &'a Arc<Object>,
    encoding: Encoding,
) -> Result<Representation<'a>, StoreError> {
    if encoding == Encoding::Identity {
        let content = match &object.body {
            Some(b) => Content::Memory(b.clone()),
            None => Content::Store(object.info.clone()),
        };
        return Ok(Representation {
            encoding,
            etag: &object.etag,
            etag_value: &object.etag_value,
            content,
        });
    }
    if let Some(sidecar) = object.sidecar(encoding) {
        let content = match &sidecar.body {
            Some(b) => Content::Memory(b.clone()),
            None => Content::Store(sidecar.info.clone()),
        };
        return Ok(Representation {
            encoding,
            etag: &sidecar.etag,
            etag_value: &sidecar.etag_value,
            content,
        });
    }
    let Some((etag, etag_value)) = object.variant_etag(encoding) else {
        // Only compressible objects are offered on-the-fly encodings; never reached.
        return Err(StoreError::Io {
            store: "compression".into(),
            source: std::io::Error::other("no variant ETag for an on-the-fly encoding"),
        });
    };
    let Some(body) = &object.body else {
        return Ok(Representation {
            encoding,
            etag,
            etag_value,
            content: Content::Compress(object.info.clone(), encoding),
        });
    };
    let compressed = app
        .cache
        .compressed_variant(&object.key, &object.etag, encoding, body)
        .await
        .map_err(|e| StoreError::Io {
            store: "compression".into(),
            source: e,
        })?;
    Ok(Representation {
        encoding,
        etag,
        etag_value,
        content: Content::Memory(compressed),
    })
}

/// The body of a 200 (GET) for `rep`. A compression stream's length is not known when
/// [`record`] runs, so the stream counts its bytes under `labels` (the response's cache and
/// class) and writes its access-log line itself, with `arrival`.
async fn full_body(
    app: &Arc<App>,
    rep: &Representation<'_>,
    labels: (CacheLabel, ContentClass),
    arrival: &Arrival<'_>,
) -> Result<Body, StoreError> {
    match &rep.content {
        Content::Memory(b) => Ok(response::full(b.clone())),
        Content::Store(info) => Ok(response::stream(
            Box::pin(app.stores.read(info, 0..info.size)).await?,
        )),
        Content::Compress(info, enc) => {
            let source = Box::pin(app.stores.read(info, 0..info.size)).await?;
            let compressed = encoding::compress_stream(*enc, source);
            let line = app.settings.access_log.then(|| StreamLine {
                path: arrival.path.to_string(),
                cache: labels.0,
                started: arrival.started,
            });
            Ok(response::stream(
                CountedStream::new(compressed, app.clone(), labels, info.size, line).boxed(),
            ))
        }
    }
}

pin_project_lite::pin_project! {
    /// A compression stream whose bytes are counted as they are produced: its length is not
    /// known when the request is recorded, so [`record`] counts no body bytes for it. Each
    /// chunk adds to the body bytes of the response's labels (a GET 200; a chunk produced
    /// while the client goes away counts as sent), and a stream that ends cleanly adds the
    /// bytes compression saved (original size minus bytes sent). With the access log on, it
    /// writes the response's line when it is dropped: after its last chunk, after a failed
    /// read, or when hyper gives it up because the client went away. The line's bytes are
    /// those the stream produced, its duration runs to that moment (not to the response head
    /// as for other lines).
    struct CountedStream {
        #[pin]
        inner: BodyStream,
        app: Arc<App>,
        labels: (CacheLabel, ContentClass),
        original: u64,
        sent: u64,
        ended: bool,
        line: Option<StreamLine>,
    }

    impl PinnedDrop for CountedStream {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(line) = this.line.take() {
                access_line(
                    &http::Method::GET,
                    &line.path,
                    StatusCode::OK.as_u16(),
                    *this.sent,
                    line.started.elapsed(),
                    line.cache.as_str(),
                );
            }
        }
    }
}

impl CountedStream {
    fn new(
        inner: BodyStream,
        app: Arc<App>,
        labels: (CacheLabel, ContentClass),
        original: u64,
        line: Option<StreamLine>,
    ) -> Self {
        CountedStream {
            inner,
            app,
            labels,
            original,
            sent: 0,
            ended: false,
            line,
        }
    }
}

/// What a compression stream (a GET answered 200) needs for its access-log line, which it
/// writes itself ([`CountedStream`]): only when it ends are its bytes known.
struct StreamLine {
    path: String,
    cache: CacheLabel,
    started: Instant,
}

impl futures::Stream for CountedStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.project();
        let item = std::task::ready!(this.inner.poll_next(cx));
        let (cache, class) = *this.labels;
        match &item {
            Some(Ok(chunk)) => {
                let n = chunk.len() as u64;
                *this.sent += n;
                this.app.metrics.add_body_bytes(
                    &http::Method::GET,
                    StatusCode::OK,
                    cache,
                    class,
                    n,
                );
            }
            // An error ends the body early: what was sent is counted, no saving is.
            Some(Err(_)) => *this.ended = true,
            None if !*this.ended => {
                *this.ended = true;
                let saved = this.original.saturating_sub(*this.sent);
                this.app.metrics.add_saved_compression(class, saved);
            }
            None => {}
        }
        std::task::Poll::Ready(item)
    }
}

async fn range_body(
    app: &Arc<App>,
    rep: &Representation<'_>,
    r: std::ops::Range<u64>,
) -> Result<Body, StoreError> {
    match &rep.content {
        Content::Memory(b) => Ok(response::full(b.slice(r.start as usize..r.end as usize))),
        Content::Store(info) => Ok(response::stream(Box::pin(app.stores.read(info, r)).await?)),
        // Never reached: compression streams have no length, so no range is decided.
        Content::Compress(..) => Err(StoreError::Io {
            store: "range".into(),
            source: std::io::Error::other("range over a compression stream"),
        }),
    }
}

/// multipart/byteranges: each part's head, then its bytes, read part by part.
async fn multipart_body(
    app: Arc<App>,
    content: Content,
    multipart: Multipart,
) -> Result<Body, StoreError> {
    let closing = multipart.closing();
    let parts: Vec<_> = multipart
        .parts()
        .iter()
        .map(|p| (p.head.clone(), p.range.clone()))
        .collect();
    // The first part's read is opened before the 206 is committed, so a failing store is a
    // clean 502 rather than an aborted multipart body; later parts open as the body streams.
    let first: Option<BodyStream> = match (&content, parts.first()) {
        (Content::Store(info), Some((_, r))) => Some(app.stores.read(info, r.clone()).await?),
        _ => None,
    };
    let first = Arc::new(parking_lot::Mutex::new(first));
    let content = Arc::new(content);
    let chunks = stream::iter(parts.into_iter().enumerate()).then(move |(i, (head, r))| {
        let app = app.clone();
        let content = content.clone();
        let first = first.clone();
        async move {
            let opened = if i == 0 { first.lock().take() } else { None };
            let data: BodyStream = match (&*content, opened) {
                (_, Some(stream)) => stream,
                (Content::Memory(b), None) => {
                    stream::iter([Ok(b.slice(r.start as usize..r.end as usize))]).boxed()
                }
                (Content::Store(info), None) => app
                    .stores
                    .read(info, r)
                    .await
                    .map_err(std::io::Error::other)?,
                (Content::Compress(..), None) => {
                    return Err(std::io::Error::other("range over a compression stream"));
                }
            };
            Ok::<_, std::io::Error>(stream::iter([Ok(head)]).chain(data).boxed())
        }
    });
    let body = chunks
        .map(|r| match r {
            Ok(s) => s,
            Err(e) => stream::iter([Err(e)]).boxed(),
        })
        .flatten()
        .chain(stream::iter([Ok(closing)]));
    Ok(response::stream(body.boxed()))
}

/// A request as it arrived: what its access-log line names, and the instant its latency and
/// the cache's freshness are measured from (one clock reading per request).
pub struct Arrival<'a> {
    /// The method.
    pub method: &'a http::Method,
    /// The path as received (not decoded).
    pub path: &'a str,
    /// When the request's head was handed to the router.
    pub started: Instant,
}

impl<'a> Arrival<'a> {
    /// The request `req`, arrived at `started`.
    pub fn of<B>(req: &'a Request<B>, started: Instant) -> Arrival<'a> {
        Arrival {
            method: req.method(),
            path: req.uri().path(),
            started,
        }
    }
}

/// Records metrics and the access log line for one finished response.
///
/// A body whose length is not known here is a compression stream (`CountedStream`), the one
/// body built without a length: it counts its own bytes and writes its own access-log line
/// when it ends, so this counts 0 bytes and writes no line for it.
pub fn record(app: &App, arrival: &Arrival<'_>, outcome: &Outcome) {
    let status = outcome.response.status();
    let method = arrival.method;
    let bytes = if method == http::Method::HEAD {
        Some(0)
    } else {
        let hint = http_body::Body::size_hint(outcome.response.body());
        hint.exact().or_else(|| outcome.content_length())
    };
    let ended = Instant::now();
    let latency = ended.saturating_duration_since(arrival.started);
    app.metrics.record_request_ended(
        &crate::metrics::RequestRecord {
            method,
            status,
            cache: outcome.cache,
            class: outcome.class,
            body_bytes: bytes.unwrap_or(0),
            saved_not_modified: outcome.saved_not_modified,
            saved_compression: outcome.saved_compression,
            latency,
        },
        ended,
    );
    if let Some(bytes) = bytes
        && app.settings.access_log
    {
        access_line(
            method,
            arrival.path,
            status.as_u16(),
            bytes,
            latency,
            outcome.cache.as_str(),
        );
    }
}

/// Writes one access-log line (target `access`); `cache` is the response's [`CacheLabel`]
/// as the metrics spell it (`hit`, `miss`, ...), or `-` for a request that got no answer. The
/// duration is in milliseconds to the microsecond.
pub(crate) fn access_line(
    method: &http::Method,
    path: &str,
    status: u16,
    bytes: u64,
    duration: std::time::Duration,
    cache: &str,
) {
    tracing::info!(
        target: "access",
        method = %method,
        path,
        status,
        bytes,
        duration_ms = duration.as_micros() as f64 / 1000.0,
        cache,
        "request"
    );
}
