//! Entity tags (RFC 9110 §8.8.3) and the `If-Match` / `If-None-Match` lists that carry them
//! (§13.1.1, §13.1.2).
//!
//! An [`ETag`] is an opaque string plus a weak flag. We store the opaque part without its
//! quotes, so comparison (§8.8.3.2) is plain string equality and the header form is rebuilt by
//! [`ETag::header_value`] and `Display` in one place.
//!
//! Tags this server generates are strong and content-derived ([`ETag::from_sha256`],
//! [`ETag::derive`]) so that every node and every deploy agrees on them; the representation of
//! a content coding gets its own tag through [`ETag::with_suffix`] (§8.8.3.3: different
//! encodings are different representations and must not share a strong tag).
//!
//! List parsing is quote-aware: `etagc` includes the comma, so `"a,b"` is one tag, and a naive
//! split on commas would break it. Members that are not valid entity tags are skipped instead of
//! discarding the whole header: a skipped member could never match a tag we generate, so
//! skipping it gives the same answer as honouring it would. `obs-text` (bytes 0x80-0xFF) is legal
//! in `etagc` but this server never generates it, so such members are likewise skipped.

use std::fmt;

use http::HeaderValue;
use http::header::GetAll;
use sha2::{Digest, Sha256};

/// One entity tag: an opaque string (kept without its quotes) and whether it is weak.
///
/// `PartialEq`/`Hash` are exact (same flag and same opaque); use [`ETag::strong_eq`] or
/// [`ETag::weak_eq`] for the HTTP comparison functions of §8.8.3.2.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ETag {
    opaque: Box<str>,
    weak: bool,
}

/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 §8.8.3), without obs-text (see module doc).
fn is_etagc(c: char) -> bool {
    c == '\x21' || ('\x23'..='\x7e').contains(&c)
}

/// `bytes` without optional whitespace (RFC 9110 §5.6.3: spaces and tabs) at either end.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

impl ETag {
    /// A strong tag with this opaque string, or `None` if it contains a character outside `etagc`
    /// (a double quote, a control character, a space or non-ASCII). The empty tag `""` is valid.
    pub fn strong(opaque: &str) -> Option<ETag> {
        Self::new(opaque, false)
    }

    /// A weak tag (`W/"opaque"`), or `None` under the same rule as [`ETag::strong`].
    pub fn weak(opaque: &str) -> Option<ETag> {
        Self::new(opaque, true)
    }

    fn new(opaque: &str, weak: bool) -> Option<ETag> {
        opaque.chars().all(is_etagc).then(|| ETag {
            opaque: opaque.into(),
            weak,
        })
    }

    /// A strong tag whose opaque string is the lowercase hex of a content digest (SHA-256 of the
    /// bytes for objects small enough to hash).
    pub fn from_sha256(digest: &[u8]) -> ETag {
        ETag {
            opaque: hex::encode(digest).into(),
            weak: false,
        }
    }

    /// A strong tag derived with SHA-256 from what changes with the content (the store's ETag or
    /// version, size, modification time, ...) for objects too big to hash on demand.
    ///
    /// Each part is prefixed with its length as a big-endian u64, so `["ab", "c"]` and
    /// `["a", "bc"]` give different tags.
    pub fn derive(parts: &[&[u8]]) -> ETag {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Self::from_sha256(&hasher.finalize())
    }

    /// The tag of another representation of the same content: `"abc"` with suffix `br` becomes
    /// `"abc-br"` (RFC 9110 §8.8.3.3: each content coding needs its own tag). The weak flag is
    /// kept. Characters of `suffix` outside `etagc` are dropped, so the result is always valid.
    pub fn with_suffix(&self, suffix: &str) -> ETag {
        let mut opaque = String::with_capacity(self.opaque.len() + 1 + suffix.len());
        opaque.push_str(&self.opaque);
        opaque.push('-');
        opaque.extend(suffix.chars().filter(|&c| is_etagc(c)));
        ETag {
            opaque: opaque.into(),
            weak: self.weak,
        }
    }

    /// The same tag, weak: for bytes that stand for the same content without being the same
    /// bytes every time (a compression stream, §8.8.1).
    pub fn into_weak(self) -> ETag {
        ETag { weak: true, ..self }
    }

    /// Whether this is a weak tag (`W/"..."`).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque string, without quotes or `W/`.
    pub fn opaque(&self) -> &str {
        &self.opaque
    }

    /// Strong comparison (§8.8.3.2): both tags strong and the opaque strings equal.
    pub fn strong_eq(&self, other: &ETag) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison (§8.8.3.2): the opaque strings equal, whatever the weak flags.
    pub fn weak_eq(&self, other: &ETag) -> bool {
        self.opaque == other.opaque
    }

    /// Parses exactly one entity tag, `"x"` or `W/"x"`, with optional surrounding whitespace.
    /// The `W/` prefix is case-sensitive (`weak = %s"W/"`).
    pub fn parse(s: &str) -> Option<ETag> {
        let (weak, opaque) = parse_tag(s)?;
        Some(ETag {
            opaque: opaque.into(),
            weak,
        })
    }

    /// The field value: `"x"` or `W/"x"`.
    pub fn header_value(&self) -> HeaderValue {
        // The opaque string holds only etagc characters, which are all valid header bytes, so
        // the fallback is never taken; it exists so this function cannot panic.
        HeaderValue::from_str(&self.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.opaque)
    }
}

/// The value of `If-Match` or `If-None-Match`: `*` or a list of entity tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ETagList {
    /// `*`: matches any current representation.
    Any,
    /// A list of tags; an empty list matches nothing.
    Tags(Vec<ETag>),
}

/// `(weak, opaque)` of something shaped like an entity tag, `"x"` or `W/"x"` (already trimmed),
/// without checking the opaque characters. The one place that knows the shape.
fn tag_shape(member: &[u8]) -> Option<(bool, &[u8])> {
    let (weak, rest) = match member.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, member),
    };
    let opaque = rest.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    Some((weak, opaque))
}

/// One valid entity tag, borrowed from the text it was read from: `(weak, opaque)`, the
/// opaque part made only of `etagc` characters.
fn parse_tag(s: &str) -> Option<(bool, &str)> {
    let (weak, opaque) = tag_shape(trim_ows(s.as_bytes()))?;
    // Only ASCII was stripped around `opaque`, so it is still UTF-8.
    let opaque = std::str::from_utf8(opaque).ok()?;
    opaque.chars().all(is_etagc).then_some((weak, opaque))
}

/// The members of a list, split at commas outside double quotes (§5.6.1 lists of quoted
/// items) and trimmed of optional whitespace; empty members are skipped. Entity tags have no
/// escapes, so a quote always opens or closes a quoted part, and an unclosed one runs to the
/// end. Works on bytes: bytes 0x80-0xFF (obs-text) are never a quote or a comma, so the split
/// is the same as on the decoded text. Runs on every conditional request, so it jumps from
/// quote to comma with `memchr` rather than testing each byte of the (long) tags.
fn members(value: &[u8]) -> Members<'_> {
    Members { rest: Some(value) }
}

/// The iterator of [`members`].
struct Members<'a> {
    /// What is left after the last comma; `None` once the last member was given.
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Members<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let value = self.rest?;
            let mut from = 0;
            let comma = loop {
                let Some(at) = memchr::memchr2(b'"', b',', &value[from..]).map(|i| from + i) else {
                    break None;
                };
                if value[at] == b',' {
                    break Some(at);
                }
                match memchr::memchr(b'"', &value[at + 1..]) {
                    Some(close) => from = at + 1 + close + 1,
                    None => break None,
                }
            };
            let member = match comma {
                Some(at) => {
                    self.rest = Some(&value[at + 1..]);
                    &value[..at]
                }
                None => {
                    self.rest = None;
                    value
                }
            };
            let member = trim_ows(member);
            if !member.is_empty() {
                return Some(member);
            }
        }
    }
}

/// How a walk over a list ended.
enum Walk {
    /// `on_tag` returned true for a member.
    Stopped,
    /// The list is `*` alone (one or more stars and nothing else): it matches anything.
    Any,
    /// Anything else.
    Tags,
}

/// Walks a list, calling `on_tag(weak, opaque)` for each member shaped like a tag until it
/// returns true. The opaque bytes are not checked against `etagc`: a caller comparing them
/// with a tag of ours (which is valid) can only ever find a valid one equal, exactly as if
/// invalid members had been skipped first; [`ETagList::parse`] checks them itself. A `*` next
/// to other members is skipped like any invalid member (see [`ETagList::parse`]).
fn walk(value: &[u8], mut on_tag: impl FnMut(bool, &[u8]) -> bool) -> Walk {
    let mut stars = 0usize;
    let mut others = 0usize;
    for member in members(value) {
        if member == b"*" {
            stars += 1;
            continue;
        }
        others += 1;
        if let Some((weak, opaque)) = tag_shape(member)
            && on_tag(weak, opaque)
        {
            return Walk::Stopped;
        }
    }
    if stars > 0 && others == 0 {
        Walk::Any
    } else {
        Walk::Tags
    }
}

/// Whether a list matches by `eq` on `(weak, opaque)`: `*` alone matches anything,
/// otherwise some member must satisfy `eq`.
fn list_matches(value: &[u8], eq: impl FnMut(bool, &[u8]) -> bool) -> bool {
    matches!(walk(value, eq), Walk::Stopped | Walk::Any)
}

impl ETagList {
    /// Combines all field lines of one header (several lines form one comma list, §5.3).
    /// Returns `None` when the header is absent. Invalid members are skipped; a value with no
    /// valid member is `Tags(vec![])`, which matches nothing.
    pub fn from_headers(values: GetAll<'_, HeaderValue>) -> Option<ETagList> {
        ETagField::from_headers(values).map(|field| field.list())
    }

    /// Parses one (possibly combined) field value.
    ///
    /// `*` alone means [`ETagList::Any`]. The grammar does not allow `*` inside a list; a `*`
    /// next to tags is skipped like any invalid member, while a value made only of `*` members
    /// (the same line repeated by an intermediary) still means `Any`.
    pub fn parse(value: &str) -> ETagList {
        let mut tags = Vec::new();
        let walked = walk(value.as_bytes(), |weak, opaque| {
            // `members` splits at ASCII bytes only, so each opaque part of a `&str` is UTF-8.
            if let Ok(opaque) = std::str::from_utf8(opaque)
                && opaque.chars().all(is_etagc)
            {
                tags.push(ETag {
                    opaque: opaque.into(),
                    weak,
                });
            }
            false
        });
        match walked {
            Walk::Any => ETagList::Any,
            Walk::Stopped | Walk::Tags => ETagList::Tags(tags),
        }
    }

    /// The tags of the list (none for `*`).
    pub fn tags(&self) -> &[ETag] {
        match self {
            ETagList::Any => &[],
            ETagList::Tags(tags) => tags,
        }
    }

    /// For `If-Match` (§13.1.1): `*` matches anything, otherwise some tag must be strongly equal.
    pub fn matches_strong(&self, etag: &ETag) -> bool {
        match self {
            ETagList::Any => true,
            ETagList::Tags(tags) => tags.iter().any(|t| t.strong_eq(etag)),
        }
    }

    /// For `If-None-Match` (§13.1.2): `*` matches anything, otherwise some tag must be weakly
    /// equal.
    pub fn matches_weak(&self, etag: &ETag) -> bool {
        match self {
            ETagList::Any => true,
            ETagList::Tags(tags) => tags.iter().any(|t| t.weak_eq(etag)),
        }
    }
}

/// An `If-Match` or `If-None-Match` field as received, matched member by member without
/// copying or allocating (the request path; [`ETagList`] is the parsed, owned form). Several
/// field lines are joined into one comma list (§5.3), the only case that copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ETagField(HeaderValue);

impl ETagField {
    /// The field from all its lines; `None` when the header is absent.
    pub fn from_headers(values: GetAll<'_, HeaderValue>) -> Option<ETagField> {
        let mut lines = values.iter();
        let first = lines.next()?;
        let Some(second) = lines.next() else {
            return Some(ETagField(first.clone()));
        };
        let mut joined = first.as_bytes().to_vec();
        for line in std::iter::once(second).chain(lines) {
            joined.push(b',');
            joined.extend_from_slice(line.as_bytes());
        }
        // Joining valid field values with a comma gives a valid field value.
        Some(ETagField(
            HeaderValue::from_bytes(&joined).unwrap_or_else(|_| HeaderValue::from_static("")),
        ))
    }

    /// The field holding exactly this value (one field line).
    pub fn new(value: HeaderValue) -> ETagField {
        ETagField(value)
    }

    /// The parsed, owned list.
    pub fn list(&self) -> ETagList {
        ETagList::parse(&String::from_utf8_lossy(self.0.as_bytes()))
    }

    /// [`ETagList::matches_strong`] on the field as received.
    pub fn matches_strong(&self, etag: &ETag) -> bool {
        list_matches(self.0.as_bytes(), |weak, opaque| {
            !weak && !etag.weak && opaque == etag.opaque.as_bytes()
        })
    }

    /// [`ETagList::matches_weak`] on the field as received.
    pub fn matches_weak(&self, etag: &ETag) -> bool {
        let field = self.0.as_bytes();
        // The usual revalidation sends back exactly the tag it was given: one quoted tag,
        // equal to ours, matches without walking the list.
        let opaque = etag.opaque.as_bytes();
        if field.len() == opaque.len() + 2
            && field[0] == b'"'
            && field[field.len() - 1] == b'"'
            && &field[1..field.len() - 1] == opaque
        {
            return true;
        }
        list_matches(field, |_, listed| listed == opaque)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http::header::IF_NONE_MATCH;
    use proptest::prelude::*;

    fn s(opaque: &str) -> ETag {
        ETag::strong(opaque).unwrap()
    }
    fn w(opaque: &str) -> ETag {
        ETag::weak(opaque).unwrap()
    }

    #[test]
    fn strong_accepts_etagc_and_rejects_the_rest() {
        for (opaque, ok) in [
            ("abc", true),
            ("", true),
            ("a,b", true),
            ("!#~/*", true),
            ("a\"b", false),
            ("a b", false),
            ("a\tb", false),
            ("caf\u{e9}", false),
            ("a\x7f", false),
        ] {
            assert_eq!(ETag::strong(opaque).is_some(), ok, "{opaque:?}");
        }
    }

    #[test]
    fn parse_reads_one_strong_or_weak_tag() {
        for (input, want) in [
            ("\"xyzzy\"", Some(s("xyzzy"))),
            ("W/\"xyzzy\"", Some(w("xyzzy"))),
            (" \t\"a\" ", Some(s("a"))),
            ("\"\"", Some(s(""))),
            ("w/\"xyzzy\"", None), // the weak prefix is case-sensitive
            ("xyzzy", None),
            ("\"xyzzy", None),
            ("\"", None),
            ("W/", None),
            ("\"a\"b\"", None),
            ("\"a\" \"b\"", None),
            ("*", None),
        ] {
            assert_eq!(ETag::parse(input), want, "{input:?}");
        }
    }

    #[test]
    fn comparison_follows_the_rfc_9110_table() {
        // RFC 9110 §8.8.3.2 example table: W/"1" W/"1" weak-equal only; W/"1" W/"2" neither;
        // W/"1" "1" weak-equal only; "1" "1" both.
        for (a, b, strong, weak) in [
            (w("1"), w("1"), false, true),
            (w("1"), w("2"), false, false),
            (w("1"), s("1"), false, true),
            (s("1"), s("1"), true, true),
            (s("1"), s("2"), false, false),
        ] {
            assert_eq!(a.strong_eq(&b), strong, "{a} {b}");
            assert_eq!(b.strong_eq(&a), strong, "{b} {a}");
            assert_eq!(a.weak_eq(&b), weak, "{a} {b}");
            assert_eq!(b.weak_eq(&a), weak, "{b} {a}");
        }
    }

    #[test]
    fn header_value_and_display_quote_the_tag() {
        for (tag, text) in [
            (s("abc"), "\"abc\""),
            (w("abc"), "W/\"abc\""),
            (s(""), "\"\""),
        ] {
            assert_eq!(tag.to_string(), text);
            assert_eq!(tag.header_value(), text);
        }
    }

    #[test]
    fn from_sha256_is_strong_lowercase_hex() {
        let tag = ETag::from_sha256(&[0xab, 0x01, 0xff]);
        assert!(!tag.is_weak());
        assert_eq!(tag.opaque(), "ab01ff");
        // SHA-256 of "abc" (FIPS 180-2 example).
        let abc = ETag::from_sha256(&Sha256::digest(b"abc"));
        assert_eq!(
            abc.opaque(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn derive_is_stable_strong_and_length_prefixed() {
        let a = ETag::derive(&[b"etag-1", b"1024"]);
        assert_eq!(a, ETag::derive(&[b"etag-1", b"1024"]));
        assert!(!a.is_weak());
        assert_eq!(a.opaque().len(), 64);
        assert!(
            a.opaque()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(ETag::derive(&[b"ab", b"c"]), ETag::derive(&[b"a", b"bc"]));
        assert_ne!(a, ETag::derive(&[b"etag-1", b"1025"]));
        assert_ne!(ETag::derive(&[]), ETag::derive(&[b""]));
    }

    #[test]
    fn with_suffix_names_the_encoded_representation() {
        for (tag, suffix, want) in [
            (s("abc"), "br", s("abc-br")),
            (w("abc"), "gzip", w("abc-gzip")),
            (s("abc"), "z\"s td", s("abc-zstd")),
        ] {
            let got = tag.with_suffix(suffix);
            assert_eq!(got, want);
            assert!(!got.strong_eq(&tag) && !got.weak_eq(&tag));
        }
    }

    #[test]
    fn list_parse_handles_star_quoted_commas_and_junk() {
        for (input, want) in [
            ("*", ETagList::Any),
            (" * ", ETagList::Any),
            ("*, *", ETagList::Any),
            ("\"xyzzy\"", ETagList::Tags(vec![s("xyzzy")])),
            (
                "\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\"",
                ETagList::Tags(vec![s("xyzzy"), s("r2d2xxxx"), s("c3piozzzz")]),
            ),
            (
                "W/\"xyzzy\", W/\"r2d2xxxx\"",
                ETagList::Tags(vec![w("xyzzy"), w("r2d2xxxx")]),
            ),
            ("\"a,b\",\"c\"", ETagList::Tags(vec![s("a,b"), s("c")])),
            ("\"a, b\"", ETagList::Tags(vec![])), // space is not etagc
            (",, \"a\" ,\t,", ETagList::Tags(vec![s("a")])),
            ("\"a\", junk, \"b\"", ETagList::Tags(vec![s("a"), s("b")])),
            ("\"a\", *", ETagList::Tags(vec![s("a")])),
            ("junk", ETagList::Tags(vec![])),
            ("", ETagList::Tags(vec![])),
            ("\"unterminated, \"b\"", ETagList::Tags(vec![])),
        ] {
            assert_eq!(ETagList::parse(input), want, "{input:?}");
        }
    }

    #[test]
    fn list_matching_uses_strong_for_if_match_and_weak_for_if_none_match() {
        let list = ETagList::parse("W/\"a\", \"b\"");
        for (tag, strong, weak) in [
            (s("a"), false, true),
            (w("a"), false, true),
            (s("b"), true, true),
            (w("b"), false, true),
            (s("c"), false, false),
        ] {
            assert_eq!(list.matches_strong(&tag), strong, "{tag}");
            assert_eq!(list.matches_weak(&tag), weak, "{tag}");
        }
        assert!(ETagList::Any.matches_strong(&w("x")));
        assert!(ETagList::Any.matches_weak(&s("x")));
        assert!(!ETagList::Tags(vec![]).matches_weak(&s("x")));
    }

    #[test]
    fn from_headers_joins_field_lines_and_reports_absence() {
        let mut headers = HeaderMap::new();
        assert_eq!(ETagList::from_headers(headers.get_all(IF_NONE_MATCH)), None);
        headers.append(IF_NONE_MATCH, HeaderValue::from_static("\"a\", \"b,c\""));
        headers.append(IF_NONE_MATCH, HeaderValue::from_static("W/\"d\""));
        assert_eq!(
            ETagList::from_headers(headers.get_all(IF_NONE_MATCH)),
            Some(ETagList::Tags(vec![s("a"), s("b,c"), w("d")]))
        );

        let mut junk = HeaderMap::new();
        junk.append(IF_NONE_MATCH, HeaderValue::from_bytes(b"\"\xe9\"").unwrap());
        assert_eq!(
            ETagList::from_headers(junk.get_all(IF_NONE_MATCH)),
            Some(ETagList::Tags(vec![]))
        );
    }

    fn etag_strategy() -> impl Strategy<Value = ETag> {
        (any::<bool>(), "[!#-~]{0,12}").prop_map(|(weak, opaque)| ETag::new(&opaque, weak).unwrap())
    }

    proptest! {
        /// The `memchr` walk splits exactly like the plain definition: a comma splits unless
        /// an odd number of quotes came before it.
        #[test]
        fn members_split_like_the_quote_toggle(value in "[a\",W/ \t*]{0,24}") {
            let mut in_quotes = false;
            let plain: Vec<&[u8]> = value
                .as_bytes()
                .split(|&b| {
                    if b == b'"' {
                        in_quotes = !in_quotes;
                    }
                    b == b',' && !in_quotes
                })
                .map(trim_ows)
                .filter(|m| !m.is_empty())
                .collect();
            prop_assert_eq!(members(value.as_bytes()).collect::<Vec<_>>(), plain);
        }

        #[test]
        fn list_parse_never_panics(value in any::<String>()) {
            let _ = ETagList::parse(&value);
        }

        #[test]
        fn list_round_trips_through_display(
            tags in proptest::collection::vec(etag_strategy(), 0..8),
            sep in "[ \t]{0,2},[ \t]{0,2}",
        ) {
            let text = tags.iter().map(ToString::to_string).collect::<Vec<_>>().join(&sep);
            prop_assert_eq!(ETagList::parse(&text), ETagList::Tags(tags));
        }

        #[test]
        fn field_matches_exactly_like_the_parsed_list(
            value in "[ -~\t]{0,40}",
            tag in etag_strategy(),
        ) {
            let header = HeaderValue::from_str(&value).unwrap();
            let field = ETagField::new(header);
            let list = ETagList::parse(&value);
            prop_assert_eq!(field.list(), list.clone());
            prop_assert_eq!(field.matches_strong(&tag), list.matches_strong(&tag));
            prop_assert_eq!(field.matches_weak(&tag), list.matches_weak(&tag));
            let listed = HeaderValue::from_str(&format!("{value}, {tag}")).unwrap();
            let listed = ETagField::new(listed);
            prop_assert_eq!(listed.matches_weak(&tag), ETagList::parse(&format!("{value}, {tag}")).matches_weak(&tag));
            // The field that is exactly the tag, quoted (the fast path), and near misses.
            for text in [
                format!("\"{}\"", tag.opaque),
                format!("\"{}x\"", tag.opaque),
                format!("\"{}", tag.opaque),
                format!("W/\"{}\"", tag.opaque),
            ] {
                let field = ETagField::new(HeaderValue::from_str(&text).unwrap());
                prop_assert_eq!(field.matches_weak(&tag), ETagList::parse(&text).matches_weak(&tag), "{}", text);
            }
        }

        #[test]
        fn tag_round_trips_through_header_value(tag in etag_strategy()) {
            let value = tag.header_value();
            prop_assert_eq!(ETag::parse(value.to_str().unwrap()), Some(tag));
        }
    }
}
