//! Issue 5 over real sockets: metrics figures from a known sequence of requests, the health
//! endpoints with and without a database, a database that is unreachable, and `/metrics`
//! passing `promtool check metrics` when promtool is installed.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

async fn json(srv: &TestServer, path: &str) -> (u16, Value) {
    let res = client().get(srv.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    (
        status,
        serde_json::from_str(&res.text().await.unwrap()).unwrap(),
    )
}

fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn ten_misses_then_ninety_hits_give_a_hit_ratio_of_point_nine_and_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        std::fs::write(
            dir.path().join(format!("f{i}.bin")),
            bytes_of(1000 + i, i as u8),
        )
        .unwrap();
    }
    let srv = start(args(dir.path()), None).await;
    let c = client();
    let mut expected_bytes = 0u64;
    for round in 0..10 {
        for i in 0..10 {
            let body = c
                .get(srv.url(&format!("/f{i}.bin")))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(body.len(), 1000 + i);
            expected_bytes += body.len() as u64;
            let _ = round;
        }
    }
    let (status, detail) = json(&srv, "/health/detailed").await;
    assert_eq!(status, 200);
    let traffic = &detail["traffic"];
    assert_eq!(traffic["requests"]["misses"], 10);
    assert_eq!(traffic["requests"]["hits"], 90);
    assert!((traffic["hit_ratio"]["since_start"].as_f64().unwrap() - 0.9).abs() < 1e-9);
    assert!((traffic["hit_ratio"]["last_1m"].as_f64().unwrap() - 0.9).abs() < 1e-9);
    assert_eq!(traffic["bytes_sent"], expected_bytes);
    let text = srv.text("/metrics").await;
    assert_eq!(
        metric_sum(&text, "cdn_origin_requests_total", "cache=\"hit\""),
        90.0
    );
    assert_eq!(
        metric_sum(&text, "cdn_origin_requests_total", "cache=\"miss\""),
        10.0
    );
    assert_eq!(
        metric_sum(
            &text,
            "cdn_origin_response_body_bytes_total",
            "status=\"2xx\""
        ),
        expected_bytes as f64
    );

    // A 304 saves the bytes the 200 would have sent.
    let etag = c.get(srv.url("/f3.bin")).send().await.unwrap().headers()["etag"].clone();
    let res = c
        .get(srv.url("/f3.bin"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    let text = srv.text("/metrics").await;
    assert_eq!(
        metric_sum(
            &text,
            "cdn_origin_saved_bytes_total",
            "reason=\"not_modified\""
        ),
        1003.0
    );
    srv.stop().await;
}

/// An object too big to keep compresses as a stream, whose length nobody knows when the
/// request is recorded: its bytes are counted as they are sent, and what compression saved
/// when it ends.
#[tokio::test]
async fn a_compression_stream_counts_its_bytes_sent_and_saved() {
    let dir = tempfile::tempdir().unwrap();
    let original = css_of(600_000);
    std::fs::write(dir.path().join("big.css"), &original).unwrap();
    let mut a = args(dir.path());
    a.cache_max_object = Some("64KiB".parse().unwrap());
    let srv = start(a, None).await;
    let c = client();
    let mut sent = 0u64;
    for _ in 0..2 {
        let res = c
            .get(srv.url("/big.css"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["content-encoding"], "gzip");
        assert!(res.headers().get("content-length").is_none(), "a stream");
        let body = res.bytes().await.unwrap();
        assert!(body.len() < original.len() / 2);
        sent += body.len() as u64;
    }
    let saved = 2 * original.len() as u64 - sent;
    let text = srv.text("/metrics").await;
    assert_eq!(
        metric_sum(
            &text,
            "cdn_origin_response_body_bytes_total",
            "class=\"css_js\""
        ),
        sent as f64
    );
    assert_eq!(
        metric_sum(
            &text,
            "cdn_origin_saved_bytes_total",
            "reason=\"compression\""
        ),
        saved as f64
    );
    let (_, detail) = json(&srv, "/health/detailed").await;
    assert_eq!(detail["traffic"]["bytes_sent"], sent);
    srv.stop().await;
}

#[tokio::test]
async fn health_endpoints_report_ok_and_database_not_configured() {
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    let (status, live) = json(&srv, "/health").await;
    assert_eq!((status, live["status"].as_str()), (200, Some("ok")));
    let (status, ready) = json(&srv, "/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "ok");
    let (_, detail) = json(&srv, "/health/detailed").await;
    assert_eq!(detail["database"], "not configured");
    assert_eq!(detail["stores"][0]["ok"], true);
    assert!(detail["cache"]["budget"].as_u64().unwrap() > 0);
    assert_eq!(detail["breakers"][0]["state"], "closed");
    srv.stop().await;
}

#[tokio::test]
async fn an_unreachable_database_degrades_but_objects_keep_being_served() {
    let dir = local_fixtures();
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut a = args(dir.path());
    a.database_url = Some(format!("postgres://postgres@127.0.0.1:{dead_port}/test"));
    a.health_interval = Some(cdn_origin::config::Seconds(Duration::from_millis(200)));
    let srv = start(a, None).await;
    let res = client().get(srv.url("/hello.txt")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, detail) = json(&srv, "/health/detailed").await;
    assert_eq!(status, 200);
    assert_eq!(detail["status"], "degraded", "{detail}");
    let (status, _) = json(&srv, "/health/ready").await;
    assert_eq!(
        status, 200,
        "a dead database does not take the server out of rotation"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_real_database_reports_its_pool() {
    let url = match std::env::var("DATABASE_URL_TEST") {
        Ok(u) => u,
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("DATABASE_URL_TEST is not set but CI is")
        }
        Err(_) => {
            eprintln!("skipping: DATABASE_URL_TEST is not set (scripts/test.sh sets it)");
            return;
        }
    };
    let dir = local_fixtures();
    let mut a = args(dir.path());
    a.database_url = Some(url);
    a.health_interval = Some(cdn_origin::config::Seconds(Duration::from_millis(200)));
    let srv = start(a, None).await;
    let mut detail = Value::Null;
    for _ in 0..50 {
        detail = json(&srv, "/health/detailed").await.1;
        if detail["status"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(detail["status"], "ok", "{detail}");
    let db = &detail["database"];
    assert!(db.is_object(), "{db}");
    srv.stop().await;
}

#[tokio::test]
async fn metrics_pass_promtool() {
    if std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var_os("CI").is_some() {
            panic!("promtool is missing but CI is set (scripts/setup.sh installs prometheus)");
        }
        eprintln!("skipping: promtool is not installed");
        return;
    }
    let dir = local_fixtures();
    let srv = start(args(dir.path()), None).await;
    for p in [
        "/hello.txt",
        "/style.css",
        "/nope",
        "/img/logo.png",
        "/hello.txt",
    ] {
        client()
            .get(srv.url(p))
            .header("accept-encoding", "br")
            .send()
            .await
            .unwrap();
    }
    let text = srv.text("/metrics").await;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    srv.stop().await;
}

/// `cdn_origin_connections_closed_total{reason}` from the server's own registry.
fn closed(srv: &TestServer, reason: &str) -> f64 {
    let text = srv.app.metrics.encode();
    metric_sum(
        &text,
        "cdn_origin_connections_closed_total",
        &format!("reason=\"{reason}\""),
    )
}

/// Waits (up to 5 s) until `reason` has counted `n` connections.
async fn until_closed(srv: &TestServer, reason: &str, n: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while closed(srv, reason) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{reason}: {} of {n} in 5 s; all: {:?}",
            closed(srv, reason),
            srv.app
                .metrics
                .encode()
                .lines()
                .filter(|l| l.starts_with("cdn_origin_connections_closed_total"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(closed(srv, reason), n, "{reason}");
}

/// Reads from `s` until the server closes it (or 10 s pass); what it sent.
async fn read_until_closed(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens a connection, sends `bytes` and keeps it open until the server closes it; what the
/// server sent.
async fn send_and_wait_for_close(srv: &TestServer, bytes: &[u8]) -> String {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_until_closed(&mut s).await
}

#[tokio::test]
async fn every_way_a_connection_ends_is_counted_by_its_reason() {
    connection_ends_are_counted(true).await;
}

#[tokio::test]
async fn every_way_a_connection_ends_is_counted_through_hyper_alone() {
    connection_ends_are_counted(false).await;
}

/// Each way a connection can end, once, with our HTTP/1 layer or with hyper alone.
async fn connection_ends_are_counted(fast_http1: bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let dir = local_fixtures();
    std::fs::write(dir.path().join("big.bin"), bytes_of(32 << 20, 9)).unwrap();
    let mut a = args(dir.path());
    a.header_read_timeout = Some("1s".parse().unwrap());
    a.idle_timeout = Some("1s".parse().unwrap());
    a.fast_http1 = Some(fast_http1);
    let srv = start(a, None).await;

    // Closed in good order: the client asked for it.
    let got = send_and_wait_for_close(
        &srv,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"));
    until_closed(&srv, "closed", 1.0).await;

    // A head that cannot be parsed: hyper answers 400; the router never sees it.
    let got =
        send_and_wait_for_close(&srv, b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n").await;
    assert!(got.starts_with("HTTP/1.1 400"));
    until_closed(&srv, "bad_request", 1.0).await;

    // A head that never completes (slowloris).
    let got = send_and_wait_for_close(&srv, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert_eq!(got, "");
    until_closed(&srv, "header_timeout", 1.0).await;

    // A keep-alive connection left idle after its answer.
    let got = send_and_wait_for_close(&srv, b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(got.starts_with("HTTP/1.1 200"));
    until_closed(&srv, "idle_timeout", 1.0).await;

    // A client that leaves in the middle of a 32 MiB body (more than loopback's socket
    // buffers hold): closing with unread bytes resets the connection while the server is
    // still writing, and its next write fails.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    s.read_exact(&mut first).await.unwrap();
    drop(s);
    until_closed(&srv, "client_gone", 1.0).await;

    // HTTP/2 that breaks the protocol: after the preface and an empty SETTINGS frame, a DATA
    // frame on stream 0.
    send_and_wait_for_close(&srv, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00").await;
    until_closed(&srv, "protocol", 1.0).await;

    // An HTTP/2 connection left idle after a request: the idle deadline, as for HTTP/1. (One
    // that never sends a request ends at the first-request deadline: `header_timeout`.)
    let h2 = h2_client();
    let res = h2.get(srv.url("/hello.txt")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.text().await.unwrap(), "hello, world\n");
    until_closed(&srv, "idle_timeout", 2.0).await;
    drop(h2);

    // A client that closes in the middle of a request head.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    until_closed(&srv, "client_gone", 2.0).await;

    // Nothing else was counted, and every accepted connection is accounted for.
    let text = srv.app.metrics.encode();
    let ended = metric_sum(&text, "cdn_origin_connections_closed_total", "");
    assert_eq!(ended, 8.0, "{text}");
    assert_eq!(
        metric_sum(&text, "cdn_origin_connections_total", ""),
        8.0,
        "{text}"
    );
    srv.stop().await;
}
