//! Step 6 of the pipeline: the one place that builds a `Response`.
//!
//! The header fields of an object response come in three parts, each written by one function:
//! - [`RepresentationHeaders`]: the validators and caching fields (ETag, Last-Modified,
//!   Cache-Control and friends, Vary, nosniff), the same for 200, 206 and 304 alike: RFC 9110
//!   §15.4.5 wants the same ETag, Cache-Control and Vary on a 304 as on the 200 it stands
//!   for, and a CDN that revalidates uses them to refresh its copy;
//! - [`content_headers`]: Content-Type, Content-Encoding, Accept-Ranges and Content-Length of
//!   a whole representation (200);
//! - [`RequestHeaders`]: what depends on the request (Cache-Status, `private` for signed
//!   objects, CORS).
//!
//! The first two do not change between requests for a cached object, so [`Prepared`] builds
//! them once per representation; a response then costs a copy of the prepared map and the
//! request's fields on top. Error responses carry a short fixed text; causes go to the log,
//! never to the client.

mod prepared;

pub use prepared::{Prepared, SharedFields};

use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};

use crate::cache::CACHE_NAME;
use crate::encoding::Encoding;
use crate::policy::Policy;
use crate::store::BodyStream;

/// The response body type of the whole server: bytes in memory (cache hits, errors, 304s),
/// held inline without an allocation of their own, or a stream (store reads, compression).
pub struct Body(BodyKind);

enum BodyKind {
    /// Sent in one frame; `None` once sent, or when empty.
    Full(Option<Bytes>),
    Stream(UnsyncBoxBody<Bytes, io::Error>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().0 {
            BodyKind::Full(bytes) => {
                Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b))))
            }
            BodyKind::Stream(stream) => Pin::new(stream).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            BodyKind::Full(bytes) => bytes.is_none(),
            BodyKind::Stream(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.0 {
            BodyKind::Full(bytes) => {
                http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            BodyKind::Stream(stream) => stream.size_hint(),
        }
    }
}

/// An empty body.
pub fn empty() -> Body {
    Body(BodyKind::Full(None))
}

/// A body from bytes in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    let bytes: Bytes = bytes.into();
    Body(BodyKind::Full((!bytes.is_empty()).then_some(bytes)))
}

/// A streamed body.
pub fn stream(s: BodyStream) -> Body {
    Body(BodyKind::Stream(
        StreamBody::new(s.map(|r| r.map(http_body::Frame::data))).boxed_unsync(),
    ))
}

/// A `Content-Length` value as a number (RFC 9110 section 8.6: digits only); `None` if it is
/// not one.
pub fn content_length(value: &HeaderValue) -> Option<u64> {
    let digits = value.as_bytes();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Renders one field as an HTTP/1 field line (RFC 9112 section 5): `name: value` and CRLF.
pub fn field_line(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `Cache-Status` header name (RFC 9211).
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Puts a placeholder `Cache-Status` into fields that are prepared once and copied per
/// response: the response's own value then replaces it in place, where inserting it would
/// grow the copy (a cloned map has no spare room).
pub fn cache_status_slot(h: &mut HeaderMap) {
    h.insert(CACHE_STATUS.clone(), HeaderValue::from_static(CACHE_NAME));
}

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static BYTES: HeaderValue = HeaderValue::from_static("bytes");
static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");

/// What a response varies on (RFC 9110 §12.5.5), as one precomputed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vary {
    /// The content could be negotiated by Accept-Encoding.
    pub accept_encoding: bool,
    /// CORS headers depend on Origin.
    pub origin: bool,
}

impl Vary {
    /// The header value, or None when the response varies on nothing.
    pub fn header_value(self) -> Option<HeaderValue> {
        match (self.accept_encoding, self.origin) {
            (true, true) => Some(HeaderValue::from_static("Accept-Encoding, Origin")),
            (true, false) => Some(HeaderValue::from_static("Accept-Encoding")),
            (false, true) => Some(HeaderValue::from_static("Origin")),
            (false, false) => None,
        }
    }

    /// Writes the `Vary` field into `h`, when there is one: the one place an error answer to a
    /// negotiated object (406, 412, 416) gets the `Vary` its 200 has.
    pub fn write(self, h: &mut HeaderMap) {
        if let Some(v) = self.header_value() {
            h.insert(header::VARY, v);
        }
    }
}

/// The validators and caching fields of one representation under one policy: the same on
/// every response for it (200, 206, 304, and the negotiated 406/416 use parts of them).
#[derive(Clone, Copy)]
pub struct RepresentationHeaders<'a> {
    /// ETag of the selected representation, rendered.
    pub etag: &'a HeaderValue,
    /// Last-Modified, rendered (never later than Date: see [`crate::object::Object`]).
    pub last_modified: &'a HeaderValue,
    /// Cache policy for the object.
    pub policy: &'a Policy,
    /// Vary.
    pub vary: Vary,
}

impl RepresentationHeaders<'_> {
    /// Writes the fields into `h`.
    pub fn write(&self, h: &mut HeaderMap) {
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::LAST_MODIFIED, self.last_modified.clone());
        self.policy.apply(h);
        if let Some(vary) = self.vary.header_value() {
            h.append(header::VARY, vary);
        }
        h.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
    }
}

/// The fields of a whole representation's 200: its type, coding and, when the length is
/// known (not a compression stream), `Accept-Ranges` and `Content-Length`.
pub fn content_headers(
    h: &mut HeaderMap,
    content_type: &HeaderValue,
    encoding: Encoding,
    len: Option<u64>,
) {
    if encoding != Encoding::Identity {
        h.insert(header::CONTENT_ENCODING, encoding.header_value());
    }
    h.insert(header::CONTENT_TYPE, content_type.clone());
    if let Some(len) = len {
        h.insert(header::ACCEPT_RANGES, accept_ranges());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

/// The fields that depend on the request rather than on the representation.
pub struct RequestHeaders {
    /// Cache-Status (RFC 9211) of this lookup.
    pub cache_status: HeaderValue,
    /// `Cache-Control: private` regardless of policy (signed private objects).
    pub private: bool,
    /// `Access-Control-Allow-Origin` to add.
    pub cors: Option<HeaderValue>,
}

impl RequestHeaders {
    /// Writes the fields into `h`, over the representation's (`private` replaces the
    /// policy's caching fields).
    pub fn write(self, h: &mut HeaderMap) {
        h.insert(CACHE_STATUS.clone(), self.cache_status);
        if self.private {
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache"),
            );
            h.remove(HeaderName::from_static("cdn-cache-control"));
            h.remove(HeaderName::from_static("surrogate-key"));
        }
        if let Some(origin) = self.cors {
            crate::cors::write_allowed(h, origin);
        }
    }
}

/// An IMF-fixdate header value.
pub fn http_date(t: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(t))
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// `Accept-Ranges: bytes`.
pub fn accept_ranges() -> HeaderValue {
    BYTES.clone()
}

/// A short plain-text response for errors and refusals, cached by the error policy. The
/// fields are the same for every such response under one policy, so they are written once
/// per policy (or once, for `no-store`) and copied.
pub fn plain(
    status: StatusCode,
    text: &'static str,
    error_policy: Option<&Policy>,
) -> Response<Body> {
    static NO_STORE: LazyLock<HeaderMap> = LazyLock::new(|| {
        plain_fields(false, |h| {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        })
    });
    let fields = match error_policy {
        Some(policy) => policy.plain_fields(false, || plain_fields(false, |h| policy.apply(h))),
        None => &NO_STORE,
    };
    plain_response(status, text, fields.clone())
}

/// [`plain`] with the `Cache-Status` of the lookup that led to it (a not-found, fresh or
/// from the negative cache). Its fields are prepared with a slot for `Cache-Status`, which
/// the value replaces in place: a copied map has no room to grow into.
pub fn plain_with_cache_status(
    status: StatusCode,
    text: &'static str,
    error_policy: &Policy,
    cache_status: HeaderValue,
) -> Response<Body> {
    let fields = error_policy.plain_fields(true, || plain_fields(true, |h| error_policy.apply(h)));
    let mut h = fields.clone();
    h.insert(CACHE_STATUS.clone(), cache_status);
    plain_response(status, text, h)
}

/// Type and nosniff, then the caching fields, and a placeholder `Cache-Status` if asked.
fn plain_fields(cache_status_slot: bool, caching: impl FnOnce(&mut HeaderMap)) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, TEXT_PLAIN.clone());
    h.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
    caching(&mut h);
    if cache_status_slot {
        self::cache_status_slot(&mut h);
    }
    h
}

fn plain_response(status: StatusCode, text: &'static str, fields: HeaderMap) -> Response<Body> {
    let mut res = Response::new(full(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    *res.headers_mut() = fields;
    res
}

/// Makes `res` the answer to a HEAD: the same fields, its length stated, no content (RFC 9110
/// §9.3.2), for HTTP/2: hyper leaves the body out of an HTTP/1 answer to a HEAD, but sends
/// it on HTTP/2. The object responses are built without one already; error answers (404,
/// 412, ...) are not.
pub fn without_content(res: &mut Response<Body>) {
    use http_body::Body as _;
    let Some(len) = res.body().size_hint().exact().filter(|&n| n > 0) else {
        return;
    };
    res.headers_mut()
        .entry(header::CONTENT_LENGTH)
        .or_insert_with(|| HeaderValue::from(len));
    *res.body_mut() = empty();
}

/// 405 with `Allow` (RFC 9110 §15.5.6).
pub fn method_not_allowed() -> Response<Body> {
    let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n", None);
    res.headers_mut().insert(header::ALLOW, ALLOW.clone());
    res
}

/// 204 for OPTIONS with `Allow`.
pub fn options() -> Response<Body> {
    let mut res = Response::new(empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res.headers_mut().insert(header::ALLOW, ALLOW.clone());
    res
}

/// 503 with `Retry-After` (whole seconds, at least 1), `no-store` and nothing else of the
/// error policy: a CDN that reads `CDN-Cache-Control` (RFC 9213) ignores `Cache-Control`, so
/// the policy's CDN lifetime would have it keep the outage instead of its stale copy.
pub fn unavailable(retry_after: Duration) -> Response<Body> {
    let mut res = plain(StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n", None);
    let secs = retry_after.as_secs().max(1);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// 308 to `location` (a path we built from a validated one, so always a valid header), with
/// the `Cache-Status` of the lookup that found the key missing.
pub fn permanent_redirect(
    location: &str,
    error_policy: &Policy,
    cache_status: HeaderValue,
) -> Response<Body> {
    let mut res = plain_with_cache_status(
        StatusCode::PERMANENT_REDIRECT,
        "moved\n",
        error_policy,
        cache_status,
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[test]
    fn content_length_is_digits_only() {
        let v = HeaderValue::from_static;
        assert_eq!(content_length(&v("0")), Some(0));
        assert_eq!(content_length(&v("32512")), Some(32512));
        for bad in ["", "+5", "-1", " 5", "5 ", "1e3", "99999999999999999999"] {
            assert_eq!(content_length(&v(bad)), None, "{bad:?}");
        }
    }

    async fn frames(mut body: Body) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.push(frame.unwrap().into_data().unwrap());
        }
        out
    }

    /// A 404 with a lookup's `Cache-Status` has exactly the fields of the plain 404 plus that
    /// one, under a policy set with more fields than a fresh map has room for, and the
    /// prepared slot never leaks into the plain responses that have no lookup.
    #[test]
    fn a_plain_response_with_a_cache_status_adds_exactly_that_field() {
        let mut text =
            String::from("[default]\nmax-age = \"1h\"\n[errors]\nmax-age = \"60s\"\n[headers]\n");
        for i in 0..12 {
            text.push_str(&format!("X-Extra-{i} = \"{i}\"\n"));
        }
        let set = crate::policy::PolicySet::from_str(&text, "t.toml").unwrap();
        let policy = set.error_policy();
        let fields = |res: &Response<Body>| {
            let mut v: Vec<_> = res
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect();
            v.sort();
            v
        };
        for round in 0..2 {
            // The second round copies the kept maps.
            let status = HeaderValue::from_str(&format!("cdn-origin; hit; ttl={round}")).unwrap();
            let with = plain_with_cache_status(
                StatusCode::NOT_FOUND,
                "not found\n",
                policy,
                status.clone(),
            );
            let without = plain(StatusCode::NOT_FOUND, "not found\n", Some(policy));
            assert_eq!(with.headers().get_all(&CACHE_STATUS).iter().count(), 1);
            assert_eq!(with.headers()[&CACHE_STATUS], status);
            assert!(!without.headers().contains_key(&CACHE_STATUS));
            let mut expected = fields(&without);
            expected.push(("cache-status".to_owned(), status.as_bytes().to_vec()));
            expected.sort();
            assert_eq!(fields(&with), expected);
            assert_eq!(with.headers()["x-extra-11"], "11");
            assert_eq!(with.status(), StatusCode::NOT_FOUND);
        }
    }

    #[tokio::test]
    async fn bodies_report_their_size_and_yield_their_bytes_once() {
        let full_body = full(Bytes::from_static(b"hello"));
        assert_eq!(full_body.size_hint().exact(), Some(5));
        assert!(!full_body.is_end_stream());
        let mut full_body = full_body;
        let frame = full_body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"hello"));
        assert!(full_body.is_end_stream());
        assert!(full_body.frame().await.is_none());

        for body in [empty(), full(Bytes::new())] {
            assert_eq!(body.size_hint().exact(), Some(0));
            assert!(body.is_end_stream());
            assert!(frames(body).await.is_empty());
        }

        let chunks = [Bytes::from_static(b"a"), Bytes::from_static(b"bc")];
        let streamed = stream(futures::stream::iter(chunks.clone().map(Ok)).boxed());
        assert_eq!(frames(streamed).await, chunks);
    }
}
