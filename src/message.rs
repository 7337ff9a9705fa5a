//! The checks of a request message that come before routing, on every path (the internal
//! endpoints too) and every protocol: what RFC 9110, 9112 and 9113 require of any request,
//! whatever it asks for.
//!
//! - The method must be one we know (RFC 9110 §9.1): an unknown one is a 501; a known one
//!   that a resource does not take is its own 405, with `Allow`, decided later.
//! - `Host` (RFC 9112 §3.2): an HTTP/1.1 request without one, any request with more than one,
//!   or one whose value is not `uri-host [":" port]` is a 400. An empty value is valid (a
//!   target without an authority).
//! - HTTP/2 (RFC 9113 §8.3.1): a `Host` that names another authority than `:authority` makes
//!   the request malformed: 400.
//! - A target in absolute form (`GET http://host/path`), and HTTP/2's `:authority`, must name
//!   `uri-host [":" port]` as `Host` must: user information (RFC 9110 §4.2.4, RFC 9113
//!   §8.3.1) or a port that is not digits is a 400.
//! - More than [`MAX_FIELDS`] header fields is a 431 on every protocol, as our HTTP/1 parser
//!   and hyper's already answer on HTTP/1.
//! - [`check_transfer_coding`], for an HTTP/1 request with a body (hyper's side of the
//!   connection; our HTTP/1 layer hands those over): `Transfer-Encoding` may name only
//!   `chunked`, once (RFC 9112 §6.1, §7). hyper reads a body whose last coding is `chunked` and
//!   ignores the others; a coding we do not implement is a 501, `chunked` twice a 400, as
//!   nginx answers.
//!
//! Everything here reads only the request's line and fields, so it costs a few comparisons
//! per request.

use http::header::{self, HeaderMap};
use http::uri::Authority;
use http::{Method, Request, StatusCode, Version};

/// Most header fields a request may carry (the HTTP/1 parsers' limit, `server::http1::head`).
pub const MAX_FIELDS: usize = crate::server::http1::head::MAX_HEADERS;

/// Why a request message is refused before it is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A method we do not know: 501.
    UnknownMethod,
    /// No `Host` on HTTP/1.1, more than one, or an invalid one: 400.
    BadHost(&'static str),
    /// Too many header fields: 431.
    TooManyFields,
    /// A transfer coding other than `chunked`: 501.
    UnknownTransferCoding,
    /// `chunked` applied more than once: 400.
    ChunkedTwice,
}

impl Refusal {
    /// The status it is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::UnknownMethod => StatusCode::NOT_IMPLEMENTED,
            Refusal::BadHost(_) => StatusCode::BAD_REQUEST,
            Refusal::TooManyFields => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::UnknownTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Refusal::ChunkedTwice => StatusCode::BAD_REQUEST,
        }
    }

    /// The short text of the answer.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::UnknownMethod => "method not implemented\n",
            Refusal::BadHost(_) => "bad request: host\n",
            Refusal::TooManyFields => "too many header fields\n",
            Refusal::UnknownTransferCoding => "transfer coding not implemented\n",
            Refusal::ChunkedTwice => "bad request: chunked twice\n",
        }
    }
}

/// Checks `req` (see the module docs).
pub fn check<B>(req: &Request<B>) -> Result<(), Refusal> {
    if !is_known(req.method()) {
        return Err(Refusal::UnknownMethod);
    }
    let fields = req.headers();
    if fields.len() > MAX_FIELDS {
        return Err(Refusal::TooManyFields);
    }
    check_host(req.version(), req.uri(), fields)
}

/// The methods of RFC 9110 §9 and PATCH (RFC 5789): known, so a resource that does not take
/// one answers 405.
fn is_known(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::OPTIONS
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::PATCH
            | Method::TRACE
            | Method::CONNECT
    )
}

/// Checks the `Transfer-Encoding` of an HTTP/1 request that has a body (see the module docs).
pub fn check_transfer_coding(fields: &HeaderMap) -> Result<(), Refusal> {
    let mut chunked = 0;
    for value in fields.get_all(header::TRANSFER_ENCODING) {
        for coding in value.as_bytes().split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() {
                continue;
            }
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Err(Refusal::UnknownTransferCoding);
            }
            chunked += 1;
        }
    }
    if chunked > 1 {
        return Err(Refusal::ChunkedTwice);
    }
    Ok(())
}

fn check_host(version: Version, uri: &http::Uri, fields: &HeaderMap) -> Result<(), Refusal> {
    if let Some(authority) = uri.authority()
        && !is_host(authority.as_str().as_bytes())
    {
        return Err(Refusal::BadHost("invalid authority in the target"));
    }
    let mut hosts = fields.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::BadHost("more than one Host field"));
    }
    let Some(host) = host else {
        return if version == Version::HTTP_11 {
            Err(Refusal::BadHost("no Host field"))
        } else {
            Ok(())
        };
    };
    let host = host.as_bytes();
    if !is_host(host) {
        return Err(Refusal::BadHost("invalid Host field"));
    }
    if version == Version::HTTP_2
        && let Some(authority) = uri.authority()
    {
        let default_port = if uri.scheme_str() == Some("https") {
            ":443"
        } else {
            ":80"
        };
        if !same_authority(authority, host, default_port) {
            return Err(Refusal::BadHost("Host differs from :authority"));
        }
    }
    Ok(())
}

/// Whether `host` names `authority`: the same text but for case, and for the scheme's default
/// port written on one side only (`example.com` and `example.com:443` are one server).
fn same_authority(authority: &Authority, host: &[u8], default_port: &str) -> bool {
    let port = default_port.as_bytes();
    let authority = authority.as_str().as_bytes();
    let authority = authority.strip_suffix(port).unwrap_or(authority);
    let host = host.strip_suffix(port).unwrap_or(host);
    authority.eq_ignore_ascii_case(host)
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2), or empty: a bracketed IP literal or a
/// reg-name (IPv4 addresses are reg-names too; RFC 3986 §3.2.2), then digits after a colon.
/// Checked byte by byte, one table lookup per byte of the usual name: this runs on every
/// request, and the `http` crate's authority parser would copy the value first (and would
/// also take user information and a port that is not digits, which a `Host` never carries).
fn is_host(value: &[u8]) -> bool {
    let Some(&first) = value.first() else {
        return true;
    };
    let (host_ok, port) = if first == b'[' {
        match value.iter().position(|&b| b == b']') {
            Some(end) => (is_ip_literal(&value[1..end]), &value[end + 1..]),
            None => return false,
        }
    } else {
        // A reg-name: every byte a name byte up to the colon, if any; the `%`s, rare, are
        // checked apart.
        let mut end = 0;
        let mut percent = false;
        while let Some(&b) = value.get(end) {
            if !REG_NAME[usize::from(b)] {
                break;
            }
            percent |= b == b'%';
            end += 1;
        }
        let (name, port) = value.split_at(end);
        (
            !name.is_empty() && (!percent || percent_encodings_ok(name)),
            port,
        )
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    host_ok && port_ok
}

/// The bytes of a reg-name: unreserved, sub-delims and `%` (its two hex digits are checked
/// apart, [`percent_encodings_ok`]).
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = is_unreserved(c) || is_sub_delim(c) || c == b'%';
        b += 1;
    }
    table
};

/// What goes between the brackets: an IPv6 address (hex digits, colons, and dots for an
/// embedded IPv4 address) or an `IPvFuture` (`v` hex "." then unreserved, sub-delims, ":").
fn is_ip_literal(literal: &[u8]) -> bool {
    match literal.split_first() {
        None => false,
        Some((b'v' | b'V', rest)) => {
            rest.contains(&b'.')
                && rest
                    .iter()
                    .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':')
        }
        Some(_) => literal
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
    }
}

/// Each `%` of a reg-name starts two hex digits (`pct-encoded`).
fn percent_encodings_ok(name: &[u8]) -> bool {
    let mut rest = name;
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        match rest.get(at + 1..at + 3) {
            Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                rest = &rest[at + 3..];
            }
            _ => return false,
        }
    }
    true
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().uri("/a.css").version(version);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn host_is_required_on_http_1_1_once_and_well_formed() {
        use Version as V;
        for (version, hosts, ok) in [
            (V::HTTP_11, &["cdn.example.com"][..], true),
            (V::HTTP_11, &["cdn.example.com:8080"], true),
            (V::HTTP_11, &["127.0.0.1:80"], true),
            (V::HTTP_11, &["[::1]:8080"], true),
            (V::HTTP_11, &[""], true),
            (V::HTTP_11, &[], false),
            (V::HTTP_11, &["a", "a"], false),
            (V::HTTP_11, &["a b"], false),
            (V::HTTP_11, &["a/b"], false),
            (V::HTTP_11, &["a:xyz"], false),
            (V::HTTP_11, &["user@a"], false),
            (V::HTTP_11, &[":80"], false),
            (V::HTTP_11, &["[::1"], false),
            (V::HTTP_11, &["[::1]x"], false),
            (V::HTTP_11, &["a:80:80"], false),
            (V::HTTP_11, &["a:"], true),
            (V::HTTP_11, &["xn--bcher-kva.example"], true),
            (V::HTTP_11, &["caf%C3%A9.example"], true),
            (V::HTTP_11, &["caf%C3"], true),
            (V::HTTP_11, &["a%zz"], false),
            (V::HTTP_11, &["a%2"], false),
            (V::HTTP_11, &["[v1.fe80::a+en1]"], true),
            (V::HTTP_11, &["[fe80::1%25en0]"], false),
            (V::HTTP_11, &["[]"], false),
            (V::HTTP_11, &["a\"b"], false),
            (V::HTTP_10, &[], true),
            (V::HTTP_10, &["a b"], false),
            (V::HTTP_2, &[], true),
        ] {
            let got = check(&req(version, hosts));
            assert_eq!(got.is_ok(), ok, "{version:?} {hosts:?}: {got:?}");
            if !ok {
                assert_eq!(got.unwrap_err().status(), StatusCode::BAD_REQUEST);
            }
        }
    }

    #[test]
    fn on_http_2_host_must_name_the_authority() {
        let with = |host: &str| {
            Request::builder()
                .uri("http://cdn.example.com/a.css")
                .version(Version::HTTP_2)
                .header(header::HOST, host)
                .body(())
                .unwrap()
        };
        assert_eq!(check(&with("cdn.example.com")), Ok(()));
        assert_eq!(check(&with("CDN.example.com")), Ok(()));
        assert_eq!(
            check(&with("cdn.example.com:80")),
            Ok(()),
            "the default port"
        );
        assert!(check(&with("cdn.example.com:8080")).is_err());
        assert!(check(&with("other.example.com")).is_err());
    }

    #[test]
    fn unknown_methods_and_too_many_fields_are_refused() {
        let mut r = req(Version::HTTP_11, &["a"]);
        *r.method_mut() = Method::from_bytes(b"FOO").unwrap();
        assert_eq!(check(&r), Err(Refusal::UnknownMethod));
        assert_eq!(Refusal::UnknownMethod.status(), StatusCode::NOT_IMPLEMENTED);
        for known in ["PUT", "DELETE", "PATCH", "TRACE", "POST", "OPTIONS"] {
            *r.method_mut() = Method::from_bytes(known.as_bytes()).unwrap();
            assert_eq!(check(&r), Ok(()), "{known}");
        }
        *r.method_mut() = Method::GET;
        for i in 0..MAX_FIELDS {
            r.headers_mut().append(
                format!("x-{i}").parse::<header::HeaderName>().unwrap(),
                "1".parse().unwrap(),
            );
        }
        assert_eq!(check(&r), Err(Refusal::TooManyFields));
        r.headers_mut().remove("x-0");
        assert_eq!(check(&r), Ok(()));
    }

    #[test]
    fn an_authority_in_the_target_must_be_a_host_and_port() {
        let with = |target: &str, version: Version| {
            Request::builder()
                .uri(target)
                .version(version)
                .header(header::HOST, "x")
                .body(())
                .unwrap()
        };
        for version in [Version::HTTP_10, Version::HTTP_11] {
            assert_eq!(check(&with("http://x/a.css", version)), Ok(()));
            assert_eq!(check(&with("http://x:8080/a.css", version)), Ok(()));
            assert_eq!(check(&with("http://[::1]:8080/a.css", version)), Ok(()));
            for bad in [
                "http://u@x/a.css",
                "http://u:p@x/a.css",
                "http://x:bad/a.css",
            ] {
                assert!(
                    matches!(check(&with(bad, version)), Err(Refusal::BadHost(_))),
                    "{bad}"
                );
            }
        }
        // HTTP/2's :authority too (its Host matches, so only the authority is wrong).
        let r = Request::builder()
            .uri("http://u@x/a.css")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        assert!(matches!(check(&r), Err(Refusal::BadHost(_))));
    }

    #[test]
    fn only_chunked_once_is_a_transfer_coding_we_take() {
        let with = |values: &[&str]| {
            let mut fields = HeaderMap::new();
            for v in values {
                fields.append(header::TRANSFER_ENCODING, v.parse().unwrap());
            }
            check_transfer_coding(&fields)
        };
        assert_eq!(with(&[]), Ok(()));
        assert_eq!(with(&["chunked"]), Ok(()));
        assert_eq!(with(&["Chunked"]), Ok(()));
        assert_eq!(with(&[" chunked ,"]), Ok(()));
        assert_eq!(
            with(&["gzip, chunked"]),
            Err(Refusal::UnknownTransferCoding)
        );
        assert_eq!(
            with(&["gzip", "chunked"]),
            Err(Refusal::UnknownTransferCoding)
        );
        assert_eq!(with(&["chunked;a=b"]), Err(Refusal::UnknownTransferCoding));
        assert_eq!(with(&["chunked, chunked"]), Err(Refusal::ChunkedTwice));
        assert_eq!(with(&["chunked", "chunked"]), Err(Refusal::ChunkedTwice));
        assert_eq!(
            Refusal::UnknownTransferCoding.status(),
            StatusCode::NOT_IMPLEMENTED
        );
    }
}
