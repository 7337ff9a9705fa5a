//! Store faults over real sockets (issue 7, point 4).
//!
//! A store that is slow, that fails every other request, that returns truncated bodies, and
//! that disappears mid-stream (a real S3-compatible server, moto, killed during a large
//! download). In every case the client gets a clean answer: a 502/503/504, or, once the
//! headers of a 200/206 are out, an aborted body (the connection closes before Content-Length
//! is reached, which every HTTP client reports as an error), never a complete-looking truncated
//! one. The hot cache keeps no partial object, the circuit breaker opens on consecutive
//! failures only, and the server recovers by itself once the store is back.
//!
//! Simulated faults use `cdn_origin::testing::FaultyStore` (a wrapping `ObjectStore`); the
//! outage uses a private moto from `common/moto.rs`, so the shared one of `scripts/test.sh`
//! stays up.

mod common;
#[path = "common/moto.rs"]
mod moto;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdn_origin::config::{ServeArgs, StoreSpec};
use cdn_origin::store::Source;
use cdn_origin::testing::{CapturedLog, FaultyStore};
use common::*;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SMALL: usize = 32 * 1024;
const LARGE: usize = 1024 * 1024;

/// Settings for the simulated-fault servers: a 1 s store timeout, a breaker that opens after 3
/// consecutive failures and probes again after 1 s, and a cache that keeps bodies up to 64 KiB.
/// Objects over 64 KiB get a derived ETag, so serving them never reads them whole first.
fn fault_args(dir: &std::path::Path) -> ServeArgs {
    let mut a = args(dir);
    a.etag_hash_limit = Some("64KiB".parse().unwrap());
    a.store_timeout = Some("1s".parse().unwrap());
    a.breaker_failures = Some(3);
    a.breaker_cooldown = Some("1s".parse().unwrap());
    a.cache_max_object = Some("64KiB".parse().unwrap());
    a
}

async fn faulty_server(a: ServeArgs) -> (TestServer, Arc<FaultyStore>) {
    let store = Arc::new(FaultyStore::new());
    for (key, body) in [
        ("small.bin", bytes_of(SMALL, 1)),
        ("large.bin", bytes_of(LARGE, 2)),
        ("other.bin", bytes_of(SMALL, 3)),
    ] {
        store.put_bytes(key, body).await.unwrap();
    }
    let srv = start(a, Some(vec![Source::custom("faulty", store.clone())])).await;
    (srv, store)
}

/// One raw HTTP/1.1 exchange: the head, the announced length and the body bytes that arrived
/// before the server closed (or `limit` passed).
struct RawResponse {
    status: u16,
    head: String,
    content_length: Option<usize>,
    body: Vec<u8>,
}

async fn raw_get(addr: SocketAddr, path: &str, extra: &str, limit: Duration) -> RawResponse {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(all.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let content_length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok());
    RawResponse {
        status: raw_status(&head),
        head,
        content_length,
        body: all[split..].to_vec(),
    }
}

#[tokio::test]
async fn a_slow_store_gives_504_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, store) = faulty_server(fault_args(dir.path())).await;
    store.set_delay(Duration::from_secs(5));
    let started = Instant::now();
    let res = client().get(srv.url("/small.bin")).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(res.status(), 504, "slow store");
    assert!(
        took < Duration::from_millis(3500),
        "504 took {took:?} with a 1 s store timeout"
    );
    // One timeout does not open the breaker; once the store is fast again, all is well.
    store.heal();
    let res = client().get(srv.url("/small.bin")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        bytes_of(SMALL, 1).as_slice()
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_store_failing_every_other_request_never_yields_a_wrong_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = fault_args(dir.path());
    a.cache_size = Some("0".parse().unwrap()); // every request reaches the store
    let (srv, store) = faulty_server(a).await;
    store.fail_every_get(2);
    let expected = bytes_of(SMALL, 1);
    let (mut ok, mut failed) = (0, 0);
    for i in 0..30 {
        let res = client().get(srv.url("/small.bin")).send().await.unwrap();
        match res.status().as_u16() {
            200 => {
                assert_eq!(
                    res.bytes().await.unwrap().as_ref(),
                    expected.as_slice(),
                    "request {i}"
                );
                ok += 1;
            }
            502 => failed += 1,
            // Failures alternate with successes, so the breaker (3 consecutive) stays closed.
            other => panic!("request {i}: unexpected status {other}"),
        }
    }
    eprintln!(
        "every other store GET failing: {ok} x 200, {failed} x 502, store failures {}",
        store.failures()
    );
    assert!(
        ok >= 10 && failed >= 10,
        "{ok} ok, {failed} failed: the fault pattern did not apply"
    );
    assert_eq!(srv.app.stores.breakers()[0].state().as_str(), "closed");
    srv.stop().await;
}

#[tokio::test]
async fn consecutive_failures_open_the_breaker_and_it_recovers_alone() {
    let dir = tempfile::tempdir().unwrap();
    // The strict CDN example's `[errors]` has a `CDN-Cache-Control`, which a 503 must not get.
    let mut a = fault_args(dir.path());
    a.policies = Some(policies_dir().join("examples/strict-cdn.toml"));
    let (srv, store) = faulty_server(a).await;
    store.set_outage(true);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..8 {
        let res = client()
            .get(srv.url(&format!("/missing-{i}.bin")))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 503 {
            retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            // A CDN that reads CDN-Cache-Control would keep the outage instead of its copy.
            assert_eq!(res.headers()["cache-control"], "no-store");
            assert!(res.headers().get("cdn-cache-control").is_none());
            break;
        }
    }
    eprintln!("outage: statuses {statuses:?}, Retry-After {retry_after:?}");
    assert_eq!(
        statuses.last(),
        Some(&503),
        "breaker never opened: {statuses:?}"
    );
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == 502),
        "{statuses:?}"
    );
    assert!(
        statuses.len() <= 4,
        "breaker opened only after {} failures",
        statuses.len() - 1
    );
    let secs: u64 = retry_after
        .expect("503 without Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(
        (1..=2).contains(&secs),
        "Retry-After {secs} with a 1 s cooldown"
    );
    // While open, the store is not asked at all.
    let reads = store.reads();
    let res = client().get(srv.url("/small.bin")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        store.reads(),
        reads,
        "an open breaker still sent requests to the store"
    );
    // The store comes back; after the cooldown a probe closes the breaker without any help.
    store.heal();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = client().get(srv.url("/small.bin")).send().await.unwrap();
        if res.status() == 200 {
            assert_eq!(
                res.bytes().await.unwrap().as_ref(),
                bytes_of(SMALL, 1).as_slice()
            );
            break;
        }
        assert_eq!(res.status(), 503, "while recovering");
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(srv.app.stores.breakers()[0].state().as_str(), "closed");
    srv.stop().await;
}

#[tokio::test]
async fn truncated_bodies_abort_the_response_and_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, store) = faulty_server(fault_args(dir.path())).await;
    store.truncate_at(Some(300_000));

    // A streamed object (over cache_max_object and the ETag hash limit): the headers promise the
    // whole length before the store's bytes run out, so the only honest move left is to close
    // the connection short of it.
    for (path, extra, want_status, want_len) in [
        ("/large.bin", "", 200, LARGE),
        ("/large.bin", "Range: bytes=0-499999\r\n", 206, 500_000),
    ] {
        let res = raw_get(srv.addr, path, extra, Duration::from_secs(10)).await;
        // (Closing before the head is out would be clean too, but then this test would not
        // see the case it is about: enough bytes arrive first that hyper flushes the head.)
        assert_eq!(res.status, want_status, "{path} {extra}: {}", res.head);
        assert_eq!(
            res.content_length,
            Some(want_len),
            "{path} {extra}: {}",
            res.head
        );
        assert!(
            res.body.len() < want_len,
            "{path} {extra}: a truncated body looked complete"
        );
        eprintln!(
            "truncated {path} {extra:?}: {} of {want_len} bytes, then closed",
            res.body.len()
        );
    }
    // Over HTTP/2 the stream is reset instead; a client must see an error, not a short body.
    let h2 = h2_client();
    match h2.get(srv.url("/large.bin")).send().await {
        // Reset before the client took the head: an error too.
        Err(e) => eprintln!("h2: reset before the head: {e}"),
        Ok(res) => {
            assert_eq!(res.status(), 200);
            assert!(
                res.bytes().await.is_err(),
                "h2: a truncated body completed without error"
            );
        }
    }

    // A cacheable object: the fill fails, so nothing partial is kept.
    store.truncate_at(Some(10_000));
    for _ in 0..3 {
        let res = raw_get(srv.addr, "/small.bin", "", Duration::from_secs(10)).await;
        match res.status {
            200 => assert!(
                res.body.len() < SMALL,
                "a truncated cacheable body looked complete"
            ),
            502 => {}
            other => panic!("small: status {other}: {}", res.head),
        }
    }
    let cached = srv.app.cache.stats().bytes;
    assert!(
        cached < SMALL as u64,
        "the cache holds {cached} bytes after failed fills only"
    );

    // Healed: the next requests get the whole, correct bodies.
    store.heal();
    for (path, seed, len) in [("/small.bin", 1, SMALL), ("/large.bin", 2, LARGE)] {
        let res = client().get(srv.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let body = res.bytes().await.unwrap();
        assert_eq!(body.len(), len, "{path}");
        assert!(
            body.as_ref() == bytes_of(len, seed).as_slice(),
            "{path}: wrong bytes after healing"
        );
    }
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The S3-compatible server killed mid-download
// ---------------------------------------------------------------------------------------------

const BIG: usize = 24 * 1024 * 1024;

/// Settings serving the S3 bucket `bucket` at `endpoint` (the test server's region, plain HTTP).
fn s3_args(dir: &std::path::Path, endpoint: &str, bucket: &str) -> ServeArgs {
    let mut a = args(dir);
    a.sources = vec![StoreSpec::S3 {
        bucket: bucket.into(),
        prefix: String::new(),
    }];
    a.s3_endpoint = Some(endpoint.into());
    a.s3_allow_http = Some(true);
    a.s3_region = Some("us-east-1".into());
    a
}

async fn seed_moto(endpoint: &str, bucket: &str, big: &[u8]) {
    use object_store::{ObjectStoreExt, PutPayload, path::Path};
    let store = s3_bucket(endpoint, bucket).await;
    store
        .put(&Path::from("big.bin"), PutPayload::from(big.to_vec()))
        .await
        .unwrap();
    store
        .put(
            &Path::from("small.txt"),
            PutPayload::from_static(b"small and cached\n"),
        )
        .await
        .unwrap();
    store
        .put(
            &Path::from("later.txt"),
            PutPayload::from_static(b"after the outage\n"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn s3_server_killed_mid_download_aborts_cleanly_and_recovers() {
    let Some(bin) = moto::moto_bin() else { return };
    let mut moto = moto::Moto::start(bin).await;
    let endpoint = moto.endpoint();
    let big = bytes_of(BIG, 7);
    seed_moto(&endpoint, "outage", &big).await;

    let dir = tempfile::tempdir().unwrap();
    let mut a = s3_args(dir.path(), &endpoint, "outage");
    a.store_timeout = Some("2s".parse().unwrap());
    a.store_connect_timeout = Some("1s".parse().unwrap());
    a.store_retries = Some(1);
    a.breaker_failures = Some(3);
    a.breaker_cooldown = Some("2s".parse().unwrap());
    a.cache_max_object = Some("1MiB".parse().unwrap());
    a.revalidate_after = Some("1s".parse().unwrap());
    let srv = start(a, None).await;

    // Warm a small object into the hot cache.
    let res = client().get(srv.url("/small.txt")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Start the large download, read 1 MiB, kill the store, read on.
    let mut res = client().get(srv.url("/big.bin")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.content_length(), Some(BIG as u64));
    let mut got = 0usize;
    while got < 1024 * 1024 {
        got += res.chunk().await.unwrap().expect("body ended early").len();
    }
    moto.kill();
    let killed_at = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match res.chunk().await {
                Ok(Some(c)) => got += c.len(),
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the download neither finished nor failed within 30 s of the kill");
    eprintln!(
        "moto killed: client got {got} of {BIG} bytes, then {ended:?} after {:?}",
        killed_at.elapsed()
    );
    assert!(
        ended.is_err(),
        "the download ended cleanly after the store died ({got} bytes)"
    );
    assert!(
        got < BIG,
        "the whole object arrived although the store died"
    );
    assert!(
        srv.app.cache.stats().bytes < BIG as u64,
        "a partial large object was cached"
    );

    // Uncached keys fail, then the breaker opens: 503 with Retry-After.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..10 {
        let res = client()
            .get(srv.url(&format!("/gone-{i}.txt")))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 503 {
            retry_after = res.headers().get("retry-after").cloned();
            break;
        }
    }
    eprintln!("store down: statuses {statuses:?}");
    assert_eq!(
        statuses.last(),
        Some(&503),
        "breaker never opened: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [502, 503, 504].contains(s)),
        "{statuses:?}"
    );
    assert!(retry_after.is_some(), "503 without Retry-After");
    // The cached object stays available (stale-if-error) during the outage.
    let res = client().get(srv.url("/small.txt")).send().await.unwrap();
    assert_eq!(res.status(), 200, "cached object during the outage");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"small and cached\n");

    // The store comes back (empty: moto keeps data in memory), is seeded again, and the server
    // finds it by itself after the cooldown.
    moto.restart().await;
    seed_moto(&endpoint, "outage", &big).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = client().get(srv.url("/later.txt")).send().await.unwrap();
        if res.status() == 200 {
            assert_eq!(res.bytes().await.unwrap().as_ref(), b"after the outage\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: last status {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let res = client().get(srv.url("/big.bin")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.expect("full download after recovery");
    assert_eq!(body.len(), BIG);
    assert_eq!(
        Sha256::digest(&body),
        Sha256::digest(&big),
        "wrong bytes after recovery"
    );
    assert_eq!(srv.app.stores.breakers()[0].state().as_str(), "closed");
    srv.stop().await;
    moto.kill();
}

/// A request whose client gives up while the store is slow still gets its access-log line:
/// over HTTP/2 the stream reset drops the request, which is logged with status 499 (nginx's
/// "client closed request"); nothing is lost from the log.
#[tokio::test]
async fn a_request_its_client_gives_up_is_logged_with_status_499() {
    // The global subscriber: nextest runs each test in a process of its own; under `cargo
    // test` this must stay the only test of this file that installs one or logs access.
    let log = CapturedLog::default();
    tracing::subscriber::set_global_default(log.subscriber())
        .expect("no other subscriber in this test's process");
    let dir = tempfile::tempdir().unwrap();
    let mut a = fault_args(dir.path());
    a.access_log = Some(true);
    let (srv, store) = faulty_server(a).await;
    store.set_delay(Duration::from_secs(2));
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = h2.get(srv.url("/small.bin")).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        if let Some(line) = log.access_lines().into_iter().find(|v| v["status"] == 499) {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no 499 line: {:?}",
            log.access_lines()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(line["path"], "/small.bin");
    assert_eq!(line["method"], "GET");
    let small: Vec<_> = log
        .access_lines()
        .into_iter()
        .filter(|v| v["path"] == "/small.bin")
        .collect();
    assert_eq!(
        small.len(),
        1,
        "one line for the abandoned request: {small:?}"
    );
    assert_eq!(line["bytes"], 0);
    assert_eq!(line["cache"], "-");
    // A request that is answered has one line of its own, none for being unanswered.
    store.heal();
    let res = client().get(srv.url("/other.bin")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines: Vec<_> = log
        .access_lines()
        .into_iter()
        .filter(|v| v["path"] == "/other.bin")
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        (&lines[0]["status"], &lines[0]["cache"]),
        (&200.into(), &"miss".into())
    );
    srv.stop().await;
}

/// An S3 source whose bucket does not exist (misspelt, deleted, another account's) is a store
/// failure, not an empty bucket: S3 answers 404 `NoSuchBucket` for every key, and taken for
/// missing objects that would make every URL a cached 404 while health said "ok".
#[tokio::test]
async fn a_missing_bucket_is_a_store_failure_not_a_site_of_404s() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut a = s3_args(dir.path(), &endpoint, &unique("never-created"));
    a.store_retries = Some(0);
    let srv = start(a, None).await;
    for _ in 0..2 {
        let res = client().get(srv.url("/index.html")).send().await.unwrap();
        assert!(
            [502, 503].contains(&res.status().as_u16()),
            "a missing bucket answered {}",
            res.status()
        );
        let cache_control = res
            .headers()
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(cache_control.contains("no-store"), "{cache_control}");
    }
    // The health probe sees it too: the only store is down.
    let res = client().get(srv.url("/health/ready")).send().await.unwrap();
    let body = res.text().await.unwrap();
    assert!(body.contains("\"status\":\"down\""), "{body}");
    srv.stop().await;
}

/// An S3 endpoint that accepts connections and never answers: the HTTP client's read timeout
/// and our first-byte deadline are both the store timeout, and whichever fires first the
/// client gets a 504 (not a 502) and the store metrics count a timeout.
#[tokio::test]
async fn a_store_that_never_answers_is_a_504_whichever_deadline_fires() {
    // The S3 test environment's credentials (scripts/test.sh), so the client signs at once.
    if s3_endpoint().is_none() {
        return;
    }
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut a = s3_args(dir.path(), &endpoint, "silent");
    a.store_timeout = Some("1s".parse().unwrap());
    a.store_retries = Some(0);
    let srv = start(a, None).await;
    let started = Instant::now();
    let res = client().get(srv.url("/a.txt")).send().await.unwrap();
    assert_eq!(res.status(), 504, "{:?}", res.text().await);
    assert!(started.elapsed() < Duration::from_secs(5));
    let metrics = client()
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cdn_origin_store_requests_total")
                && l.contains("outcome=\"timeout\"")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("cdn_origin_store_requests_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    srv.stop().await;
    held.abort();
}

/// The missing-bucket test reads only the store's error code, never the error's words, which
/// name the requested path: a client asking for `/NoSuchBucket` (or `/<Code>NoSuchBucket</Code>`)
/// again and again gets 404s and cannot open the breaker.
#[tokio::test]
async fn a_key_named_like_the_error_is_a_404_and_never_opens_the_breaker() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = unique("named-like-errors");
    let _store = s3_bucket(&endpoint, &bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = s3_args(dir.path(), &endpoint, &bucket);
    a.breaker_failures = Some(2);
    let srv = start(a, None).await;
    for i in 0..6 {
        for path in [
            format!("/NoSuchBucket-{i}"),
            format!("/%3CCode%3ENoSuchBucket%3C/Code%3E-{i}"),
            format!("/ContainerNotFound/{i}"),
        ] {
            let res = client().get(srv.url(&path)).send().await.unwrap();
            assert_eq!(res.status(), 404, "{path}");
        }
    }
    srv.stop().await;
}

/// A bucket that goes away while we hold its objects: the revalidation's HEAD finds nothing,
/// and a HEAD's 404 cannot say why, so it is confirmed with a GET, whose `NoSuchBucket` is a
/// store failure. The held copy is not turned into a cached 404.
#[tokio::test]
async fn a_bucket_deleted_under_held_objects_does_not_become_404s() {
    use object_store::{ObjectStoreExt, PutPayload, path::Path};
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = unique("deleted-later");
    let store = s3_bucket(&endpoint, &bucket).await;
    store
        .put(&Path::from("page.txt"), PutPayload::from_static(b"held\n"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut a = s3_args(dir.path(), &endpoint, &bucket);
    a.store_retries = Some(0);
    a.revalidate_after = Some("1s".parse().unwrap());
    let srv = start(a, None).await;
    let res = client().get(srv.url("/page.txt")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    store.delete(&Path::from("page.txt")).await.unwrap();
    let gone = client()
        .delete(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        gone.status().is_success(),
        "moto kept the bucket: {}",
        gone.status()
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for _ in 0..3 {
        let res = client().get(srv.url("/page.txt")).send().await.unwrap();
        assert_ne!(res.status(), 404, "the held object became a 404");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    srv.stop().await;
}
