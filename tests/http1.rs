//! Our HTTP/1 layer (`src/server/http1`) against hyper's, over real sockets: the same raw
//! requests sent to a server with the layer on (the default) and to one with it off must get
//! the same bytes back, but for the `date` values; and what the layer writes holds on its own
//! (framing, `HEAD`, `304`, `connection: close`, pipelining, hand-off to hyper mid-connection,
//! shutdown).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` on a fresh connection and reads until the server closes it (or 5 s).
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

/// The response bytes as text, with what differs between two servers by design replaced by
/// markers: `date` values, multipart boundaries (random) and `Cache-Status` TTLs (counting
/// down).
fn comparable(raw: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(raw).into_owned();
    if let Some(at) = text.find("boundary=") {
        let start = at + "boundary=".len();
        let end = text[start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(text.len(), |n| start + n);
        let boundary = text[start..end].to_string();
        text = text.replace(&boundary, "<boundary>");
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    let next = |r: &str| {
        [r.find("\r\ndate: "), r.find("; ttl=")]
            .into_iter()
            .flatten()
            .min()
    };
    while let Some(at) = next(rest) {
        let (marker, skip) = if rest[at..].starts_with("; ttl=") {
            let digits = rest[at + 6..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(0);
            ("; ttl=<ttl>", 6 + digits)
        } else {
            ("\r\ndate: <date>", "\r\ndate: ".len() + 29)
        };
        out.push_str(&rest[..at]);
        out.push_str(marker);
        rest = &rest[(at + skip).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// A server with our layer and one without on the same files; `cache_max_object` small
/// makes every body but the smallest a store stream, and compressible ones compression
/// streams of unknown length (chunked).
async fn pair(cache_max_object: Option<&str>) -> (tempfile::TempDir, TestServer, TestServer) {
    let dir = common::local_fixtures();
    let args = || {
        let mut args = common::args(dir.path());
        args.cache_max_object = cache_max_object.map(|s| s.parse().unwrap());
        args
    };
    let ours = common::start(args(), None).await;
    let mut without = args();
    without.fast_http1 = Some(false);
    let hyper = common::start(without, None).await;
    (dir, ours, hyper)
}

/// Requests of every kind, each ending its connection: the last request of each says
/// `Connection: close`, or is one that hyper answers by closing.
fn requests() -> Vec<Vec<u8>> {
    let close = "Host: t\r\nConnection: close\r\n\r\n";
    let mut list: Vec<String> = vec![
        format!("GET /hello.txt HTTP/1.1\r\n{close}"),
        format!("HEAD /style.css HTTP/1.1\r\n{close}"),
        format!("GET /style.css HTTP/1.1\r\n{close}"),
        format!("GET /style.css HTTP/1.1\r\nAccept-Encoding: gzip\r\n{close}"),
        format!("GET /style.css HTTP/1.1\r\nAccept-Encoding: br;q=1, zstd;q=0.5\r\n{close}"),
        format!("GET /style.css HTTP/1.1\r\nIf-None-Match: *\r\n{close}"),
        format!("HEAD /style.css HTTP/1.1\r\nIf-None-Match: *\r\n{close}"),
        format!("GET /style.css HTTP/1.1\r\nOrigin: https://a.example\r\n{close}"),
        format!("GET /private/report.txt HTTP/1.1\r\n{close}"),
        format!("GET /empty.txt HTTP/1.1\r\n{close}"),
        format!("HEAD /empty.txt HTTP/1.1\r\n{close}"),
        format!("GET /missing.txt HTTP/1.1\r\n{close}"),
        format!("HEAD /missing.txt HTTP/1.1\r\n{close}"),
        format!("GET /data.bin HTTP/1.1\r\nRange: bytes=0-99\r\n{close}"),
        format!("GET /data.bin HTTP/1.1\r\nRange: bytes=0-1,5-6\r\n{close}"),
        format!("GET /data.bin HTTP/1.1\r\nRange: bytes=200000-\r\n{close}"),
        format!("GET /video/clip.mp4 HTTP/1.1\r\nRange: bytes=1000000-1099999\r\n{close}"),
        format!("GET /video/clip.mp4 HTTP/1.1\r\n{close}"),
        format!("GET /docs HTTP/1.1\r\n{close}"),
        format!("GET /docs/ HTTP/1.1\r\n{close}"),
        format!("GET /naïve%20café.txt HTTP/1.1\r\n{close}"),
        format!("GET /.env HTTP/1.1\r\n{close}"),
        format!("GET /../etc/passwd HTTP/1.1\r\n{close}"),
        format!("GET /health HTTP/1.1\r\n{close}"),
        format!("HEAD /health HTTP/1.1\r\n{close}"),
        format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, close\r\n\r\n"),
        // Pipelined: ours, then hyper's from the POST on, in order.
        format!(
            "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nHEAD /index.html HTTP/1.1\r\nHost: t\r\n\r\n\
             POST /_admin/purge HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{{}}\
             GET /img/logo.png HTTP/1.1\r\n{close}"
        ),
        format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /hello.txt HTTP/1.0\r\n\r\n"),
        // The HTTP/2 preface counts only as a connection's first bytes.
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_string(),
        // Handed over: HTTP/1.0, a body, other methods and forms, bad heads.
        "GET /hello.txt HTTP/1.0\r\n\r\n".to_string(),
        format!("GET /hello.txt HTTP/1.1\r\nContent-Length: 0\r\n{close}"),
        format!("OPTIONS /hello.txt HTTP/1.1\r\n{close}"),
        format!("OPTIONS * HTTP/1.1\r\n{close}"),
        format!("DELETE /hello.txt HTTP/1.1\r\n{close}"),
        format!("GET http://t/hello.txt HTTP/1.1\r\n{close}"),
        format!("GET /hello.txt HTTP/1.1\r\nExpect: 100-continue\r\n{close}"),
        format!("GET /hello.txt HTTP/1.1\r\nTransfer-Encoding: chunked\r\n{close}0\r\n\r\n"),
        "GET /hello.txt HTTP/1.1\r\nBad Header: x\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n".to_string(),
        "GARBAGE\r\n\r\n".to_string(),
        // A target of 60,000 bytes, within the head limit: the path's 414 on both.
        format!("GET /{} HTTP/1.1\r\n{close}", "a".repeat(60_000)),
        format!(
            "GET /hello.txt HTTP/1.1\r\n{}{close}",
            "X-Many: y\r\n".repeat(101)
        ),
    ];
    list.push(format!(
        "GET /hello.txt HTTP/1.1\r\nX-Big: {}\r\n{close}",
        "b".repeat(70_000)
    ));
    list.into_iter().map(String::into_bytes).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_layer_answers_byte_for_byte_as_hyper_does() {
    same_bytes(None).await;
}

/// The one answer that differs on purpose: a request line longer than the whole head may be
/// is a 414 from our layer (RFC 9112 §3), where hyper answers 431 for the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_line_past_the_head_limit_is_414_here_and_431_from_hyper() {
    let (_dir, ours, hyper) = pair(None).await;
    let request = format!(
        "GET /{} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "a".repeat(70_000)
    );
    let a = String::from_utf8_lossy(&exchange(ours.addr, request.as_bytes()).await).into_owned();
    let b = String::from_utf8_lossy(&exchange(hyper.addr, request.as_bytes()).await).into_owned();
    assert!(a.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{a}");
    assert!(a.contains("\r\nconnection: close\r\n"), "{a}");
    assert!(b.starts_with("HTTP/1.1 431 "), "{b}");
    ours.stop().await;
    hyper.stop().await;
}

/// Versions `httparse` (and so hyper) refuses with a 400: a later minor version of HTTP/1 is
/// served as HTTP/1.1 (RFC 9110 §2.5), pipelined too and also when handed to hyper for its
/// method; another major version is a 505 (RFC 9110 §15.6.6). Malformed versions stay 400s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_minor_version_is_served_as_1_1_and_another_major_is_505() {
    let (_dir, ours, hyper) = pair(None).await;
    let text = |raw: Vec<u8>| String::from_utf8_lossy(&raw).into_owned();

    let later = "GET /hello.txt HTTP/1.2\r\nHost: t\r\n\r\nHEAD /hello.txt HTTP/1.9\r\nHost: t\r\n\r\n\
                 OPTIONS /hello.txt HTTP/1.3\r\nHost: t\r\nConnection: close\r\n\r\n";
    let same = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nHEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n\
                OPTIONS /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    // Cached first, so that both are answered from the hot cache.
    exchange(
        ours.addr,
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    let b = text(exchange(ours.addr, same.as_bytes()).await);
    let a = text(exchange(ours.addr, later.as_bytes()).await);
    assert_eq!(comparable(a.as_bytes()), comparable(b.as_bytes()));
    assert_eq!(a.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{a}");
    assert!(a.contains("HTTP/1.1 204 No Content\r\n"), "{a}");

    for version in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
        let request = format!("GET /hello.txt {version}\r\nHost: t\r\n\r\n");
        let a = text(exchange(ours.addr, request.as_bytes()).await);
        assert!(
            a.starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"),
            "{version}: {a}"
        );
        assert!(a.contains("\r\nconnection: close\r\n"), "{a}");
        assert!(a.ends_with("http version not supported\n"), "{a}");
        // Without our layer, hyper's parser refuses the line as malformed.
        let b = text(exchange(hyper.addr, request.as_bytes()).await);
        assert!(b.starts_with("HTTP/1.1 400 "), "{version}: {b}");
    }
    for malformed in ["HTTP/1.10", "HTTP/2", "http/1.1", "HTTP/x.y"] {
        let request = format!("GET /hello.txt {malformed}\r\nHost: t\r\n\r\n");
        let a = text(exchange(ours.addr, request.as_bytes()).await);
        assert!(a.starts_with("HTTP/1.1 400 "), "{malformed}: {a}");
    }
    ours.stop().await;
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_and_chunked_bodies_are_byte_for_byte_hypers_too() {
    same_bytes(Some("1KiB")).await;
}

async fn same_bytes(cache_max_object: Option<&str>) {
    let (_dir, ours, hyper) = pair(cache_max_object).await;
    // Twice: the second round finds every object cached, with its fields prepared (shared
    // by the responses: `response::SharedFields`).
    for request in requests().into_iter().chain(requests()) {
        let a = exchange(ours.addr, &request).await;
        let b = exchange(hyper.addr, &request).await;
        let shown = String::from_utf8_lossy(&request[..request.len().min(200)]).into_owned();
        assert!(!b.is_empty(), "hyper answered nothing to {shown:?}");
        assert_eq!(
            comparable(&a),
            comparable(&b),
            "different answers to {shown:?}"
        );
    }
    ours.stop().await;
    hyper.stop().await;
}

/// Where the first response head in `raw` ends (after its blank line).
fn head_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4
}

/// Splits raw responses at their heads; returns (head, body) pairs, bodies by content-length.
fn responses(mut raw: &[u8], heads: &[bool]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for &is_head in heads {
        let end = head_end(raw);
        let head = String::from_utf8(raw[..end].to_vec()).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let body_len = if is_head || head.starts_with("HTTP/1.1 304") {
            0
        } else {
            len
        };
        out.push((head, raw[end..end + body_len].to_vec()));
        raw = &raw[end + body_len..];
    }
    assert!(
        raw.is_empty(),
        "left over: {:?}",
        String::from_utf8_lossy(raw)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_get_their_answers_in_order_and_framed() {
    let dir = common::local_fixtures();
    let srv = common::start(common::args(dir.path()), None).await;
    let style = std::fs::read(dir.path().join("style.css")).unwrap();
    let tag = {
        let res = common::client()
            .get(srv.url("/style.css"))
            .send()
            .await
            .unwrap();
        res.headers()["etag"].to_str().unwrap().to_string()
    };
    let request = format!(
        "GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n\
         HEAD /style.css HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /style.css HTTP/1.1\r\nHost: t\r\nIf-None-Match: {tag}\r\n\r\n\
         GET /nope HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    let raw = exchange(srv.addr, request.as_bytes()).await;
    let got = responses(&raw, &[false, true, false, false, false]);
    assert!(got[0].0.starts_with("HTTP/1.1 200 OK\r\n"), "{}", got[0].0);
    assert_eq!(got[0].1, style);
    assert!(
        got[1]
            .0
            .contains(&format!("content-length: {}\r\n", style.len()))
    );
    assert!(got[1].1.is_empty());
    assert!(got[2].0.starts_with("HTTP/1.1 304 Not Modified\r\n"));
    assert!(!got[2].0.contains("content-length"), "{}", got[2].0);
    assert!(got[2].0.contains(&format!("etag: {tag}\r\n")));
    assert!(got[3].0.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(got[4].0.contains("\r\nconnection: close\r\n"));
    assert_eq!(got[4].1, b"hello, world\n");
    for (head, _) in &got {
        assert_eq!(head.matches("\r\ndate: ").count(), 1, "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        assert_eq!(
            head.matches("\r\nconnection:").count(),
            usize::from(head.contains("close"))
        );
    }
    srv.stop().await;
}

/// A body compressed as it is sent has no length: it goes out chunked, and decodes whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_unknown_length_is_sent_chunked() {
    let dir = common::local_fixtures();
    // Too big to cache (and so to hold a compressed copy of known length): compressed as it
    // is sent.
    let mut args = common::args(dir.path());
    args.cache_max_object = Some("1KiB".parse().unwrap());
    let srv = common::start(args, None).await;
    let style = std::fs::read(dir.path().join("style.css")).unwrap();
    let raw = exchange(
        srv.addr,
        b"GET /style.css HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .await;
    let end = head_end(&raw);
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let mut body = Vec::new();
    let mut rest = &raw[end..];
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let digits = std::str::from_utf8(&rest[..line_end]).unwrap();
        // hyper's form: upper-case hex, no extensions.
        assert!(
            digits
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
            "{digits:?}"
        );
        let size = usize::from_str_radix(digits, 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            assert_eq!(rest, b"\r\n", "the last chunk ends the message");
            break;
        }
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, style);
    srv.stop().await;
}

use std::io::Read as _;

/// Asks for /hello.txt on `s` (answered by our layer) and reads the answer's start; the
/// connection stays open.
async fn get_hello_keeping_the_connection(s: &mut TcpStream) {
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = s.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK"));
}

/// On shutdown, a connection waiting between requests closes at once, and one being answered
/// gets its whole answer before it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_finishes_answers() {
    let dir = common::local_fixtures();
    let mut args = common::args(dir.path());
    args.cache_size = Some("0".parse().unwrap());
    let srv = common::start(args, None).await;
    let clip = std::fs::read(dir.path().join("video/clip.mp4")).unwrap();

    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    get_hello_keeping_the_connection(&mut idle).await;

    // A 2 MB answer that this client reads only after the shutdown began.
    let mut busy = TcpStream::connect(srv.addr).await.unwrap();
    busy.write_all(b"GET /video/clip.mp4 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut srv = srv;
    let stopped = srv.signal_stop();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the idle connection is closed: {closed:?}"
    );

    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), busy.read_to_end(&mut raw))
        .await
        .expect("the answer ends")
        .unwrap();
    let got = responses(&raw, &[false]);
    assert_eq!(got[0].1, clip);
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("the server drained")
        .unwrap();
}

/// A request handed to hyper while the server shuts down (its head begun before the shutdown,
/// finished after) is answered, not dropped: on a fresh connection, and on one where our
/// layer answered a request first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_handed_to_hyper_during_shutdown_is_answered() {
    let dir = common::local_fixtures();
    for answered_first in [false, true] {
        let mut srv = common::start(common::args(dir.path()), None).await;
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        if answered_first {
            get_hello_keeping_the_connection(&mut s).await;
        }
        // HTTP/1.0: not ours.
        s.write_all(b"GET /hello.txt HTTP/1.0\r\nHost: t\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopped = srv.signal_stop();
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(b"\r\n").await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
            .await
            .expect("answered and closed")
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.starts_with("HTTP/1.0 200 OK\r\n"),
            "{answered_first}: {text}"
        );
        assert!(text.ends_with("hello, world\n"), "{answered_first}: {text}");
        tokio::time::timeout(Duration::from_secs(5), stopped)
            .await
            .expect("drained")
            .unwrap();
    }
}

/// Sends a `Connection: close` request for `target`, and more bytes once the answer begins
/// that the server will never read, and reads the answer slowly; returns the body bytes received and whether
/// the connection ended with a reset.
async fn close_with_unread_bytes(addr: SocketAddr, target: &str) -> (usize, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let reset = loop {
        match s.read(&mut buf).await {
            Ok(0) => break false,
            Ok(n) => {
                // Once the answer has begun, the next request (pipelined, as if the client
                // had missed the `connection: close`): the server never reads it.
                if got.is_empty() {
                    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
                        .await
                        .unwrap();
                }
                got.extend_from_slice(&buf[..n]);
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                break true;
            }
        }
        // About 6 MB/s: the server's last write finds most of the body still queued.
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    (got.len().saturating_sub(head_end(&got)), reset)
}

/// A close while the client still has bytes on the way (a pipelined request after
/// `Connection: close`, the rest of a body) is a lingering one: the server reads and discards
/// them until the client closes, so the kernel does not answer them with a reset, which would
/// drop the part of the response not yet delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_with_unread_client_bytes_still_delivers_the_whole_response() {
    const SIZE: usize = 12 * 1024 * 1024;
    let dir = common::local_fixtures();
    std::fs::write(dir.path().join("large.bin"), vec![7u8; SIZE]).unwrap();
    for fast in [true, false] {
        let mut args = common::args(dir.path());
        args.fast_http1 = Some(fast);
        let srv = common::start(args, None).await;
        let (body, reset) = close_with_unread_bytes(srv.addr, "/large.bin").await;
        assert!(!reset, "fast_http1 {fast}: reset after {body} bytes");
        assert_eq!(body, SIZE, "fast_http1 {fast}");
        srv.stop().await;
    }
}
