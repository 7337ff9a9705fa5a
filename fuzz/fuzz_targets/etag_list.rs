//! `etag::ETagList::parse` and `etag::ETag::parse` on any text (RFC 9110 §8.8.3, §13.1.1-2).
//!
//! Besides "never panics": every tag that parses prints back to a header value that parses to
//! the same tag, every tag matches itself weakly, and strongly exactly when it is strong; and
//! the request path's `ETagField` (matching on the raw bytes, any bytes a header may hold)
//! answers exactly like the parsed list.
#![no_main]

use cdn_origin::etag::{ETag, ETagField, ETagList};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        let field = ETagField::new(value);
        let list = field.list();
        let text = String::from_utf8_lossy(data);
        for tag in ETagList::parse(&text).tags().iter().chain([&ETag::strong("x").unwrap()]) {
            assert_eq!(field.matches_weak(tag), list.matches_weak(tag), "{text:?}");
            assert_eq!(field.matches_strong(tag), list.matches_strong(tag), "{text:?}");
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(tag) = ETag::parse(text) {
        roundtrip(&tag);
    }
    match ETagList::parse(text) {
        ETagList::Any => assert!(text.contains('*'), "`*` without a star: {text:?}"),
        ETagList::Tags(tags) => {
            let list = ETagList::Tags(tags.clone());
            for tag in &tags {
                roundtrip(tag);
                assert!(list.matches_weak(tag));
                assert_eq!(
                    list.matches_strong(tag),
                    tags.iter().any(|t| t.strong_eq(tag))
                );
            }
        }
    }
});

fn roundtrip(tag: &ETag) {
    let value = tag.header_value();
    let printed = value.to_str().unwrap_or_default();
    assert_eq!(
        ETag::parse(printed).as_ref(),
        Some(tag),
        "tag does not round-trip: {printed:?}"
    );
    assert!(tag.weak_eq(tag));
    assert_eq!(tag.strong_eq(tag), !tag.is_weak());
}
