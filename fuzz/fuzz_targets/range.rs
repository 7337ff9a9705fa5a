//! `range::decide` on any Range header value and object size (RFC 9110 §14).
//!
//! Input: 8 bytes of object size (little-endian; the top bits are masked off now and then so
//! small sizes, where the edge cases live, are common), then the header bytes. Besides "never
//! panics", every 206 decision must describe a valid body: sorted, non-empty, non-overlapping,
//! non-adjacent ranges inside the object, at most `MAX_RANGES`, adding up to no more than the
//! object; and the multipart layout's announced length must equal the bytes it would send.
#![no_main]

use cdn_origin::range::{self, MAX_RANGES, Multipart, RangeDecision};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size_bytes, header) = data.split_at(8);
    let mut size = u64::from_le_bytes(size_bytes.try_into().unwrap_or([0; 8]));
    // Most of the time use a small object: the interesting cases are near 0 and near the end.
    if size_bytes[7] & 0x80 == 0 {
        size &= 0xffff;
    }
    let Ok(value) = HeaderValue::from_bytes(header) else {
        return;
    };
    match range::decide(Some(&value), size) {
        RangeDecision::Full | RangeDecision::Unsatisfiable => {
            let _ = range::unsatisfied_content_range(size);
        }
        RangeDecision::Partial(ranges) => {
            assert!(!ranges.is_empty(), "206 without a range");
            assert!(ranges.len() <= MAX_RANGES, "more than MAX_RANGES ranges");
            let mut total: u128 = 0;
            for (i, r) in ranges.iter().enumerate() {
                assert!(r.start < r.end, "empty range {r:?}");
                assert!(r.end <= size, "range {r:?} past the end of {size}");
                if i > 0 {
                    assert!(
                        ranges[i - 1].end < r.start,
                        "ranges not coalesced: {ranges:?}"
                    );
                }
                total += u128::from(r.end - r.start);
                let text = range::content_range(r, size);
                assert!(text.to_str().is_ok_and(|t| t.starts_with("bytes ")));
            }
            assert!(
                total <= u128::from(size),
                "ranges add up to more than the object"
            );
            let multipart = Multipart::new(&ranges, size, &HeaderValue::from_static("text/plain"));
            // In u128: an object near u64::MAX bytes makes the real total overflow u64, where
            // `content_length` saturates.
            let sent: u128 = multipart
                .parts()
                .iter()
                .map(|p| p.head.len() as u128 + u128::from(p.range.end - p.range.start))
                .sum::<u128>()
                + multipart.closing().len() as u128;
            let expected = u64::try_from(sent).unwrap_or(u64::MAX);
            assert_eq!(
                multipart.content_length(),
                expected,
                "multipart length mismatch"
            );
        }
    }
});
