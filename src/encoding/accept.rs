//! Accept-Encoding parsing and negotiation, RFC 9110 section 12.5.3.
//!
//! ```text
//! Accept-Encoding = #( codings [ weight ] )
//! codings         = content-coding / "identity" / "*"
//! weight          = OWS ";" OWS "q=" qvalue                     ; section 12.4.2
//! qvalue          = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
//! ```
//!
//! Only the codings this server produces matter, so the parsed value is five optional
//! q-values (br, zstd, gzip, identity, `*`) in thousandths: no allocation, `Copy`, and
//! negotiation is a handful of comparisons. Choices where the RFC leaves room:
//!
//! - A member whose q-value is invalid (`q=2`, `q=0.5000`, `q=abc`) is ignored whole, as if
//!   the client had not sent it; other parameters are ignored (the grammar has none).
//! - When a coding is listed twice, the first member counts.
//! - No Accept-Encoding field at all means "anything" in the RFC, but clients that did not ask
//!   are not sent compressed bytes: they get identity, like an empty field.
//! - `identity` not listed is acceptable (section 12.5.3) but ranks below every listed coding
//!   with q > 0, since a client that lists codings wants them; `*` with q > 0 gives it the
//!   `*` weight; `identity;q=0`, or `*;q=0` without an `identity` member, excludes it.

use std::cell::RefCell;

use super::Encoding;
use http::header::ACCEPT_ENCODING;
use http::{HeaderMap, HeaderValue};

/// Index of each slot in [`AcceptEncoding::q`].
const IDENTITY: usize = 0;
const BROTLI: usize = 1;
const ZSTD: usize = 2;
const GZIP: usize = 3;
const STAR: usize = 4;

/// A parsed Accept-Encoding request field (all field lines combined).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AcceptEncoding {
    /// q-value in thousandths (0..=1000) of the first valid member for each slot.
    q: [Option<u16>; 5],
}

impl AcceptEncoding {
    /// Parses every Accept-Encoding field line of a request. Lines that are not visible ASCII
    /// are skipped. Without the field, only identity is acceptable (see the module doc).
    ///
    /// A request with one field line, the usual case, is answered from the thread's
    /// `Recent` values when it repeats one of them: a CDN normalises the field to a few
    /// values and browsers send a handful, so nearly every request repeats one, and a
    /// comparison of a few dozen bytes replaces the parse.
    pub fn from_headers(headers: &HeaderMap) -> AcceptEncoding {
        let mut lines = headers.get_all(ACCEPT_ENCODING).iter();
        match (lines.next(), lines.next()) {
            (None, _) => AcceptEncoding::default(),
            (Some(line), None) => RECENT.with_borrow_mut(|recent| recent.parse(line)),
            (Some(first), Some(second)) => {
                let mut accept = AcceptEncoding::default();
                for line in [first, second].into_iter().chain(lines) {
                    accept.parse_line(line);
                }
                accept
            }
        }
    }

    /// Adds one field line, unless it is not visible ASCII.
    fn parse_line(&mut self, line: &HeaderValue) {
        if let Ok(text) = line.to_str() {
            self.parse_into(text.as_bytes());
        }
    }

    /// Parses one field value. Never fails: invalid members are ignored.
    pub fn parse(value: &str) -> AcceptEncoding {
        let mut accept = AcceptEncoding::default();
        accept.parse_into(value.as_bytes());
        accept
    }

    /// Walks the value as bytes: the delimiters and every token are ASCII, and a byte-slice
    /// split is a plain loop where `str::split` runs a searcher per member (about 1,900
    /// instructions for a browser's `gzip, deflate, br, zstd`, now a few hundred).
    fn parse_into(&mut self, value: &[u8]) {
        for member in value.split(|&b| b == b',') {
            if let Some((slot, q)) = parse_member(member) {
                let entry = &mut self.q[slot];
                if entry.is_none() {
                    *entry = Some(q);
                }
            }
        }
    }

    /// The best acceptable coding among `available` (which normally includes
    /// [`Encoding::Identity`]): highest q-value first, ties broken by server preference
    /// br > zstd > gzip > identity. `None` means nothing offered is acceptable: the caller
    /// answers 406, or identity if so configured.
    pub fn negotiate(&self, available: &[Encoding]) -> Option<Encoding> {
        let mut best: Option<(u16, u8, Encoding)> = None;
        for &enc in available {
            let Some(weight) = self.weight(enc) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((w, p, _)) => (weight, enc.preference()) > (w, p),
            };
            if better {
                best = Some((weight, enc.preference(), enc));
            }
        }
        best.map(|(_, _, enc)| enc)
    }

    /// Whether the client accepts `enc` at all (q > 0, or identity not excluded).
    pub fn is_acceptable(&self, enc: Encoding) -> bool {
        self.weight(enc).is_some()
    }

    /// The ranking weight of `enc`: `None` when excluded. Listed codings weigh their q in
    /// thousandths (1..=1000); an unlisted identity weighs 0, below any listed coding.
    fn weight(&self, enc: Encoding) -> Option<u16> {
        let slot = match enc {
            Encoding::Identity => IDENTITY,
            Encoding::Brotli => BROTLI,
            Encoding::Zstd => ZSTD,
            Encoding::Gzip => GZIP,
        };
        let q = match (self.q[slot], self.q[STAR]) {
            (Some(q), _) | (None, Some(q)) => q,
            (None, None) if enc == Encoding::Identity => return Some(0),
            (None, None) => return None,
        };
        (q > 0).then_some(q)
    }
}

/// Field values this long or shorter are remembered by [`Recent`].
const RECENT_LEN: usize = 64;

/// How many values [`Recent`] remembers.
const RECENT_SLOTS: usize = 4;

thread_local! {
    /// The event loop's recent Accept-Encoding values (one per thread: no lock, no sharing).
    static RECENT: RefCell<Recent> = const { RefCell::new(Recent::new()) };
}

/// The last few distinct single-line field values parsed on this thread, with their parse,
/// replaced round-robin. The bytes are copied: keeping the request's `HeaderValue` would
/// keep hyper's read buffer alive after the request.
struct Recent {
    slots: [(usize, [u8; RECENT_LEN], AcceptEncoding); RECENT_SLOTS],
    next: usize,
}

impl Recent {
    /// Every slot starts as the empty value, whose parse is the default: a true entry.
    const fn new() -> Recent {
        Recent {
            slots: [(0, [0; RECENT_LEN], AcceptEncoding { q: [None; 5] }); RECENT_SLOTS],
            next: 0,
        }
    }

    /// The parse of one field line, remembered when it is short enough.
    fn parse(&mut self, line: &HeaderValue) -> AcceptEncoding {
        let bytes = line.as_bytes();
        for (len, buf, accept) in &self.slots {
            if &buf[..*len] == bytes {
                return *accept;
            }
        }
        let mut accept = AcceptEncoding::default();
        accept.parse_line(line);
        if bytes.len() <= RECENT_LEN {
            let (len, buf, kept) = &mut self.slots[self.next];
            *len = bytes.len();
            buf[..bytes.len()].copy_from_slice(bytes);
            *kept = accept;
            self.next = (self.next + 1) % RECENT_SLOTS;
        }
        accept
    }
}

/// Parses one list member into (slot, q). `None` for empty members, codings this server does
/// not produce, malformed tokens and invalid q-values.
fn parse_member(member: &[u8]) -> Option<(usize, u16)> {
    let mut parts = member.split(|&b| b == b';');
    // Only six tokens are known, all of token characters: any other coding, malformed or
    // not, is not one of them.
    let slot = slot_of(trim_ows(parts.next()?))?;
    let mut q = None;
    for param in parts {
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&param[..eq], &param[eq + 1..]);
        if q.is_none() && trim_ows(name).eq_ignore_ascii_case(b"q") {
            q = Some(parse_qvalue(trim_ows(value))?);
        }
    }
    Some((slot, q.unwrap_or(1000)))
}

fn slot_of(coding: &[u8]) -> Option<usize> {
    // By length first: one comparison per member instead of one per table row.
    let (token, slot): (&[u8], usize) = match coding.len() {
        1 => (b"*", STAR),
        2 => (b"br", BROTLI),
        4 if coding[0].eq_ignore_ascii_case(&b'z') => (b"zstd", ZSTD),
        4 => (b"gzip", GZIP),
        6 => (b"x-gzip", GZIP), // RFC 9110 section 8.4.1.3
        8 => (b"identity", IDENTITY),
        _ => return None,
    };
    coding.eq_ignore_ascii_case(token).then_some(slot)
}

/// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
fn parse_qvalue(text: &[u8]) -> Option<u16> {
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, digit) in frac.iter().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Optional whitespace (RFC 9110 section 5.6.3): spaces and horizontal tabs.
fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Brotli as Br, Gzip, Identity as Id, Zstd};
    use http::HeaderValue;
    use proptest::prelude::*;

    const ALL: [Encoding; 4] = [Id, Br, Zstd, Gzip];

    #[test]
    fn negotiation_table() {
        // (Accept-Encoding value, available, expected)
        let table: &[(&str, &[Encoding], Option<Encoding>)] = &[
            // RFC 9110 section 12.5.3 examples
            ("compress, gzip", &ALL, Some(Gzip)),
            ("", &ALL, Some(Id)),
            ("*", &ALL, Some(Br)),
            ("compress;q=0.5, gzip;q=1.0", &ALL, Some(Gzip)),
            ("gzip;q=1.0, identity; q=0.5, *;q=0", &ALL, Some(Gzip)),
            // ties go to the server preference, whatever the client order
            ("gzip, zstd, br", &ALL, Some(Br)),
            ("gzip, zstd", &ALL, Some(Zstd)),
            ("gzip, br", &[Id, Gzip, Zstd], Some(Gzip)),
            // q-values outrank the server preference
            ("br;q=0.5, gzip", &ALL, Some(Gzip)),
            ("br;q=0.9, zstd;q=0.95", &ALL, Some(Zstd)),
            ("br;q=0.001, gzip;q=0", &ALL, Some(Br)),
            // q=0 excludes
            ("br;q=0, gzip", &ALL, Some(Gzip)),
            ("br;q=0.000", &[Id, Br], Some(Id)),
            ("gzip;q=0", &[Gzip], None),
            // `*` covers unlisted codings, not listed ones
            ("*;q=0.5, gzip;q=0.8", &ALL, Some(Gzip)),
            ("*;q=0.9, gzip;q=0.8", &ALL, Some(Br)),
            ("*, br;q=0", &ALL, Some(Zstd)),
            ("*;q=0, gzip", &ALL, Some(Gzip)),
            ("*;q=0", &[Id, Br], None),
            // identity: acceptable unless excluded, ranked below listed codings
            ("br;q=0.1", &ALL, Some(Br)),
            ("identity, br;q=0.5", &ALL, Some(Id)),
            ("identity;q=0", &[Id], None),
            ("identity;q=0, br", &ALL, Some(Br)),
            ("*;q=0, identity", &ALL, Some(Id)),
            ("*;q=0, identity;q=0.2", &[Id, Br], Some(Id)),
            ("*;q=0.5", &[Id], Some(Id)),
            ("deflate, compress", &ALL, Some(Id)),
            ("deflate", &[Br, Gzip], None),
            // tokens are case-insensitive; x-gzip is gzip; OWS around parameters
            ("GZIP", &ALL, Some(Gzip)),
            ("Br ;\tQ=1", &ALL, Some(Br)),
            ("x-gzip", &ALL, Some(Gzip)),
            ("X-GZip;q=0, br;q=0", &ALL, Some(Id)),
            // invalid q-values drop the member only
            ("br;q=2, gzip", &ALL, Some(Gzip)),
            ("br;q=1.001", &[Id, Br], Some(Id)),
            ("br;q=0.1234, gzip;q=0.5", &ALL, Some(Gzip)),
            ("br;q=, gzip;q=0.5", &ALL, Some(Gzip)),
            ("br;q=abc", &[Id, Br], Some(Id)),
            ("identity;q=-1", &[Id], Some(Id)),
            ("br;q=1., zstd;q=0.", &ALL, Some(Br)),
            // first member of a coding counts
            ("br;q=0, br", &[Id, Br], Some(Id)),
            ("gzip, gzip;q=0", &[Id, Gzip], Some(Gzip)),
            // empty members and junk are ignored
            (" , ,gzip,,", &ALL, Some(Gzip)),
            ("br gzip", &[Id, Br, Gzip], Some(Id)),
            ("br;q=0.5;foo=bar", &[Id, Br], Some(Br)),
            // nothing available
            ("gzip", &[], None),
        ];
        for &(value, available, expected) in table {
            let got = AcceptEncoding::parse(value).negotiate(available);
            assert_eq!(
                got, expected,
                "Accept-Encoding: {value:?} offering {available:?}"
            );
        }
    }

    #[test]
    fn missing_field_gets_identity_only() {
        let accept = AcceptEncoding::from_headers(&HeaderMap::new());
        assert_eq!(accept.negotiate(&ALL), Some(Id));
        assert_eq!(accept.negotiate(&Encoding::COMPRESSED), None);
    }

    #[test]
    fn all_field_lines_are_combined_first_member_wins() {
        let mut headers = HeaderMap::new();
        headers.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0.5"));
        headers.append(ACCEPT_ENCODING, HeaderValue::from_static("zstd, gzip"));
        let accept = AcceptEncoding::from_headers(&headers);
        assert_eq!(accept.negotiate(&[Id, Gzip]), Some(Gzip));
        assert_eq!(accept.negotiate(&ALL), Some(Zstd));
    }

    #[test]
    fn non_ascii_field_line_is_skipped() {
        let mut headers = HeaderMap::new();
        let opaque = HeaderValue::from_bytes(b"br\xff").unwrap();
        headers.append(ACCEPT_ENCODING, opaque);
        headers.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(
            AcceptEncoding::from_headers(&headers).negotiate(&ALL),
            Some(Gzip)
        );
    }

    #[test]
    fn is_acceptable_reports_exclusion() {
        let accept = AcceptEncoding::parse("br, *;q=0");
        assert!(accept.is_acceptable(Br));
        assert!(!accept.is_acceptable(Gzip));
        assert!(!accept.is_acceptable(Id));
        assert!(AcceptEncoding::parse("").is_acceptable(Id));
    }

    #[test]
    fn qvalue_grammar() {
        let table = [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.123", Some(123)),
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("1.0001", None),
            ("1.5", None),
            ("0.1234", None),
            ("00.5", None),
            (".5", None),
            ("", None),
            ("0.5x", None),
            ("+1", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_qvalue(text.as_bytes()), expected, "qvalue {text:?}");
        }
    }

    /// One generated member: a token (with case and alias variations) and its q text.
    fn member() -> impl Strategy<Value = (String, String)> {
        let token = prop_oneof![
            Just("br"),
            Just("BR"),
            Just("zstd"),
            Just("gzip"),
            Just("x-gzip"),
            Just("identity"),
            Just("Identity"),
            Just("*"),
            Just("deflate"),
        ];
        let q = prop_oneof![
            Just(String::new()),
            Just(";q=0".to_owned()),
            Just("; q=0.000".to_owned()),
            "[01]\\.[0-9]{0,4}".prop_map(|q| format!(";q={q}")),
            "[0-9a-z.]{0,5}".prop_map(|q| format!(";Q={q}")),
        ];
        (token, q).prop_map(|(t, q)| (t.to_owned(), q))
    }

    fn slot_of_encoding(enc: Encoding) -> usize {
        match enc {
            Id => IDENTITY,
            Br => BROTLI,
            Zstd => ZSTD,
            Gzip => GZIP,
        }
    }

    /// The parser as first written, over `str` with `split`, `trim_matches`, a token check
    /// and a table of codings: the oracle for the byte-walking one, sharing none of its code.
    fn reference(value: &str) -> AcceptEncoding {
        fn is_tchar(b: u8) -> bool {
            b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
        }
        fn slot_of(coding: &str) -> Option<usize> {
            const TABLE: [(&str, usize); 6] = [
                ("identity", IDENTITY),
                ("br", BROTLI),
                ("zstd", ZSTD),
                ("gzip", GZIP),
                ("x-gzip", GZIP),
                ("*", STAR),
            ];
            TABLE
                .iter()
                .find(|(token, _)| coding.eq_ignore_ascii_case(token))
                .map(|&(_, slot)| slot)
        }
        fn qvalue(text: &str) -> Option<u16> {
            let (int, frac) = text.split_once('.').unwrap_or((text, ""));
            if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let mut thousandths = 0u16;
            for (i, digit) in frac.bytes().enumerate() {
                thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
            }
            match int {
                "0" => Some(thousandths),
                "1" if thousandths == 0 => Some(1000),
                _ => None,
            }
        }
        fn member(member: &str) -> Option<(usize, u16)> {
            let ows: &[char] = &[' ', '\t'];
            let mut parts = member.split(';');
            let coding = parts.next()?.trim_matches(ows);
            if coding.is_empty() || !coding.bytes().all(is_tchar) {
                return None;
            }
            let slot = slot_of(coding)?;
            let mut q = None;
            for param in parts {
                let Some((name, value)) = param.split_once('=') else {
                    continue;
                };
                if q.is_none() && name.trim_matches(ows).eq_ignore_ascii_case("q") {
                    q = Some(qvalue(value.trim_matches(ows))?);
                }
            }
            Some((slot, q.unwrap_or(1000)))
        }
        let mut accept = AcceptEncoding::default();
        for (slot, q) in value.split(',').filter_map(member) {
            accept.q[slot].get_or_insert(q);
        }
        accept
    }

    proptest! {
        #[test]
        fn parser_never_panics(value in "\\PC{0,80}") {
            let accept = AcceptEncoding::parse(&value);
            let _ = accept.negotiate(&ALL);
        }

        /// Repeated single-line values come from the thread's recent values: with more
        /// distinct values than slots (evictions), values too long to keep, and lines that
        /// are skipped (not visible ASCII), every answer equals a fresh parse.
        #[test]
        fn remembered_values_parse_as_fresh_ones(picks in proptest::collection::vec(0usize..9, 1..60)) {
            let long = format!("{}br;q=0.5", " ".repeat(RECENT_LEN));
            let pool: [&[u8]; 9] = [
                b"gzip, deflate, br, zstd",
                b"gzip, deflate, br",
                b"gzip",
                b"br;q=0.9, gzip;q=0.8, identity;q=0",
                b"",
                b"*;q=0",
                b"br\xff",
                long.as_bytes(),
                b"zstd, *;q=0.1",
            ];
            for pick in picks {
                let line = HeaderValue::from_bytes(pool[pick]).unwrap();
                let mut headers = HeaderMap::new();
                headers.insert(ACCEPT_ENCODING, line.clone());
                let mut fresh = AcceptEncoding::default();
                fresh.parse_line(&line);
                prop_assert_eq!(AcceptEncoding::from_headers(&headers), fresh, "{:?}", line);
            }
        }

        #[test]
        fn parses_as_the_reference_does(
            value in "([ \t]{0,2}(br|BR|gzip|GZip|x-gzip|X-GZIP|zstd|ZSTD|identity|IDENTITY|\\*|[a-z\\-]{0,4}|[a-z]{4}|b@)[ \t]{0,2}(;[ \t]{0,2}[qQa]?[ \t]?=?[ \t]{0,2}[01]?\\.?[0-9]{0,4}[ \t]{0,2}){0,2}[, ]{0,2}){0,5}|\\PC{0,40}"
        ) {
            prop_assert_eq!(AcceptEncoding::parse(&value), reference(&value), "{:?}", value);
        }

        #[test]
        fn never_picks_an_excluded_coding(members in proptest::collection::vec(member(), 0..6)) {
            let value = members
                .iter()
                .map(|(t, q)| format!("{t}{q}"))
                .collect::<Vec<_>>()
                .join(", ");
            let chosen = AcceptEncoding::parse(&value).negotiate(&ALL);
            // Oracle: the first member with a valid q for a slot decides; q=0 excludes.
            let first_q = |slot: usize| {
                members.iter().find_map(|(t, q)| {
                    let s = slot_of(t.as_bytes())?;
                    let q = if q.is_empty() { Some(1000) } else {
                        let (_, v) = q.split_once('=')?;
                        parse_qvalue(v.trim().as_bytes())
                    };
                    (s == slot).then_some(q).flatten()
                })
            };
            if let Some(enc) = chosen {
                let own = first_q(slot_of_encoding(enc));
                let star = first_q(STAR);
                prop_assert_ne!(own, Some(0), "{} excluded in {:?}", enc, value);
                if own.is_none() {
                    prop_assert_ne!(star, Some(0), "{} excluded by * in {:?}", enc, value);
                    prop_assert!(enc == Id || star.is_some(), "{} not asked for in {:?}", enc, value);
                }
            } else {
                // Nothing chosen: identity must have been excluded.
                let own = first_q(IDENTITY);
                prop_assert!(own == Some(0) || (own.is_none() && first_q(STAR) == Some(0)),
                    "identity refused without exclusion in {:?}", value);
            }
        }
    }
}
