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
//! A [`Prepared`] is kept with the policy choice of its object ([`crate::object::Chosen`]),
//! so a policy reload, or the object requested under another path, prepares anew; and it
//! records the length and `Vary` it was made for, so a representation whose bytes are not
//! settled yet (a compression stream before its variant is stored) never uses a kept one:
//! the pipeline builds a [`Prepared`] for that response alone, so the fields are written by
//! this one function either way.

use http::HeaderMap;
use http::header::HeaderValue;

use super::{RepresentationHeaders, RequestHeaders, Vary, cache_status_slot, content_headers};
use crate::encoding::Encoding;

/// Room for a response's fields, so that building one does not grow the map.
const CAPACITY: usize = 16;

/// The fields of one representation's 200 and 304, made once.
#[derive(Debug)]
pub struct Prepared {
    /// The 200 for the whole representation: representation and content fields.
    ok: HeaderMap,
    /// The 304: representation fields only (RFC 9110 §15.4.5).
    not_modified: HeaderMap,
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
            cache_status_slot(&mut h);
            h
        };
        let not_modified = representation_fields();
        let mut ok = representation_fields();
        content_headers(&mut ok, content_type, encoding, len);
        Prepared {
            ok,
            not_modified,
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
        with_request(self.ok.clone(), request)
    }

    /// The fields of a 304, with the request's on top.
    pub fn not_modified(&self, request: RequestHeaders) -> HeaderMap {
        with_request(self.not_modified.clone(), request)
    }

    /// [`Prepared::ok`] without a copy, for fields prepared for one response.
    pub fn into_ok(self, request: RequestHeaders) -> HeaderMap {
        with_request(self.ok, request)
    }

    /// [`Prepared::not_modified`] without a copy, for fields prepared for one response.
    pub fn into_not_modified(self, request: RequestHeaders) -> HeaderMap {
        with_request(self.not_modified, request)
    }
}

fn with_request(mut h: HeaderMap, request: RequestHeaders) -> HeaderMap {
    request.write(&mut h);
    h
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
