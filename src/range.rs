//! Byte ranges (RFC 9110 §14): deciding what a `Range` header asks for, and the
//! `multipart/byteranges` layout (§14.6) for several ranges.
//!
//! Parsing is done by the `http-range-header` crate; [`decide`] fills its gaps:
//!
//! - its `validate` rejects more than two overlapping ranges and never coalesces, so we resolve
//!   the parsed specs ourselves, sort them and merge overlapping or adjacent ones (§14.6 allows a
//!   server to coalesce);
//! - it treats a suffix range on a zero-length object as satisfiable with nothing to send, which
//!   a 206 cannot describe in `Content-Range`: §14.1.1 does call such a range (a non-zero
//!   suffix-length) satisfiable, the only one that is on an empty object, so we ignore the
//!   header and send the empty 200 (§14.2), and answer every other range on an empty object
//!   with 416 `bytes */0`;
//! - it rejects trailing whitespace, which the field-value grammar (§5.5) excludes from the value
//!   anyway, so we trim it first;
//! - it does not bound the total: ranges that add up to more than the object (`bytes=0-,0-,0-`)
//!   are a known amplification attack (§14.2, "many small or overlapping ranges"), so we ignore
//!   the header and send the object once.
//!
//! Everything the server may ignore (§14.2: unknown units, syntax errors, too many ranges) gives
//! [`RangeDecision::Full`], a plain 200. The result uses end-exclusive Rust ranges; this module is
//! the only place where inclusive HTTP positions become exclusive ranges.

use std::num::NonZeroUsize;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;
use http_range_header::{SyntacticallyCorrectRange, parse_range_header_with_max_ranges};

/// Most range specs accepted in one header; more and the header is ignored (§14.2 lets a server
/// ignore a Range with many ranges).
pub const MAX_RANGES: usize = 32;

/// What to send for a request's `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeDecision {
    /// Ignore the header and send the whole representation (200): no Range, an unknown unit, a
    /// syntax error, more than [`MAX_RANGES`] ranges, or ranges adding up to more than the object.
    Full,
    /// Send these ranges (206): end-exclusive, sorted, overlapping and adjacent ones coalesced,
    /// each non-empty and within the object, at least one. Unsatisfiable members are dropped.
    /// One range is a single-part 206; several are `multipart/byteranges` ([`Multipart`]).
    Partial(Vec<Range<u64>>),
    /// 416 with [`unsatisfied_content_range`]: no member is satisfiable (every first position is
    /// at or past the end, or `bytes=-0`; on a zero-length object, every range but a non-zero
    /// suffix, which gets the empty 200).
    Unsatisfiable,
}

/// Decides what to send for the `Range` header value `header` (`None` when absent) on an object
/// of `size` bytes (RFC 9110 §14.1.2, §14.2).
///
/// The `bytes` unit is case-insensitive; whitespace around commas is tolerated. `bytes=500-` is
/// open-ended (`bytes=0-` selects everything), `bytes=-500` is a suffix (longer than the object
/// selects all of it), a last position past the end is clamped, and `bytes=-0` is unsatisfiable.
pub fn decide(header: Option<&HeaderValue>, size: u64) -> RangeDecision {
    let Some(text) = header.and_then(|h| h.to_str().ok()) else {
        return RangeDecision::Full;
    };
    let text = text.trim_matches([' ', '\t']);
    let max = NonZeroUsize::new(MAX_RANGES).unwrap_or(NonZeroUsize::MIN);
    let Ok(parsed) = parse_range_header_with_max_ranges(text, max) else {
        return RangeDecision::Full;
    };

    let specs = parsed.into_ranges();
    // §14.1.1: on an empty object a non-zero suffix is satisfiable, with nothing to send.
    if size == 0
        && specs
            .iter()
            .any(|s| matches!(s, SyntacticallyCorrectRange::FromLast(n) if *n > 0))
    {
        return RangeDecision::Full;
    }
    let mut ranges: Vec<Range<u64>> = specs
        .into_iter()
        .filter_map(|spec| resolve(spec, size))
        .collect();
    if ranges.is_empty() {
        return RangeDecision::Unsatisfiable;
    }
    // Each range is at most `size` and there are at most MAX_RANGES of them: no overflow in u128.
    let total: u128 = ranges.iter().map(|r| u128::from(r.end - r.start)).sum();
    if total > u128::from(size) {
        return RangeDecision::Full;
    }

    ranges.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    RangeDecision::Partial(merged)
}

/// One parsed range spec as an end-exclusive range within `0..size`, or `None` when it is
/// unsatisfiable (§14.1.2).
fn resolve(spec: SyntacticallyCorrectRange, size: u64) -> Option<Range<u64>> {
    let range = match spec {
        SyntacticallyCorrectRange::FromStart(first) => first..size,
        // A suffix longer than the object selects all of it; `-0` selects nothing.
        SyntacticallyCorrectRange::FromLast(len) => size.saturating_sub(len)..size,
        // The parser guarantees first <= last; a last position past the end is clamped, and
        // `last + 1` cannot overflow after clamping to `size - 1`.
        SyntacticallyCorrectRange::Indexed(first, last) => {
            first..last.min(size.saturating_sub(1)).saturating_add(1)
        }
    };
    (range.start < range.end && range.end <= size).then_some(range)
}

/// A header value made of ASCII we formatted ourselves; the fallback is never taken but keeps
/// this code free of panics.
fn ascii_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Content-Range` of a 206 part (§14.4): `bytes FIRST-LAST/SIZE` with an inclusive LAST.
pub fn content_range(range: &Range<u64>, size: u64) -> HeaderValue {
    ascii_value(content_range_text(range, size))
}

fn content_range_text(range: &Range<u64>, size: u64) -> String {
    format!(
        "bytes {}-{}/{}",
        range.start,
        range.end.saturating_sub(1),
        size
    )
}

/// `Content-Range` of a 416 (§14.4, §15.5.17): `bytes */SIZE`.
pub fn unsatisfied_content_range(size: u64) -> HeaderValue {
    ascii_value(format!("bytes */{size}"))
}

/// The layout of a `multipart/byteranges` body (§14.6): a random boundary, then for each range a
/// head (delimiter, Content-Type, Content-Range, blank line) followed by the range's bytes, then
/// the closing delimiter. The caller streams each range's bytes from the store between the
/// heads, so the body is never held in memory.
#[derive(Debug, Clone)]
pub struct Multipart {
    boundary: String,
    parts: Vec<MultipartPart>,
    closing: Bytes,
}

/// One part of a [`Multipart`] body: send `head`, then the object's bytes in `range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartPart {
    /// `--BOUNDARY\r\nContent-Type: ..\r\nContent-Range: ..\r\n\r\n`, preceded by `\r\n` for every
    /// part but the first (the CRLF belongs to the delimiter, RFC 2046 §5.1.1).
    pub head: Bytes,
    /// The end-exclusive byte range of the object that follows the head.
    pub range: Range<u64>,
}

impl Multipart {
    /// Lays out the parts for `ranges` (as returned in [`RangeDecision::Partial`]) of an object of
    /// `size` bytes whose own type is `content_type`. Meant for two or more ranges.
    pub fn new(ranges: &[Range<u64>], size: u64, content_type: &HeaderValue) -> Multipart {
        // 128 random bits: a boundary that cannot plausibly occur in the object's bytes (§14.6).
        let boundary = hex::encode(rand::random::<[u8; 16]>());
        let parts = ranges
            .iter()
            .enumerate()
            .map(|(i, range)| {
                let mut head = BytesMut::new();
                if i > 0 {
                    head.put_slice(b"\r\n");
                }
                head.put_slice(b"--");
                head.put_slice(boundary.as_bytes());
                head.put_slice(b"\r\nContent-Type: ");
                head.put_slice(content_type.as_bytes());
                head.put_slice(b"\r\nContent-Range: ");
                head.put_slice(content_range_text(range, size).as_bytes());
                head.put_slice(b"\r\n\r\n");
                MultipartPart {
                    head: head.freeze(),
                    range: range.clone(),
                }
            })
            .collect();
        let closing = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        Multipart {
            boundary,
            parts,
            closing,
        }
    }

    /// The boundary string (without the leading `--`).
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The parts in order.
    pub fn parts(&self) -> &[MultipartPart] {
        &self.parts
    }

    /// The closing delimiter, sent after the last part: `\r\n--BOUNDARY--\r\n`.
    pub fn closing(&self) -> Bytes {
        self.closing.clone()
    }

    /// The response's `Content-Type`: `multipart/byteranges; boundary=BOUNDARY`.
    pub fn content_type(&self) -> HeaderValue {
        ascii_value(format!("multipart/byteranges; boundary={}", self.boundary))
    }

    /// The exact length of the whole body: heads, range bytes and closing delimiter.
    pub fn content_length(&self) -> u64 {
        let parts: u64 = self
            .parts
            .iter()
            .map(|p| {
                (p.head.len() as u64).saturating_add(p.range.end.saturating_sub(p.range.start))
            })
            .fold(0u64, u64::saturating_add);
        parts.saturating_add(self.closing.len() as u64)
    }
}

#[cfg(test)]
// The tables compare against `Vec<Range>` on purpose: one-range vectors are expected results.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use RangeDecision::{Full, Partial, Unsatisfiable};
    use proptest::prelude::*;

    fn decide_str(value: &str, size: u64) -> RangeDecision {
        decide(Some(&HeaderValue::from_str(value).unwrap()), size)
    }

    #[test]
    fn rfc_9110_section_14_1_2_examples_on_10000_bytes() {
        #[rustfmt::skip]
        let cases = [
            ("bytes=0-499",                       vec![0..500]),
            ("bytes=500-999",                     vec![500..1000]),
            ("bytes=-500",                        vec![9500..10000]),
            ("bytes=9500-",                       vec![9500..10000]),
            ("bytes=0-0,-1",                      vec![0..1, 9999..10000]),
            ("bytes=0-999, 4500-5499, -1000",     vec![0..1000, 4500..5500, 9000..10000]),
            // §14.1.2's last examples are equivalent ways to ask for 500-999: coalesced.
            ("bytes=500-600,601-999",             vec![500..1000]),
            ("bytes=500-700,601-999",             vec![500..1000]),
        ];
        for (value, want) in cases {
            assert_eq!(decide_str(value, 10_000), Partial(want), "{value}");
        }
    }

    #[test]
    fn decide_follows_the_rules_of_section_14() {
        let many = |n: u64| {
            let specs: Vec<String> = (0..n)
                .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
                .collect();
            format!("bytes={}", specs.join(","))
        };
        let (just_32, too_many) = (many(32), many(33));
        let all_32: Vec<_> = (0..32).map(|i| i * 10..i * 10 + 2).collect();
        #[rustfmt::skip]
        let cases = [
            ("unit_is_case_insensitive",        "Bytes=0-99",              1000, Partial(vec![0..100])),
            ("unit_upper_case",                 "BYTES=0-99",              1000, Partial(vec![0..100])),
            ("open_ended",                      "bytes=900-",              1000, Partial(vec![900..1000])),
            ("zero_open_ended_is_everything",   "bytes=0-",                1000, Partial(vec![0..1000])),
            ("suffix_longer_than_object",       "bytes=-2000",             1000, Partial(vec![0..1000])),
            ("last_position_clamped",           "bytes=900-5000",          1000, Partial(vec![900..1000])),
            ("huge_last_position_clamped",      "bytes=0-99999999999999999999", 1000, Partial(vec![0..1000])),
            ("last_byte_only",                  "bytes=999-999",           1000, Partial(vec![999..1000])),
            ("whitespace_around_commas",        "bytes= 0-9 ,\t20-29 ",    1000, Partial(vec![0..10, 20..30])),
            ("empty_members_tolerated",         "bytes=0-9,,20-29,",       1000, Partial(vec![0..10, 20..30])),
            ("sorted_ascending",                "bytes=200-299,0-99",      1000, Partial(vec![0..100, 200..300])),
            ("adjacent_coalesced",              "bytes=0-9,10-19",         1000, Partial(vec![0..20])),
            ("contained_coalesced",             "bytes=0-99,10-19",        1000, Partial(vec![0..100])),
            ("unsatisfiable_member_dropped",    "bytes=5000-,0-9",         1000, Partial(vec![0..10])),
            ("zero_suffix_member_dropped",      "bytes=-0,0-9",            1000, Partial(vec![0..10])),
            ("exactly_max_ranges",              &just_32,                  1000, Partial(all_32)),
            ("first_position_at_end",           "bytes=1000-",             1000, Unsatisfiable),
            ("first_position_past_end",         "bytes=1500-2000",         1000, Unsatisfiable),
            ("zero_suffix",                     "bytes=-0",                1000, Unsatisfiable),
            ("every_member_unsatisfiable",      "bytes=1000-,2000-2001,-0", 1000, Unsatisfiable),
            ("overflowing_first_position",      "bytes=99999999999999999999-", 1000, Unsatisfiable),
            ("empty_object_open_ended",         "bytes=0-",                0,    Unsatisfiable),
            ("empty_object_suffix",             "bytes=-5",                0,    Full),
            ("empty_object_suffix_among_others", "bytes=0-,-5",            0,    Full),
            ("empty_object_zero_suffix",        "bytes=-0",                0,    Unsatisfiable),
            ("empty_object_indexed",            "bytes=0-0",               0,    Unsatisfiable),
            ("unknown_unit_ignored",            "items=0-9",               1000, Full),
            ("missing_equals_ignored",          "bytes 0-9",               1000, Full),
            ("reversed_range_ignored",          "bytes=9-5",               1000, Full),
            ("garbage_ignored",                 "bytes=abc",               1000, Full),
            ("no_ranges_ignored",               "bytes=",                  1000, Full),
            ("plus_sign_ignored",               "bytes=+1-5",              1000, Full),
            ("double_dash_ignored",             "bytes=1-2-3",             1000, Full),
            ("one_bad_member_spoils_the_header", "bytes=0-9,x",            1000, Full),
            ("too_many_ranges_ignored",         &too_many,                 1000, Full),
            ("ranges_adding_up_to_size",        "bytes=0-499,500-999",     1000, Partial(vec![0..1000])),
            ("ranges_one_byte_past_size",       "bytes=0-999,0-0",         1000, Full),
            ("ranges_adding_up_past_size",      "bytes=0-,0-",             1000, Full),
            ("overlapping_amplification",       "bytes=0-599,400-999",     1000, Full),
        ];
        for (name, value, size, want) in cases {
            assert_eq!(decide_str(value, size), want, "{name}: {value}");
        }
        assert_eq!(decide(None, 1000), Full, "absent header");
        let obs_text = HeaderValue::from_bytes(b"bytes=0-9\xff").unwrap();
        assert_eq!(decide(Some(&obs_text), 1000), Full, "non-ASCII header");
    }

    #[test]
    fn content_range_values_use_inclusive_last_positions() {
        assert_eq!(content_range(&(0..100), 1000), "bytes 0-99/1000");
        assert_eq!(content_range(&(999..1000), 1000), "bytes 999-999/1000");
        assert_eq!(unsatisfied_content_range(1000), "bytes */1000");
        assert_eq!(unsatisfied_content_range(0), "bytes */0");
    }

    /// Assembles the body the way the server streams it: each head, then the part's bytes.
    fn assemble(m: &Multipart, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for part in m.parts() {
            body.extend_from_slice(&part.head);
            body.extend_from_slice(&data[part.range.start as usize..part.range.end as usize]);
        }
        body.extend_from_slice(&m.closing());
        body
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    /// Parses a multipart/byteranges body back into (Content-Type, Content-Range, bytes) parts.
    fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, String, Vec<u8>)> {
        let delimiter = format!("\r\n--{boundary}");
        // The first delimiter has no leading CRLF; prepend one so every part looks the same.
        let body = [b"\r\n".as_slice(), body].concat();
        let mut rest = body
            .strip_prefix(delimiter.as_bytes())
            .expect("opening delimiter");
        let mut parts = Vec::new();
        while let Some(after) = rest.strip_prefix(b"\r\n") {
            let blank = find(after, b"\r\n\r\n").expect("end of part headers");
            let head = std::str::from_utf8(&after[..blank]).unwrap();
            let mut fields = head.split("\r\n").map(|l| l.split_once(": ").unwrap());
            let (ct, cr) = (fields.next().unwrap(), fields.next().unwrap());
            assert_eq!(
                (ct.0, cr.0, fields.next()),
                ("Content-Type", "Content-Range", None)
            );
            let content = &after[blank + 4..];
            let end = find(content, delimiter.as_bytes()).expect("next delimiter");
            parts.push((ct.1.to_owned(), cr.1.to_owned(), content[..end].to_vec()));
            rest = &content[end + delimiter.len()..];
        }
        assert_eq!(rest, b"--\r\n", "closing delimiter ends the body");
        parts
    }

    fn check_multipart_round_trip(data: &[u8], ranges: &[Range<u64>]) {
        let ct = HeaderValue::from_static("text/plain; charset=utf-8");
        let m = Multipart::new(ranges, data.len() as u64, &ct);
        let body = assemble(&m, data);
        assert_eq!(m.content_length(), body.len() as u64);
        let want_type = format!("multipart/byteranges; boundary={}", m.boundary());
        assert_eq!(m.content_type(), want_type.as_str());
        let parts = parse_multipart(&body, m.boundary());
        assert_eq!(parts.len(), ranges.len());
        for ((ctype, crange, bytes), range) in parts.iter().zip(ranges) {
            assert_eq!(ctype, "text/plain; charset=utf-8");
            let numbers = crange.strip_prefix("bytes ").unwrap().split(['-', '/']);
            let numbers: Vec<u64> = numbers.map(|n| n.parse().unwrap()).collect();
            assert_eq!(numbers, [range.start, range.end - 1, data.len() as u64]);
            assert_eq!(
                bytes.as_slice(),
                &data[range.start as usize..range.end as usize]
            );
        }
    }

    #[test]
    fn multipart_body_parses_back_into_every_part() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let Partial(ranges) = decide_str("bytes=0-9, 100-199, -5, 500-500", 1000) else {
            panic!("expected a partial decision");
        };
        assert_eq!(ranges.len(), 4);
        check_multipart_round_trip(&data, &ranges);
    }

    #[test]
    fn multipart_boundaries_are_random_and_heads_are_well_formed() {
        let ct = HeaderValue::from_static("image/png");
        let a = Multipart::new(&[0..1, 5..6], 10, &ct);
        let b = Multipart::new(&[0..1, 5..6], 10, &ct);
        assert_ne!(a.boundary(), b.boundary());
        assert!(a.boundary().len() <= 70, "RFC 2046 boundary length");
        let head = |crlf, range| {
            let fields = format!("Content-Type: image/png\r\nContent-Range: bytes {range}/10");
            format!("{crlf}--{}\r\n{fields}\r\n\r\n", a.boundary())
        };
        assert_eq!(a.parts()[0].head, head("", "0-0"));
        assert_eq!(a.parts()[1].head, head("\r\n", "5-5"));
        assert_eq!(a.closing(), format!("\r\n--{}--\r\n", a.boundary()));
    }

    /// Range specs with small numbers, sometimes malformed, to compare against a byte-set model.
    fn spec() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => (0u64..140, 0u64..140).prop_map(|(a, b)| format!("{a}-{b}")),
            6 => (0u64..140, 0u64..12).prop_map(|(a, n)| format!("{a}-{}", a + n)),
            1 => (0u64..140).prop_map(|a| format!("{a}-")),
            2 => (0u64..12).prop_map(|n| format!("-{n}")),
            1 => "[0-9a-z=+ -]{0,6}",
        ]
    }

    /// What §14 says the covered bytes are, computed one byte at a time.
    fn model(specs: &[String], size: u64) -> RangeDecision {
        let mut covered = vec![false; size as usize];
        let (mut total, mut any, mut count) = (0u64, false, 0usize);
        let mut empty_suffix = false;
        let trimmed = specs.iter().map(|s| s.trim_matches([' ', '\t']));
        for spec in trimmed.filter(|s| !s.is_empty()) {
            count += 1;
            let Some((a, b)) = spec.split_once('-') else {
                return Full;
            };
            let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
            let num = |s: &str| s.parse::<u64>().ok().filter(|_| digits(s));
            let (first, last) = match (num(a), num(b), a.is_empty(), b.is_empty()) {
                (Some(f), Some(l), _, _) if f <= l => (f, l.min(size.saturating_sub(1))),
                (Some(f), None, _, true) => (f, size.saturating_sub(1)),
                (None, Some(n), true, _) if n > 0 && size == 0 => {
                    empty_suffix = true;
                    continue;
                }
                (None, Some(n), true, _) if n > 0 => {
                    (size.saturating_sub(n), size.saturating_sub(1))
                }
                (None, Some(0), true, _) => continue,
                _ => return Full,
            };
            if first >= size || size == 0 {
                continue;
            }
            any = true;
            total += last - first + 1;
            covered[first as usize..=last as usize].fill(true);
        }
        if count == 0 || count > MAX_RANGES || empty_suffix {
            return Full;
        }
        if !any {
            return Unsatisfiable;
        }
        if total > size {
            return Full;
        }
        let mut ranges: Vec<Range<u64>> = Vec::new();
        for (i, _) in covered.iter().enumerate().filter(|(_, c)| **c) {
            let i = i as u64;
            match ranges.last_mut() {
                Some(r) if r.end == i => r.end += 1,
                _ => ranges.push(i..i + 1),
            }
        }
        Partial(ranges)
    }

    fn check_partial_invariants(decision: &RangeDecision, size: u64) -> Result<(), TestCaseError> {
        if let Partial(ranges) = decision {
            prop_assert!(!ranges.is_empty());
            for r in ranges {
                prop_assert!(r.start < r.end && r.end <= size, "{r:?} outside 0..{size}");
            }
            for pair in ranges.windows(2) {
                prop_assert!(
                    pair[0].end < pair[1].start,
                    "not sorted/coalesced: {pair:?}"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn decide_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64), size in any::<u64>()) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                check_partial_invariants(&decide(Some(&value), size), size)?;
            }
        }

        #[test]
        fn decide_never_panics_on_range_like_text(value in "(?i:bytes)=[0-9, \t,-]{0,40}", size in prop_oneof![0u64..100, any::<u64>()]) {
            check_partial_invariants(&decide_str(&value, size), size)?;
        }

        #[test]
        fn decide_agrees_with_a_byte_set_model(specs in proptest::collection::vec(spec(), 1..6), sep in "[ \t]{0,1},[ \t]{0,1}", size in 0u64..128) {
            let value = format!("bytes={}", specs.join(&sep));
            let decision = decide_str(&value, size);
            check_partial_invariants(&decision, size)?;
            prop_assert_eq!(decision, model(&specs, size), "{}", value);
        }

        #[test]
        fn multipart_round_trips_any_partial_decision(len in 1usize..300, specs in proptest::collection::vec((0usize..300, 0usize..300), 2..6)) {
            let data: Vec<u8> = (0..len).map(|i| (i % 256) as u8).collect();
            let value = format!("bytes={}", specs.iter().map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))).collect::<Vec<_>>().join(","));
            if let Partial(ranges) = decide_str(&value, len as u64) {
                check_multipart_round_trip(&data, &ranges);
            }
        }
    }
}
