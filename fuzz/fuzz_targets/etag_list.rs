//! `etag::ETagList::parse` and `etag::ETag::parse` on any text (RFC 9110 §8.8.3, §13.1.1-2).
//!
//! Besides "never panics": every tag that parses prints back to a header value that parses to
//! the same tag, every tag matches itself weakly, and strongly exactly when it is strong.
#![no_main]

use cdn_origin::etag::{ETag, ETagList};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
