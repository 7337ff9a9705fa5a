//! Header maps prepared once per representation of a cached object (issue 6: precomputed
//! headers for cache hits).
//!
//! Building a response's fields one by one costs a hash and an insert each, about a dozen
//! times per response. For a cached object they are the same on every request except for the
//! few that depend on the request ([`RequestHeaders`]), so they are built once, with a
//! placeholder `Cache-Status` in its place, and each response starts from a copy: one
//! allocation and a reference count per value, after which the request's `Cache-Status`
//! replaces the placeholder in place. (A field a request adds, CORS or a range's
//! `Content-Range`, grows the copy.)
//!
//! Most responses need not even the copy: a whole 200 or a 304 whose only own field is its
//! `Cache-Status` (no private object, no CORS) carries the prepared fields shared
//! ([`SharedFields`]). Our HTTP/1 layer then writes them from their HTTP/1 rendering, made
//! once, followed by the `Cache-Status` line; anything else (hyper, HTTP/2, tests) takes the
//! map the response would have had ([`SharedFields::into_map`]).
//!
//! A [`Prepared`] is kept with the policy choice of its object ([`crate::object::Chosen`]),
//! so a policy reload, or the object requested under another path, prepares anew; and it
//! records the length and `Vary` it was made for, so a representation whose bytes are not
//! settled yet (a compression stream before its variant is stored) never uses a kept one:
//! the pipeline builds a [`Prepared`] for that response alone, so the fields are written by
//! this one function either way.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::{
    CACHE_STATUS, RepresentationHeaders, RequestHeaders, Vary, cache_status_slot, content_headers,
};
use crate::encoding::Encoding;

/// Room for a response's fields, so that building one does not grow the map.
const CAPACITY: usize = 16;

/// The fields of one representation's 200 and 304, made once.
#[derive(Debug)]
pub struct Prepared {
    /// The 200 for the whole representation: representation and content fields.
    ok: Arc<PreparedFields>,
    /// The 304: representation fields only (RFC 9110 §15.4.5).
    not_modified: Arc<PreparedFields>,
    /// The representation's length `ok` states (`None`: not known, no `Content-Length`).
    len: Option<u64>,
    /// The `Vary` both state.
    vary: Vary,
}

impl Prepared {
    /// Prepares the fields of `representation` in `encoding`, `len` bytes of `content_type`.
    pub fn new(
        representation: &RepresentationHeaders<'_>,
        content_type: &HeaderValue,
        encoding: Encoding,
        len: Option<u64>,
    ) -> Prepared {
        let representation_fields = || {
            let mut h = HeaderMap::with_capacity(CAPACITY);
            representation.write(&mut h);
            h
        };
        // The `Cache-Status` slot last, so that the fields before it are the same bytes on
        // every response (`PreparedFields::wire`).
        let mut not_modified = representation_fields();
        cache_status_slot(&mut not_modified);
        let mut ok = representation_fields();
        content_headers(&mut ok, content_type, encoding, len);
        cache_status_slot(&mut ok);
        Prepared {
            ok: Arc::new(PreparedFields::new(ok)),
            not_modified: Arc::new(PreparedFields::new(not_modified)),
            len,
            vary: representation.vary,
        }
    }

    /// Whether these fields are those of a representation of `len` bytes varying on `vary`.
    pub fn fits(&self, len: Option<u64>, vary: Vary) -> bool {
        len.is_some() && len == self.len && vary == self.vary
    }

    /// The fields of a 200 for the whole representation, with the request's on top.
    pub fn ok(&self, request: RequestHeaders) -> HeaderMap {
        with_request(self.ok.map.clone(), request)
    }

    /// The fields of a 304, with the request's on top.
    pub fn not_modified(&self, request: RequestHeaders) -> HeaderMap {
        with_request(self.not_modified.map.clone(), request)
    }

    /// [`Prepared::ok`] without a copy, for fields prepared for one response.
    pub fn into_ok(self, request: RequestHeaders) -> HeaderMap {
        with_request(into_map(self.ok), request)
    }

    /// [`Prepared::not_modified`] without a copy, for fields prepared for one response.
    pub fn into_not_modified(self, request: RequestHeaders) -> HeaderMap {
        with_request(into_map(self.not_modified), request)
    }

    /// The 200's fields, shared, for a response whose only own field is its `Cache-Status`
    /// ([`SharedFields`]).
    pub fn shared_ok(&self, cache_status: HeaderValue) -> SharedFields {
        SharedFields {
            fields: self.ok.clone(),
            cache_status,
        }
    }

    /// The 304's fields, shared ([`Prepared::shared_ok`]).
    pub fn shared_not_modified(&self, cache_status: HeaderValue) -> SharedFields {
        SharedFields {
            fields: self.not_modified.clone(),
            cache_status,
        }
    }
}

fn into_map(fields: Arc<PreparedFields>) -> HeaderMap {
    Arc::try_unwrap(fields).map_or_else(|shared| shared.map.clone(), |f| f.map)
}

fn with_request(mut h: HeaderMap, request: RequestHeaders) -> HeaderMap {
    request.write(&mut h);
    h
}

/// One set of prepared fields, ending with the `Cache-Status` slot: the map, and the same
/// fields but the slot rendered as HTTP/1 field lines, made the first time our HTTP/1 layer
/// asks for them.
#[derive(Debug)]
pub struct PreparedFields {
    map: HeaderMap,
    wire: OnceLock<Bytes>,
    content_length: Option<u64>,
}

impl PreparedFields {
    fn new(map: HeaderMap) -> PreparedFields {
        let content_length = map
            .get(header::CONTENT_LENGTH)
            .and_then(super::content_length);
        PreparedFields {
            map,
            wire: OnceLock::new(),
            content_length,
        }
    }
}

/// The fields of a response that are a prepared set's plus the response's own
/// `Cache-Status`, and nothing else (no private object, no CORS, no range): the pipeline
/// hands these on instead of a copy of the map. Our HTTP/1 layer writes the prepared set's
/// rendering and the one field; everything else takes [`SharedFields::into_map`], the map the
/// response would have had.
#[derive(Debug)]
pub struct SharedFields {
    fields: Arc<PreparedFields>,
    cache_status: HeaderValue,
}

impl SharedFields {
    /// The full map: the prepared fields with this response's `Cache-Status` in its slot.
    pub fn into_map(self) -> HeaderMap {
        let mut h = self.fields.map.clone();
        h.insert(CACHE_STATUS.clone(), self.cache_status);
        h
    }

    /// The prepared fields but the slot, as HTTP/1 field lines (`name: value` and CRLF
    /// each), in the map's order.
    pub fn wire(&self) -> &[u8] {
        self.fields.wire.get_or_init(|| {
            let mut out = Vec::with_capacity(512);
            // The slot is the last field ([`Prepared::new`]; policies may not set the field).
            for (name, value) in &self.fields.map {
                if name != CACHE_STATUS {
                    super::field_line(&mut out, name, value);
                }
            }
            Bytes::from(out)
        })
    }

    /// This response's `Cache-Status`, which goes after [`SharedFields::wire`].
    pub fn cache_status(&self) -> &HeaderValue {
        &self.cache_status
    }

    /// The `Content-Length` among the fields, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.fields.content_length
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicySet;
    use http::header;

    /// The default policy sets every caching field, and the set adds a dozen headers: more
    /// fields than a response map is made with room for.
    fn policies() -> PolicySet {
        let mut text = String::from(
            r#"
            [default]
            max-age = "1h"
            cdn-cache-control = { max-age = "1d" }
            surrogate-key = ["all"]

            [errors]
            max-age = "60s"

            [headers]
        "#,
        );
        for i in 0..12 {
            text.push_str(&format!("X-Extra-{i} = \"{i}\"\n"));
        }
        PolicySet::from_str(&text, "t.toml").unwrap()
    }

    /// What the fields must be: the three parts written one by one into an empty map.
    fn written(
        representation: &RepresentationHeaders<'_>,
        content: Option<(&HeaderValue, Encoding, u64)>,
        request: RequestHeaders,
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        representation.write(&mut h);
        if let Some((content_type, encoding, len)) = content {
            content_headers(&mut h, content_type, encoding, Some(len));
        }
        request.write(&mut h);
        h
    }

    fn sorted(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = h
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn prepared_fields_equal_the_fields_written_one_by_one() {
        let set = policies();
        let policy = set.select("/a.css", "text/css");
        let etag = HeaderValue::from_static("\"abc\"");
        let last_modified = HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT");
        let content_type = HeaderValue::from_static("text/css; charset=utf-8");
        for vary in [
            Vary::default(),
            Vary {
                accept_encoding: true,
                origin: true,
            },
        ] {
            let representation = RepresentationHeaders {
                etag: &etag,
                last_modified: &last_modified,
                policy,
                vary,
            };
            let prepared =
                Prepared::new(&representation, &content_type, Encoding::Brotli, Some(1234));
            let requests = || {
                [
                    (
                        HeaderValue::from_static("cdn-origin; hit; ttl=5"),
                        false,
                        None,
                    ),
                    (
                        HeaderValue::from_static("cdn-origin; fwd=uri-miss; stored"),
                        true,
                        Some(HeaderValue::from_static("https://a.example")),
                    ),
                ]
                .map(|(cache_status, private, cors)| RequestHeaders {
                    cache_status,
                    private,
                    cors,
                })
            };
            for (request, expected) in requests().into_iter().zip(requests()) {
                let want = written(
                    &representation,
                    Some((&content_type, Encoding::Brotli, 1234)),
                    expected,
                );
                assert_eq!(sorted(&prepared.ok(request)), sorted(&want));
            }
            for (request, expected) in requests().into_iter().zip(requests()) {
                let want = written(&representation, None, expected);
                let got = prepared.not_modified(request);
                assert_eq!(sorted(&got), sorted(&want));
                assert!(got.get(header::CONTENT_TYPE).is_none());
                assert!(got.get(header::CONTENT_LENGTH).is_none());
            }
            assert!(prepared.fits(Some(1234), vary));
            assert!(!prepared.fits(None, vary));
            assert!(!prepared.fits(Some(1235), vary));
        }
    }
}
