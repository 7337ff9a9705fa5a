//! Zero-copy bodies over real sockets (`src/sendfile`): cached bodies over 16 KiB and up to
//! 96 KiB reach HTTP/1 clients through `sendfile`, whole, in ranges, pipelined, to a slow
//! reader, and after the memory they were sent from has been given to another body; smaller
//! and larger bodies, and all of them with `sendfile` off, are copied.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `cdn_origin_sendfile_bytes_total` of `srv`.
fn sendfile_bytes(srv: &TestServer) -> u64 {
    srv.app
        .metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix("cdn_origin_sendfile_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the sendfile counter is exposed")
}

/// The sendfile counter once it has reached `min` (or after 5 s): the server counts a write
/// after it returns, which may be after the client has read its bytes.
async fn sendfile_bytes_once(srv: &TestServer, min: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sendfile_bytes(srv) < min && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sendfile_bytes(srv)
}

/// Reads one response from `s` (with `pending`, bytes already read past the previous one):
/// its head, and its body by Content-Length (none for a HEAD).
async fn response(s: &mut TcpStream, pending: &mut Vec<u8>, head_only: bool) -> (String, Vec<u8>) {
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside a head");
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    let len = if head_only { 0 } else { len };
    while pending.len() < head_end + len {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside a body");
        pending.extend_from_slice(&chunk[..n]);
    }
    let body = pending[head_end..head_end + len].to_vec();
    pending.drain(..head_end + len);
    (head, body)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn site() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let big = bytes_of(90_000, 3);
    let br = bytes_of(40_000, 4);
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    std::fs::write(dir.path().join("large.bin"), bytes_of(200_000, 5)).unwrap();
    std::fs::write(dir.path().join("site.css"), css_of(100_000)).unwrap();
    std::fs::write(dir.path().join("site.css.br"), &br).unwrap();
    std::fs::write(dir.path().join("small.txt"), b"small").unwrap();
    (dir, big, br)
}

#[tokio::test]
async fn cached_bodies_go_out_with_sendfile_whole_in_ranges_and_pipelined() {
    let (dir, big, br) = site();
    let srv = start(args(dir.path()), None).await;
    assert!(srv.app.arena.is_some(), "sendfile is on by default");
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // Pipelined requests in one write: a miss, a hit, a range, two ranges (multipart: the
    // parts' heads are copied between the parts' bodies), a precompressed sidecar and a HEAD;
    // then a small body and a large one, which are copied.
    let requests = "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-50999\r\n\r\n\
         GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-19999,40000-69999\r\n\r\n\
         GET /site.css HTTP/1.1\r\nHost: t\r\nAccept-Encoding: br\r\n\r\n\
         HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /large.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    s.write_all(requests.as_bytes()).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..2 {
        let (head, body) = response(&mut s, &mut pending, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body == big, "whole body differs");
    }
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(body == big[1000..51_000], "range differs");
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.contains("multipart/byteranges"), "{head}");
    let first = find(&body, &big[..20_000]).expect("first part");
    let second = find(&body, &big[40_000..70_000]).expect("second part");
    assert!(first < second);
    let between = String::from_utf8_lossy(&body[first + 20_000..second]).to_ascii_lowercase();
    assert!(
        between.contains("content-range: bytes 40000-69999/90000"),
        "{between}"
    );
    let (head, body) = response(&mut s, &mut pending, false).await;
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(body == br, "sidecar differs");
    let (head, _) = response(&mut s, &mut pending, true).await;
    assert!(head.contains("content-length: 90000"), "{head}");
    let (_, body) = response(&mut s, &mut pending, false).await;
    assert_eq!(body, b"small");
    let (_, body) = response(&mut s, &mut pending, false).await;
    assert!(body == bytes_of(200_000, 5), "large body differs");
    // Every body over 16 KiB and up to 96 KiB, and only those, went through sendfile.
    assert_eq!(sendfile_bytes(&srv), 2 * 90_000 + 50_000 + 50_000 + 40_000);
    // HTTP/2 clients get the same bytes; its default 16 KiB frames are copied as before.
    let got = h2_client().get(srv.url("/big.bin")).send().await.unwrap();
    assert_eq!(got.version(), reqwest::Version::HTTP_2);
    assert!(got.bytes().await.unwrap() == big);
    let before = 2 * 90_000 + 50_000 + 50_000 + 40_000;
    assert_eq!(sendfile_bytes(&srv), before);
    // A client that allows 1 MiB frames and windows gets the body in large DATA frames, whose
    // payloads over 16 KiB go out with sendfile after the frame's head, as on HTTP/1 (how h2
    // splits the body into frames is its own: in one run 89,963 bytes went with sendfile).
    let h2_large_frames = reqwest::Client::builder()
        .http2_prior_knowledge()
        .http2_max_frame_size(1 << 20)
        .http2_initial_stream_window_size(1 << 20)
        .http2_initial_connection_window_size(1 << 20)
        .build()
        .unwrap();
    let got = h2_large_frames
        .get(srv.url("/big.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.version(), reqwest::Version::HTTP_2);
    assert!(got.bytes().await.unwrap() == big);
    let sent = sendfile_bytes_once(&srv, before + 64 * 1024).await - before;
    assert!((64 * 1024..=90_000).contains(&sent), "{sent}");
    srv.stop().await;
}

#[tokio::test]
async fn with_sendfile_off_the_same_bodies_are_copied() {
    let (dir, big, _) = site();
    let mut a = args(dir.path());
    a.sendfile = Some(false);
    let srv = start(a, None).await;
    assert!(srv.app.arena.is_none());
    for _ in 0..2 {
        let got = client().get(srv.url("/big.bin")).send().await.unwrap();
        assert!(got.bytes().await.unwrap() == big);
    }
    assert_eq!(sendfile_bytes(&srv), 0);
    srv.stop().await;
}

#[tokio::test]
async fn a_slow_reader_with_a_small_window_gets_every_byte() {
    // Sixty pipelined 96 KiB responses (5.6 MiB) to a client with a 4 KiB receive buffer that
    // waits before reading and then reads slowly: the server's socket buffer fills, so
    // sendfile writes parts of bodies and finds the socket full, many times over.
    const RESPONSES: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let body = bytes_of(96 * 1024, 9);
    std::fs::write(dir.path().join("clip.bin"), &body).unwrap();
    let srv = start(args(dir.path()), None).await;
    // Cached first, so every response is sent from the arena.
    let warm = client().get(srv.url("/clip.bin")).send().await.unwrap();
    assert!(warm.bytes().await.unwrap() == body);
    let before = sendfile_bytes(&srv);

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(srv.addr).await.unwrap();
    let request = "GET /clip.bin HTTP/1.1\r\nHost: t\r\n\r\n".repeat(RESPONSES);
    s.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut pending = Vec::new();
    for i in 0..RESPONSES {
        let (head, got) = response(&mut s, &mut pending, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(got == body, "response {i} differs");
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // After a partial write, what is left of a body is sent with sendfile only while it is
    // over 16 KiB; a smaller rest is copied, like any small slice.
    let all = (RESPONSES * body.len()) as u64;
    let sent = sendfile_bytes_once(&srv, before + all).await - before;
    let copied_at_most = (RESPONSES * 16 * 1024) as u64;
    assert!(
        sent <= all && sent + copied_at_most >= all,
        "{sent} of {all} bytes with sendfile"
    );
    srv.stop().await;
}

#[tokio::test]
async fn bytes_in_flight_are_unchanged_when_their_memory_goes_to_another_body() {
    // A client that has not read its response yet, while the server has finished writing it:
    // the body's range is freed (its entry purged, the response done) and the next body is
    // written into the same part of the memory file. The unread bytes must still be the first
    // body's, since the socket holds the pages it was given, not the file's range.
    let token = "0123456789abcdef-token";
    let dir = tempfile::tempdir().unwrap();
    let first = bytes_of(40_000, 1);
    let second = bytes_of(40_000, 2);
    std::fs::write(dir.path().join("first.bin"), &first).unwrap();
    std::fs::write(dir.path().join("second.bin"), &second).unwrap();
    let mut a = args(dir.path());
    a.purge_token = Some(token.into());
    let srv = start(a, None).await;
    let arena = srv.app.arena.clone().expect("an arena");

    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /first.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // The 40 KB fit in the socket buffers, so the server finishes writing without the client
    // reading. Wait until the body is in the arena (cached and being sent).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while arena.held() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never cached");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let one_body = arena.held();
    assert!(one_body >= 40_000, "the first body is in the arena");
    let (_, text) = purge(&srv, token, r#"{"path":"/first.bin"}"#).await;
    assert_eq!(text, r#"{"purged":1}"#);
    // Released once the entry is purged and the response is done with it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while arena.held() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first body was never released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = client().get(srv.url("/second.bin")).send().await.unwrap();
    assert!(got.bytes().await.unwrap() == second);
    assert_eq!(
        arena.held(),
        one_body,
        "the second body took the freed range"
    );

    let mut pending = Vec::new();
    let (head, body) = response(&mut slow, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == first, "bytes in flight changed");
    srv.stop().await;
}
