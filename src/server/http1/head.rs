//! Reading a request head: `httparse` over the connection's read buffer, the checks that
//! decide whether the request is one this layer takes, and the `http::Request` built on the
//! buffer's bytes without copying them.
//!
//! This layer takes **plain HTTP/1.1 `GET` and `HEAD` requests in origin form, without a
//! body**: what a browser, a CDN or a load tool sends for an asset. Everything else is
//! [`Parsed::Foreign`], and the connection goes to hyper, which reads the same bytes again and
//! answers as it always has: HTTP/1.0 (its keep-alive rules), `Content-Length` or
//! `Transfer-Encoding` (a body to read or reject), `Expect`, `Upgrade`, other methods (the
//! purge `POST`, `OPTIONS`), absolute or asterisk form, and every malformed, oversized or
//! over-long head, so that the 400, 414 and 431 answers are hyper's, unchanged. The
//! exceptions are answers hyper (and `httparse`, which reads only HTTP/1.0 and 1.1) would get
//! wrong:
//! - a request line longer than the head's size limit ([`Refusal::TargetTooLong`]), which
//!   hyper would answer 431 for the head: this layer answers it 414, as RFC 9112 §3 asks for a
//!   target longer than the server reads;
//! - a request line of another major version (`HTTP/2.0`, `HTTP/0.9`;
//!   [`Refusal::VersionNotSupported`]): 505, the answer RFC 9110 §15.6.6 names, not 400;
//! - a later minor version of HTTP/1 (`HTTP/1.2`, [`Parsed::LaterMinor`]): RFC 9110 §2.5 asks
//!   to process it as the highest minor version this server speaks, so the connection
//!   rewrites its version digit to `1` and reads it as HTTP/1.1.

use std::ops::Range;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};
use http_body_util::Empty;

/// The most header fields a request may have here: hyper's default, past which hyper answers
/// 431.
pub const MAX_HEADERS: usize = 100;

/// The longest request target hyper accepts (it answers 414 past it).
const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;

/// One header field's name and value, as offsets into the head.
#[derive(Clone, Copy, Debug)]
pub struct FieldIndex {
    name: (u32, u32),
    value: (u32, u32),
}

/// What the buffer holds.
#[derive(Debug)]
pub enum Parsed {
    /// The start of a head: more bytes are needed.
    Partial,
    /// A request this layer does not take (see the module docs).
    Foreign,
    /// A request answered here with an error, and the connection closed.
    Refused(Refusal),
    /// A request line of HTTP/1 with a minor version above 1: the byte at this offset is
    /// that digit. Once it is `1`, the head parses as HTTP/1.1 (RFC 9110 §2.5).
    LaterMinor(usize),
    /// A request this layer takes.
    Ours(Head),
}

/// Why a request line is refused by this layer rather than hyper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A request line still unfinished at the head's size limit: its target is longer than
    /// the server reads, a 414 (RFC 9112 §3). (Any other head over the limit is hyper's 431.)
    TargetTooLong,
    /// A well-formed version whose major version is not 1, a 505 (RFC 9110 §15.6.6).
    VersionNotSupported,
}

impl Refusal {
    /// The status answered.
    pub fn status(self) -> StatusCode {
        match self {
            Self::TargetTooLong => StatusCode::URI_TOO_LONG,
            Self::VersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }

    /// The plain-text body answered.
    pub fn body(self) -> &'static str {
        match self {
            Self::TargetTooLong => "uri too long\n",
            Self::VersionNotSupported => "http version not supported\n",
        }
    }
}

/// A complete head this layer takes; its fields are in the index vector given to [`parse`].
#[derive(Debug)]
pub struct Head {
    /// The head's length in bytes, blank line included.
    pub len: usize,
    /// `HEAD` (no body in the answer) rather than `GET`.
    pub is_head: bool,
    /// The client asked to close the connection after this answer (`Connection: close`).
    pub close: bool,
    /// The request target.
    path: Range<usize>,
}

/// Parses the head at the start of `buf` (not empty), with fields recorded into `fields`.
/// `max_head` is the largest head accepted: a head that is, or is still growing, past it is
/// [`Parsed::Foreign`] (hyper answers 431).
pub fn parse(buf: &[u8], fields: &mut Vec<FieldIndex>, max_head: usize) -> Parsed {
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Parsed::Partial,
        Ok(httparse::Status::Partial) => return over_limit(buf, max_head),
        Err(httparse::Error::Version) => return other_version(buf, max_head),
        // Too many fields, or malformed: hyper's answer.
        Err(_) => return Parsed::Foreign,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Foreign;
    };
    let is_head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Parsed::Foreign,
    };
    if len > max_head {
        return over_limit(buf, max_head);
    }
    if path.len() > MAX_URI_LEN || !path.starts_with('/') {
        return Parsed::Foreign;
    }
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start as u32, (start + s.len()) as u32)
    };
    let mut close = false;
    fields.clear();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if is_one_of(
            name,
            &[
                b"content-length",
                b"transfer-encoding",
                b"expect",
                b"upgrade",
            ],
        ) {
            return Parsed::Foreign;
        }
        if name.eq_ignore_ascii_case(b"connection") && has_token(h.value, b"close") {
            close = true;
        }
        fields.push(FieldIndex {
            name: offset(name),
            value: offset(h.value),
        });
    }
    let path = offset(path.as_bytes());
    Parsed::Ours(Head {
        len,
        is_head,
        close,
        path: path.0 as usize..path.1 as usize,
    })
}

/// A head that is, or is still growing, past `max_head` bytes: a 414 when its request line
/// alone is (no line end within the limit), else hyper's 431.
fn over_limit(buf: &[u8], max_head: usize) -> Parsed {
    if buf[..max_head.min(buf.len())].contains(&b'\n') {
        Parsed::Foreign
    } else {
        Parsed::Refused(Refusal::TargetTooLong)
    }
}

/// A request line whose method and target `httparse` read and whose version it refused: a
/// well-formed `HTTP/x.y` other than 1.0 and 1.1 is a later minor version or another major
/// one; anything else (and the HTTP/2 preface) is hyper's.
fn other_version(buf: &[u8], max_head: usize) -> Parsed {
    // Empty lines before the request line are skipped, as httparse does (RFC 9112 §2.2).
    let skipped = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let Some(end) = buf[skipped..].iter().position(|&b| b == b'\n') else {
        return if buf.len() < max_head {
            Parsed::Partial
        } else {
            over_limit(buf, max_head)
        };
    };
    let line = &buf[skipped..skipped + end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"PRI * HTTP/2.0" {
        return Parsed::Foreign;
    }
    // `method SP target SP version`: neither of the first two holds a space (httparse read
    // them), so the version is all that follows the second space.
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Foreign;
    };
    match *version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if major == b'1' {
                if minor <= b'1' {
                    // Not what httparse refused (it reads these): the rewrite would loop.
                    return Parsed::Foreign;
                }
                Parsed::LaterMinor(skipped + method.len() + target.len() + 2 + "HTTP/1.".len())
            } else {
                Parsed::Refused(Refusal::VersionNotSupported)
            }
        }
        _ => Parsed::Foreign,
    }
}

/// Makes `req` the request of `bytes`, the head that [`parse`] took, with its `fields`; its
/// field map must be empty (its memory is reused). `false` when a field name, value or the
/// target is not valid for `http` (hyper answers 400).
pub fn fill(
    req: &mut Request<Empty<Bytes>>,
    bytes: &Bytes,
    head: &Head,
    fields: &[FieldIndex],
) -> bool {
    let Ok(uri) = Uri::from_maybe_shared(bytes.slice(head.path.clone())) else {
        return false;
    };
    let headers = req.headers_mut();
    headers.reserve(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(&bytes[f.name.0 as usize..f.name.1 as usize]);
        let value =
            HeaderValue::from_maybe_shared(bytes.slice(f.value.0 as usize..f.value.1 as usize));
        let (Ok(name), Ok(value)) = (name, value) else {
            return false;
        };
        headers.append(name, value);
    }
    *req.method_mut() = if head.is_head {
        Method::HEAD
    } else {
        Method::GET
    };
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    true
}

/// Empties `req` for the next request, keeping its field map's memory, and drops its last
/// references to the head's bytes (so that the read buffer can be reused).
pub fn clear(req: &mut Request<Empty<Bytes>>) {
    req.headers_mut().clear();
    *req.uri_mut() = Uri::default();
}

fn is_one_of(name: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Whether a comma-separated field value lists `token` (case-insensitive). As for hyper, a
/// value with other than visible ASCII (and tabs) lists nothing.
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        && value
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(raw: &str) -> (Parsed, Vec<FieldIndex>) {
        let mut fields = Vec::new();
        (parse(raw.as_bytes(), &mut fields, 64 * 1024), fields)
    }

    fn ours(raw: &str) -> (Head, Request<Empty<Bytes>>) {
        let (parsed, fields) = parse_all(raw);
        let Parsed::Ours(head) = parsed else {
            panic!("not ours: {raw:?} -> {parsed:?}");
        };
        let bytes = Bytes::copy_from_slice(raw.as_bytes());
        let mut req = Request::new(Empty::new());
        assert!(fill(&mut req, &bytes, &head, &fields), "valid request");
        (head, req)
    }

    /// Not taken here: by the parse, or when the request is built.
    fn is_foreign(raw: &str) -> bool {
        match parse_all(raw) {
            (Parsed::Foreign, _) => true,
            (Parsed::Ours(head), fields) => {
                let bytes = Bytes::copy_from_slice(raw.as_bytes());
                !fill(&mut Request::new(Empty::new()), &bytes, &head, &fields)
            }
            (Parsed::Partial | Parsed::Refused(_) | Parsed::LaterMinor(_), _) => false,
        }
    }

    #[test]
    fn a_plain_get_becomes_a_request_over_the_same_bytes() {
        let raw = "GET /a.css?v=1 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next";
        let (head, req) = ours(raw);
        assert_eq!(head.len, raw.find("GET /next").unwrap());
        assert!(!head.is_head && !head.close);
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.uri().path(), "/a.css");
        assert_eq!(req.uri().query(), Some("v=1"));
        assert_eq!(req.headers()["host"], "x");
        assert_eq!(req.headers()["accept-encoding"], "br, gzip");
        let all: Vec<_> = req.headers().get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
    }

    #[test]
    fn a_request_cleared_and_filled_again_has_only_the_new_fields() {
        let (_, mut req) = ours("GET /a HTTP/1.1\r\nHost: x\r\nX-Old: 1\r\n\r\n");
        clear(&mut req);
        assert!(req.headers().is_empty());
        let raw = "HEAD /b HTTP/1.1\r\nHost: y\r\n\r\n";
        let mut fields = Vec::new();
        let Parsed::Ours(head) = parse(raw.as_bytes(), &mut fields, 1024) else {
            panic!("not ours");
        };
        assert!(fill(
            &mut req,
            &Bytes::from_static(raw.as_bytes()),
            &head,
            &fields
        ));
        assert_eq!(req.method(), Method::HEAD);
        assert_eq!(req.uri().path(), "/b");
        assert_eq!(req.headers().len(), 1);
        assert_eq!(req.headers()["host"], "y");
    }

    #[test]
    fn head_and_connection_close_are_read() {
        let (head, req) = ours("HEAD / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(head.is_head && head.close);
        assert_eq!(req.method(), Method::HEAD);
        let (head, _) = ours("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n");
        assert!(!head.close);
    }

    #[test]
    fn a_head_cut_short_needs_more_bytes() {
        for raw in ["G", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: x\r\n"] {
            assert!(matches!(parse_all(raw).0, Parsed::Partial), "{raw:?}");
        }
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        let foreign = [
            "GET / HTTP/1.0\r\n\r\n",
            "POST /_admin/purge HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "get / HTTP/1.1\r\n\r\n",
            "GET http://x/a HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            "GET /a\x7f HTTP/1.1\r\n\r\n",
        ];
        for raw in foreign {
            assert!(is_foreign(raw), "{raw:?}");
        }
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(is_foreign(&many));
        let at_limit = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(MAX_HEADERS));
        assert!(matches!(parse_all(&at_limit).0, Parsed::Ours(_)));
    }

    #[test]
    fn a_head_past_the_limit_goes_to_hyper_complete_or_not() {
        let mut fields = Vec::new();
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(200));
        assert!(matches!(
            parse(big.as_bytes(), &mut fields, 100),
            Parsed::Foreign
        ));
        assert!(matches!(
            parse(&big.as_bytes()[..150], &mut fields, 100),
            Parsed::Foreign
        ));
        assert!(matches!(
            parse(&big.as_bytes()[..50], &mut fields, 100),
            Parsed::Partial
        ));
    }

    #[test]
    fn a_request_line_past_the_limit_is_a_target_too_long() {
        let mut fields = Vec::new();
        let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(200));
        for cut in [100, 150, long.len()] {
            assert!(
                matches!(
                    parse(&long.as_bytes()[..cut], &mut fields, 100),
                    Parsed::Refused(Refusal::TargetTooLong)
                ),
                "{cut}"
            );
        }
        // Within the limit, the same line is only partial.
        assert!(matches!(
            parse(&long.as_bytes()[..99], &mut fields, 100),
            Parsed::Partial
        ));
    }

    #[test]
    fn a_later_minor_version_is_read_as_http_1_1() {
        let raw = "GET /a HTTP/1.2\r\nHost: x\r\n\r\n";
        let (Parsed::LaterMinor(at), _) = parse_all(raw) else {
            panic!("not a later minor version");
        };
        assert_eq!(at, "GET /a HTTP/1.".len());
        let mut raw = raw.as_bytes().to_vec();
        raw[at] = b'1';
        let (_, req) = ours(std::str::from_utf8(&raw).unwrap());
        assert_eq!((req.version(), req.uri().path()), (Version::HTTP_11, "/a"));
        // Read in pieces: the version digit may arrive before the line's end.
        assert!(matches!(
            parse_all("GET /a HTTP/1.9\r\n").0,
            Parsed::LaterMinor(14)
        ));
        assert!(matches!(parse_all("GET /a HTTP/1.9").0, Parsed::Partial));
        // After empty lines, which are skipped.
        assert!(matches!(
            parse_all("\r\n\nGET /a HTTP/1.9\r\n").0,
            Parsed::LaterMinor(17)
        ));
    }

    #[test]
    fn another_major_version_is_not_supported_and_malformed_ones_go_to_hyper() {
        for raw in [
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/3.0\r\n",
            "GET / HTTP/0.9\r\n",
        ] {
            assert!(
                matches!(
                    parse_all(raw).0,
                    Parsed::Refused(Refusal::VersionNotSupported)
                ),
                "{raw:?}"
            );
        }
        for raw in [
            "GET / HTTP/1.10\r\n\r\n",
            "GET / HTTP/2\r\n\r\n",
            "GET / http/1.1\r\n\r\n",
            "GET / HTTP/1.2 \r\n\r\n",
            "GET / HTTP/a.b\r\n\r\n",
            "GET / HTTP/1\u{ca}1 GET / HTTP/1.2\r\n\r\n",
            "GET / HTTP/1x GET / HTTP/2.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(is_foreign(raw), "{raw:?}");
        }
    }

    #[test]
    fn tokens_are_matched_whole() {
        assert!(has_token(b"close", b"close"));
        assert!(has_token(b"Keep-Alive , CLOSE", b"close"));
        assert!(!has_token(b"closed", b"close"));
        assert!(!has_token(b"", b"close"));
        assert!(
            !has_token(b"close, \xff", b"close"),
            "not visible ASCII: hyper's to_str fails"
        );
    }
}
