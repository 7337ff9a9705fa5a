//! Issue 4 over real sockets: coalescing, revalidation without body transfer, stale serving,
//! the circuit breaker, negative caching, the byte budget, purge, and hit/miss equivalence;
//! plus stale-if-error against a real S3-compatible server that is killed mid-test.

mod common;
#[path = "common/moto.rs"]
mod moto;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdn_origin::config::{Seconds, ServeArgs};
use cdn_origin::store::Source;
use cdn_origin::testing::{CapturedLog, CountingStore};
use common::*;
use reqwest::StatusCode;

fn h<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn secs(s: f64) -> Option<Seconds> {
    Some(Seconds(Duration::from_secs_f64(s)))
}

async fn counting_server(
    tweak: impl FnOnce(&mut ServeArgs),
) -> (TestServer, Arc<CountingStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CountingStore::new());
    let mut a = args(dir.path());
    tweak(&mut a);
    let srv = start(a, Some(vec![Source::custom("counting", store.clone())])).await;
    // The start-up health probe HEADs the store once; count only what requests cause.
    store.reset_counts();
    (srv, store, dir)
}

#[tokio::test]
async fn one_store_get_for_a_hundred_concurrent_misses() {
    let (srv, store, _dir) = counting_server(|_| {}).await;
    store
        .put_bytes("img/a.png", bytes_of(50_000, 1))
        .await
        .unwrap();
    store.set_delay(Duration::from_millis(300));
    let c = client();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let c = c.clone();
            let url = srv.url("/img/a.png");
            tokio::spawn(async move {
                let res = c.get(url).send().await.unwrap();
                (res.status(), res.bytes().await.unwrap().len())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), (StatusCode::OK, 50_000));
    }
    assert_eq!(store.gets(), 1, "exactly one store GET");
    assert_eq!(store.heads(), 0, "metadata came with the GET: no HEAD");
    srv.stop().await;
}

#[tokio::test]
async fn revalidation_of_an_unchanged_object_transfers_no_body_and_a_change_replaces_it() {
    let (srv, store, _dir) = counting_server(|a| {
        a.revalidate_after = secs(0.5);
        a.stale_while_revalidate = secs(0.0);
    })
    .await;
    store.put_bytes("a.bin", bytes_of(10_000, 2)).await.unwrap();
    let first = get_ok(&srv, "/a.bin").await;
    assert!(h(&first, "cache-status").contains("fwd=uri-miss"));
    let hit = get_ok(&srv, "/a.bin").await;
    assert!(
        h(&hit, "cache-status").contains("; hit"),
        "{}",
        h(&hit, "cache-status")
    );
    // A hit and a miss differ only in Cache-Status.
    for name in [
        "etag",
        "last-modified",
        "cache-control",
        "content-type",
        "content-length",
        "accept-ranges",
    ] {
        assert_eq!(h(&first, name), h(&hit, name), "{name}");
    }
    assert_eq!(store.gets(), 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let heads_before = store.heads();
    let res = get_ok(&srv, "/a.bin").await;
    assert_eq!(res.bytes().await.unwrap().len(), 10_000);
    assert_eq!(
        store.gets(),
        1,
        "an unchanged object is revalidated without a GET"
    );
    assert!(store.heads() > heads_before, "revalidation asked the store");

    // A changed object replaces the entry, its ETag and its body.
    store.put_bytes("a.bin", bytes_of(12_000, 3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // modification time must move a second
    store.put_bytes("a.bin", bytes_of(12_000, 3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let res = get_ok(&srv, "/a.bin").await;
    assert_ne!(h(&res, "etag"), h(&first, "etag"));
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        bytes_of(12_000, 3).as_slice()
    );
    srv.stop().await;
}

async fn get_ok(srv: &TestServer, path: &str) -> reqwest::Response {
    let res = client().get(srv.url(path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let (srv, store, _dir) = counting_server(|a| {
        a.revalidate_after = secs(0.3);
        a.stale_while_revalidate = secs(30.0);
    })
    .await;
    store.put_bytes("s.bin", bytes_of(1_000, 4)).await.unwrap();
    get_ok(&srv, "/s.bin").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    store.set_delay(Duration::from_millis(800));
    let started = Instant::now();
    let res = get_ok(&srv, "/s.bin").await;
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "stale answer did not wait for the store"
    );
    let status = h(&res, "cache-status").to_string();
    assert!(status.contains("ttl=-"), "{status}");
    srv.stop().await;
}

#[tokio::test]
async fn stale_if_error_serves_the_cached_copy_during_an_outage() {
    let (srv, store, _dir) = counting_server(|a| {
        a.revalidate_after = secs(0.2);
        a.stale_while_revalidate = secs(0.0);
    })
    .await;
    store
        .put_bytes("doc.pdf", bytes_of(5_000, 5))
        .await
        .unwrap();
    get_ok(&srv, "/doc.pdf").await;
    store.set_failing(true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let res = get_ok(&srv, "/doc.pdf").await;
    assert!(
        h(&res, "cache-status").contains("fwd=stale"),
        "{}",
        h(&res, "cache-status")
    );
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        bytes_of(5_000, 5).as_slice()
    );
    // A key never cached has nothing to fall back on.
    let res = client().get(srv.url("/other.pdf")).send().await.unwrap();
    assert!(res.status().is_server_error(), "{}", res.status());
    srv.stop().await;
}

#[tokio::test]
async fn the_breaker_opens_after_five_failures_fails_fast_and_closes_after_a_good_probe() {
    let (srv, store, _dir) = counting_server(|a| {
        a.breaker_failures = Some(5);
        a.breaker_cooldown = secs(1.0);
        a.negative_ttl = secs(0.0);
    })
    .await;
    store.put_bytes("x.bin", bytes_of(100, 6)).await.unwrap();
    store.set_failing(true);
    for i in 0..5 {
        let res = client()
            .get(srv.url(&format!("/k{i}.bin")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "failure {i}");
    }
    store.set_delay(Duration::from_millis(2_000));
    let reads_before = store.heads() + store.gets();
    let started = Instant::now();
    let res = client().get(srv.url("/x.bin")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!h(&res, "retry-after").is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "an open breaker does not wait on the store"
    );
    assert_eq!(
        store.heads() + store.gets(),
        reads_before,
        "no store call while open"
    );
    store.set_failing(false);
    store.set_delay(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let res = get_ok(&srv, "/x.bin").await;
    assert_eq!(res.bytes().await.unwrap().len(), 100);
    let metrics = srv.text("/metrics").await;
    // Every state change is counted: closed -> open -> half-open -> closed.
    for to in ["open", "half_open", "closed"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("cdn_origin_breaker_transitions_total")
                    && l.contains(&format!("to=\"{to}\""))
            })
            .unwrap_or_else(|| panic!("no transition to {to} in:\n{metrics}"));
        assert!(line.ends_with(" 1"), "{line}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn missing_keys_are_remembered_for_the_negative_ttl() {
    let (srv, store, _dir) = counting_server(|a| a.negative_ttl = secs(5.0)).await;
    for i in 0..20 {
        let res = client().get(srv.url("/nothing.bin")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        // One Cache-Status per 404: the store's answer first, then the remembered one.
        let status: Vec<_> = res.headers().get_all("cache-status").iter().collect();
        assert_eq!(status.len(), 1, "{status:?}");
        let status = status[0].to_str().unwrap();
        let want = if i == 0 {
            "cdn-origin; fwd=uri-miss; ttl="
        } else {
            "cdn-origin; hit; ttl="
        };
        assert!(status.starts_with(want), "response {i}: {status}");
    }
    assert!(
        store.heads() + store.gets() <= 2,
        "a flood of 404s reached the store {} times",
        store.heads() + store.gets()
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_byte_budget_holds_under_a_mixed_workload() {
    let (srv, store, _dir) = counting_server(|a| {
        a.cache_size = Some("1MiB".parse().unwrap());
        a.cache_max_object = Some("256KiB".parse().unwrap());
    })
    .await;
    let mut sizes = Vec::new();
    for i in 0..120u32 {
        let size = 1_000 + (i as usize * 7919) % 300_000;
        sizes.push(size);
        store
            .put_bytes(&format!("o/{i}.bin"), bytes_of(size, i as u8))
            .await
            .unwrap();
    }
    let c = client();
    for round in 0..3 {
        let tasks: Vec<_> = (0..120u32)
            .map(|i| {
                let c = c.clone();
                let url = srv.url(&format!("/o/{}.bin", (i * 37 + round) % 120));
                tokio::spawn(async move {
                    c.get(url)
                        .send()
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap()
                        .len()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let stats = srv.app.cache.stats();
        assert!(
            stats.bytes <= 1024 * 1024,
            "cache holds {} bytes over its 1 MiB budget",
            stats.bytes
        );
    }
    assert!(srv.app.cache.stats().evictions > 0);
    let metrics = srv.text("/metrics").await;
    assert!(metrics.contains("evict"), "evictions are exported");
    srv.stop().await;
}

#[tokio::test]
async fn purge_drops_entries_by_path_and_prefix_behind_a_token() {
    // The global subscriber: nextest runs each test in a process of its own; under `cargo
    // test` this must stay the only test of this file that installs one.
    let log = CapturedLog::default();
    tracing::subscriber::set_global_default(log.subscriber())
        .expect("no other subscriber in this test's process");
    let token = "0123456789abcdef-token";
    let (srv, store, _dir) = counting_server(|a| a.purge_token = Some(token.into())).await;
    for k in ["assets/a.bin", "assets/b.bin", "other.bin"] {
        store.put_bytes(k, bytes_of(100, 7)).await.unwrap();
        get_ok(&srv, &format!("/{k}")).await;
    }
    let c = client();
    let res = c
        .post(srv.url("/_admin/purge"))
        .body(r#"{"prefix":"/assets/"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, text) = purge(&srv, token, r#"{"prefix":"/assets/"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, r#"{"purged":2}"#);
    let (_, text) = purge(&srv, token, r#"{"path":"/other.bin"}"#).await;
    assert_eq!(text, r#"{"purged":1}"#);
    let gets = store.gets();
    get_ok(&srv, "/other.bin").await;
    assert_eq!(store.gets(), gets + 1, "a purged entry is fetched again");
    srv.stop().await;
    // Each purge is logged with its path, in a field of its own: a field named `target`
    // would repeat the key of the event's own target in a JSON line.
    let lines = log.raw_lines();
    let purges: Vec<&String> = lines.iter().filter(|l| l.contains("purge")).collect();
    assert!(
        purges.iter().any(|l| l.contains(r#""path":"/assets/""#)),
        "{purges:#?}"
    );
    for line in &lines {
        assert!(line.matches(r#""target":"#).count() <= 1, "{line}");
    }

    // Without a token the endpoint does not exist.
    let (srv, _store, _dir) = counting_server(|_| {}).await;
    let res = client()
        .post(srv.url("/_admin/purge"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    srv.stop().await;
}

#[tokio::test]
async fn a_cached_not_found_remembers_its_index_until_the_index_is_purged() {
    let token = "0123456789abcdef-token";
    let (srv, store, _dir) = counting_server(|a| a.purge_token = Some(token.into())).await;
    let status = |path: &'static str| {
        let url = srv.url(path);
        async move {
            let res = client().get(url).send().await.unwrap();
            (res.status(), h(&res, "location").to_string())
        }
    };

    for (name, purge_body) in [
        ("docs", r#"{"path":"/docs/index.html"}"#),
        ("guide", r#"{"prefix":"/guide/"}"#),
    ] {
        let path: &'static str = Box::leak(format!("/{name}").into_boxed_str());
        assert_eq!(status(path).await.0, StatusCode::NOT_FOUND);
        assert_eq!(status(path).await.0, StatusCode::NOT_FOUND);
        // From now on the not-found knows `NAME/index.html` is absent: one cache lookup per
        // request, not two.
        let hits = srv.app.cache.stats().hits;
        assert_eq!(status(path).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            srv.app.cache.stats().hits,
            hits + 1,
            "{name}: lookups per 404"
        );
        // The index appears; until it is purged, the cached answers stand.
        store
            .put_bytes(&format!("{name}/index.html"), bytes_of(10, 1))
            .await
            .unwrap();
        assert_eq!(status(path).await.0, StatusCode::NOT_FOUND);
        // Purging the index forgets the not-found that remembered it.
        assert_eq!(purge(&srv, token, purge_body).await.0, StatusCode::OK);
        let (code, location) = status(path).await;
        assert_eq!(code, StatusCode::PERMANENT_REDIRECT, "{name}");
        assert_eq!(location, format!("{path}/"));
    }
    srv.stop().await;
}

#[tokio::test]
async fn s3_outage_is_bridged_by_stale_copies() {
    let Some(bin) = moto::moto_bin() else {
        return;
    };
    let mut moto = moto::Moto::start(bin).await;
    let endpoint = moto.endpoint();
    let store = s3_bucket(&endpoint, "outage").await;
    put_fixtures(store.as_ref()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.sources = vec!["s3://outage".parse().unwrap()];
    a.s3_endpoint = Some(endpoint);
    a.s3_allow_http = Some(true);
    a.s3_region = Some("us-east-1".into());
    a.store_retries = Some(0);
    a.store_timeout = secs(2.0);
    a.revalidate_after = secs(0.3);
    a.stale_while_revalidate = secs(0.0);
    let srv = start(a, None).await;
    let miss = get_ok(&srv, "/hello.txt").await;
    assert!(h(&miss, "cache-status").contains("fwd=uri-miss"));
    let hit = get_ok(&srv, "/hello.txt").await;
    assert!(h(&hit, "cache-status").contains("; hit"));
    moto.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stale = get_ok(&srv, "/hello.txt").await;
    assert!(
        h(&stale, "cache-status").contains("fwd=stale"),
        "{}",
        h(&stale, "cache-status")
    );
    assert_eq!(stale.text().await.unwrap(), "hello, world\n");
    let res = client().get(srv.url("/data.bin")).send().await.unwrap();
    assert!(res.status().is_server_error());
    srv.stop().await;
}

#[tokio::test]
async fn warm_up_fills_the_cache_before_the_first_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CountingStore::new());
    for i in 0..5u8 {
        store
            .put_bytes(&format!("w/{i}.bin"), bytes_of(2_000, i))
            .await
            .unwrap();
    }
    store
        .put_bytes(".secret", b"hidden".to_vec())
        .await
        .unwrap();
    let mut a = args(dir.path());
    a.warm_up = Some(true);
    let srv = start(a, Some(vec![Source::custom("counting", store.clone())])).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.app.cache.stats().entries < 5 {
        assert!(
            Instant::now() < deadline,
            "warm-up did not load the objects"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gets = store.gets();
    for i in 0..5 {
        let res = get_ok(&srv, &format!("/w/{i}.bin")).await;
        assert!(
            h(&res, "cache-status").contains("; hit"),
            "{}",
            h(&res, "cache-status")
        );
    }
    assert_eq!(store.gets(), gets, "every object was already in the cache");
    assert_eq!(
        srv.app.cache.stats().entries,
        5,
        "the dotfile was not loaded"
    );
    srv.stop().await;
}

/// A local file held as metadata only (larger than `cache_max_object`) that is replaced,
/// resized or deleted before the hot cache looks again: the next request answers from the
/// file as it is now (new bytes under a new ETag, or a 404), never new bytes under the old
/// validators, and the store's breaker stays closed however often it happens.
#[tokio::test]
async fn a_file_changed_under_held_metadata_is_reloaded_not_a_store_failure() {
    let dir = local_fixtures();
    let mut a = args(dir.path());
    a.cache_max_object = Some("1KiB".parse().unwrap());
    a.revalidate_after = secs(3600.0);
    a.breaker_failures = Some(2);
    let srv = start(a, None).await;
    let path = dir.path().join("data.bin");
    let get = |range: Option<&'static str>| {
        let mut req = client().get(srv.url("/data.bin"));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send()
    };
    let first = get(Some("bytes=0-15")).await.unwrap();
    assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
    let old_etag = h(&first, "etag").to_string();

    // The same size, other bytes, a later mtime (a deploy that writes a new copy).
    std::thread::sleep(Duration::from_millis(20));
    let replaced = vec![b'B'; 100_000];
    std::fs::write(&path, &replaced).unwrap();
    for _ in 0..3 {
        let res = get(Some("bytes=0-15")).await.unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_ne!(h(&res, "etag"), old_etag, "new bytes under the old ETag");
        assert_eq!(res.bytes().await.unwrap().as_ref(), &replaced[..16]);
    }

    // Resized.
    std::fs::write(&path, vec![b'C'; 50_000]).unwrap();
    let res = get(None).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().len(), 50_000);

    // Deleted, asked for again and again: a 404 each time, and the rest of the site is up.
    std::fs::remove_file(&path).unwrap();
    for _ in 0..4 {
        let res = get(Some("bytes=0-0")).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let other = client().get(srv.url("/hello.txt")).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::OK, "the breaker opened");

    // The store's side (the requests above reset the breaker's count with each reload's
    // successful HEAD): reads of metadata that no longer holds are "changed", never failures,
    // however many come in a row.
    std::fs::write(&path, b"again").unwrap();
    let stale = srv.app.stores.head("data.bin").await.unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, b"again").unwrap();
    for _ in 0..3 {
        let read = srv.app.stores.read(&stale, 0..5).await;
        assert!(matches!(
            read,
            Err(cdn_origin::store::StoreError::Changed { .. })
        ));
    }
    assert_eq!(
        srv.app.stores.breakers()[0].state(),
        cdn_origin::cache::BreakerState::Closed
    );
    // Counted as such (the three above, and one for each request that found a change).
    let metrics = srv.app.metrics.encode();
    let store_lines = || {
        metrics
            .lines()
            .filter(|l| l.starts_with("cdn_origin_store_requests_total{"))
    };
    assert!(
        store_lines().any(|l| l.contains("op=\"get\",outcome=\"changed\"} 6")),
        "{metrics}"
    );
    assert!(
        !store_lines().any(|l| l.contains("outcome=\"error\"")),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_store_failure_for_a_cors_type_carries_cors_so_a_page_can_read_it() {
    let (srv, store, _dir) = counting_server(|a| {
        a.cors_origins = vec!["https://app.example".into()];
        a.cache_max_object = Some("64KiB".parse().unwrap());
        a.breaker_failures = Some(2);
        a.negative_ttl = secs(0.0);
    })
    .await;
    let app = [("origin", "https://app.example")];
    let get = |path: &str| {
        let mut req = client().get(srv.url(path));
        for (k, v) in app {
            req = req.header(k, v);
        }
        req.send()
    };
    // Held as metadata only (over cache_max_object): the second request reads the store
    // after the lookup found the object, and that read fails.
    store
        .put_bytes("fonts/big.woff2", bytes_of(200_000, 7))
        .await
        .unwrap();
    assert_eq!(
        get("/fonts/big.woff2").await.unwrap().status(),
        StatusCode::OK
    );
    store.fail_next(1);
    let res = get("/fonts/big.woff2").await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(h(&res, "cache-control"), "no-store");

    // A failure before anything was found, then the open breaker's 503: CORS by the name.
    store.set_failing(true);
    let res = get("/fonts/other.woff2").await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(h(&res, "vary"), "Origin");
    let res = get("/video/clip.mp4").await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        h(&res, "access-control-allow-origin"),
        "https://app.example"
    );
    // A type without CORS gets none.
    let res = get("/style.css").await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h(&res, "access-control-allow-origin"), "");
    srv.stop().await;
}
