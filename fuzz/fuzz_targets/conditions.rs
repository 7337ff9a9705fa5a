//! `conditional::Conditions::from_headers` (ETag lists and the three HTTP-date formats, RFC 9110
//! §5.6.7, §13.1) and `conditional::evaluate` / `range_allowed` on any precondition headers.
//!
//! Input: lines of `N:value`, where the first byte N picks one of the five precondition fields
//! (so repeated field lines are exercised too). Besides "never panics": a 304 is only ever the
//! answer to GET or HEAD, and the outcome is the same whatever the order of unrelated fields.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use cdn_origin::conditional::{self, Conditions, Precondition, Validators};
use cdn_origin::etag::ETag;
use http::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE};
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let names = [
        IF_MATCH,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
    ];
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&which, value)) = line.split_first() else {
            continue;
        };
        let value = value.strip_prefix(b":").unwrap_or(value);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(names[usize::from(which) % names.len()].clone(), value);
        }
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let conditions = Conditions::from_headers_at(&headers, now);
    let _ = Conditions::from_headers(&headers);
    let etags = [ETag::strong("abc"), ETag::weak("abc"), ETag::strong("")];
    for etag in etags.iter().flatten() {
        for last_modified in [
            None,
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            Some(now),
        ] {
            let v = Validators {
                etag,
                last_modified,
            };
            for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
                let outcome = conditional::evaluate(&conditions, &method, &v);
                if outcome == Precondition::NotModified {
                    assert!(
                        method == Method::GET || method == Method::HEAD,
                        "304 for {method}"
                    );
                }
            }
            let _ = conditional::range_allowed(&conditions, &v);
        }
    }
});
