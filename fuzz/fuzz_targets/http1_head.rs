//! `server::http1::head`: the request-head parser of our HTTP/1.1 layer (`parse`, `fill`,
//! `has_token`), on any bytes a client may send.
//!
//! Input: the bytes read from a connection. Besides "never panics", what the connection driver
//! relies on to hand requests to the router or to hyper without losing or misreading a byte:
//! - a head taken here (`Ours`) ends inside the input, with its blank line, within the size
//!   limit, and parses the same from its own bytes (what follows it cannot change it);
//! - cut short (after its first byte, half of it, all but its last byte) it is `Partial` (a
//!   head read in pieces is taken the same way; every prefix would cost quadratic time);
//! - `Partial` only while the input is shorter than the limit;
//! - a 505 only for a request line that ends in another major version, and a later minor
//!   version (`HTTP/1.2`) only where rewriting its digit to `1` makes the parse move on;
//! - the request built from it is a `GET` or `HEAD` in origin form, HTTP/1.1, with exactly the
//!   head's fields and none of the fields that belong to hyper (a body's length, `Expect`,
//!   `Upgrade`), and `close` is whether a `Connection` field lists `close`.
#![no_main]

use bytes::Bytes;
use cdn_origin::server::http1::head::{self, Parsed, Refusal};
use http::{Method, Request, Version};
use http_body_util::Empty;
use libfuzzer_sys::fuzz_target;

/// The default `max_header_size`, and a small limit that heads in the corpus exceed.
const LIMITS: [usize; 2] = [8 * 1024, 64];

fuzz_target!(|data: &[u8]| {
    for max_head in LIMITS {
        check(data, max_head);
    }
});

fn check(data: &[u8], max_head: usize) {
    if data.is_empty() {
        return;
    }
    let mut fields = Vec::new();
    let parsed = head::parse(data, &mut fields, max_head);
    let h = match parsed {
        Parsed::Partial => {
            assert!(data.len() < max_head, "partial past the limit");
            return;
        }
        Parsed::Foreign => return,
        Parsed::Refused(Refusal::TargetTooLong) => {
            let within = &data[..max_head.min(data.len())];
            assert!(data.len() >= max_head, "too long under the limit");
            assert!(!within.contains(&b'\n'), "a line ended within the limit");
            return;
        }
        Parsed::Refused(Refusal::VersionNotSupported) => {
            let (_, line) = request_line(data);
            let version = line.splitn(3, |&b| b == b' ').nth(2);
            assert!(
                version.is_some_and(|v| v.len() == 8
                    && v.starts_with(b"HTTP/")
                    && !v.starts_with(b"HTTP/1.")),
                "505 for {line:?}"
            );
            return;
        }
        Parsed::LaterMinor(at) => {
            // The driver writes `1` there and parses again: that must make progress.
            // The digit of the first line's version: `HTTP/1.` right after the target.
            let (skipped, line) = request_line(data);
            let start = line
                .splitn(3, |&b| b == b' ')
                .take(2)
                .map(|p| p.len() + 1)
                .sum::<usize>();
            assert_eq!(at, skipped + start + "HTTP/1.".len(), "{line:?}");
            assert!(
                data[..at].ends_with(b" HTTP/1.") && data[at].is_ascii_digit() && data[at] > b'1'
            );
            let mut fixed = data.to_vec();
            fixed[at] = b'1';
            let again = head::parse(&fixed, &mut Vec::new(), max_head);
            assert!(
                !matches!(again, Parsed::LaterMinor(_)),
                "no progress: {again:?}"
            );
            return;
        }
        Parsed::Ours(h) => h,
    };
    assert!(
        h.len <= data.len() && h.len <= max_head,
        "head length {}",
        h.len
    );
    let own = &data[..h.len];
    assert!(own.ends_with(b"\n"), "a head ends with its blank line");
    assert!(fields.len() <= head::MAX_HEADERS);

    // The same head from its own bytes only.
    let mut again = Vec::new();
    match head::parse(own, &mut again, max_head) {
        Parsed::Ours(h2) => {
            assert_eq!((h2.len, h2.is_head, h2.close), (h.len, h.is_head, h.close));
            assert_eq!(again.len(), fields.len());
        }
        other => panic!("the head alone parsed as {other:?}"),
    }
    // Read in pieces: every prefix waits for more.
    for cut in [1, h.len / 2, h.len - 1] {
        if cut > 0 && cut < h.len {
            let mut f = Vec::new();
            let p = head::parse(&data[..cut], &mut f, max_head);
            assert!(matches!(p, Parsed::Partial), "prefix of {cut} bytes: {p:?}");
        }
    }

    let bytes = Bytes::copy_from_slice(own);
    let mut req = Request::new(Empty::<Bytes>::new());
    if !head::fill(&mut req, &bytes, &h, &fields) {
        // A name, value or target `http` rejects: hyper answers 400.
        return;
    }
    let method = if h.is_head { Method::HEAD } else { Method::GET };
    assert_eq!(req.method(), method);
    assert_eq!(req.version(), Version::HTTP_11);
    assert!(req.uri().scheme().is_none() && req.uri().authority().is_none());
    assert!(req.uri().path().starts_with('/'));
    let headers = req.headers();
    assert_eq!(headers.len(), fields.len(), "every field line, once");
    for name in ["content-length", "transfer-encoding", "expect", "upgrade"] {
        assert!(!headers.contains_key(name), "{name} taken here");
    }
    let close = headers
        .get_all("connection")
        .iter()
        .any(|v| head::has_token(v.as_bytes(), b"close"));
    assert_eq!(close, h.close, "Connection: close");

    // Emptied for the next request, the request keeps none of these fields.
    head::clear(&mut req);
    assert!(req.headers().is_empty());
}

/// The request line (without its line end) and the empty lines' bytes before it.
fn request_line(data: &[u8]) -> (usize, &[u8]) {
    let skipped = data
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let line = data[skipped..]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    (skipped, line.strip_suffix(b"\r").unwrap_or(line))
}
