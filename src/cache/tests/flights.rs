//! Single flight: coalescing, shared errors, cancellation, purges racing a fill, bypass.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_misses_make_exactly_one_store_get() {
    let f = fixture(config());
    f.put("video/poster.bin", vec![7u8; 5000]).await;
    f.store.set_delay(Duration::from_millis(100));
    let lookups = (0..100).map(|_| {
        let cache = f.cache.clone();
        tokio::spawn(async move { cache.lookup("video/poster.bin").await.unwrap() })
    });
    let results: Vec<Lookup> = join_all(lookups)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    // A miss is one GET that brings metadata and body together (no HEAD).
    assert_eq!((f.store.gets(), f.store.heads()), (1, 0));
    let first = results[0].object.clone().unwrap();
    for r in &results {
        assert_eq!(r.status, CacheStatus::Miss);
        assert!(
            Arc::ptr_eq(r.object.as_ref().unwrap(), &first),
            "all share one object"
        );
    }
    assert_eq!(
        results.iter().filter(|r| !r.collapsed).count(),
        1,
        "one leader"
    );
    assert_eq!(f.cache.stats().misses, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_all_get_the_one_error() {
    let f = fixture(config());
    f.put("a.bin", "x").await;
    f.store.set_delay(Duration::from_millis(100));
    f.store.fail_next(1);
    let lookups = (0..20).map(|_| f.cache.lookup("a.bin"));
    let errors: Vec<_> = join_all(lookups)
        .await
        .into_iter()
        .map(|r| r.unwrap_err())
        .collect();
    assert!(errors.iter().all(|e| Arc::ptr_eq(e, &errors[0])));
    assert_eq!((f.store.gets(), f.store.heads()), (1, 0));
    // The error is not cached: the next lookup asks again and succeeds.
    f.store.set_delay(Duration::ZERO);
    assert_eq!(f.lookup("a.bin").await.status, CacheStatus::Miss);
}

#[tokio::test]
async fn hit_returns_the_same_object_as_the_miss() {
    let f = fixture(config());
    f.put("a.bin", "hello").await;
    let miss = f.lookup("a.bin").await;
    let hit = f.lookup("a.bin").await;
    assert_eq!(
        (miss.status.clone(), hit.status.clone()),
        (CacheStatus::Miss, CacheStatus::Hit)
    );
    assert!(Arc::ptr_eq(
        miss.object.as_ref().unwrap(),
        hit.object.as_ref().unwrap()
    ));
    assert_eq!(Fixture::body(&hit), "hello");
    assert_eq!(hit.ttl, Some(0), "300 ms left rounds down to 0 s");
    assert!(miss.stored);
    assert_eq!(
        miss.cache_status_header(),
        "cdn-origin; fwd=uri-miss; ttl=0; stored"
    );
    assert_eq!((f.store.gets(), f.store.heads()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_during_a_fill_keeps_the_old_answer_out() {
    let f = fixture(config());
    f.put("a.bin", "x").await;
    f.store.set_delay(Duration::from_millis(200));
    let pending = tokio::spawn({
        let cache = f.cache.clone();
        async move { cache.lookup("a.bin").await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.cache.purge("a.bin", false);
    let answered = pending.await.unwrap();
    assert!(answered.object.is_some() && !answered.stored);
    assert_eq!(
        f.lookup("a.bin").await.status,
        CacheStatus::Miss,
        "nothing was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_cache_bypasses_but_still_coalesces() {
    let f = fixture(CacheConfig {
        budget: 0,
        ..config()
    });
    f.put("a.bin", "x").await;
    f.store.set_delay(Duration::from_millis(100));
    let all = join_all((0..20).map(|_| f.cache.lookup("a.bin"))).await;
    assert!(
        all.iter()
            .all(|l| l.as_ref().unwrap().status == CacheStatus::Bypass)
    );
    assert_eq!(f.store.gets(), 1);
    assert_eq!(
        f.lookup("a.bin").await.cache_status_header(),
        "cdn-origin; fwd=bypass"
    );
    assert_eq!(f.store.gets(), 2, "nothing is kept");
    assert_eq!(f.cache.stats().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_does_not_cancel_the_fill() {
    let f = fixture(config());
    f.put("a.bin", "x").await;
    f.store.set_delay(Duration::from_millis(150));
    let gave_up = tokio::time::timeout(Duration::from_millis(20), f.cache.lookup("a.bin")).await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_millis(400)).await;
    f.store.set_delay(Duration::ZERO);
    assert_eq!(f.lookup("a.bin").await.status, CacheStatus::Hit);
    assert_eq!(f.store.gets(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_a_variant_compress_once_and_keep_it() {
    let f = fixture(config());
    let text: Vec<u8> = (0..60_000u32)
        .flat_map(|i| format!("rule-{} {{ color: #{:06x} }}\n", i % 997, i).into_bytes())
        .take(60_000)
        .collect();
    f.put("site.css", text.clone()).await;
    let object = f.lookup("site.css").await.object.unwrap();
    let body = object.body.clone().unwrap();
    let makes = (0..50).map(|_| {
        let cache = f.cache.clone();
        let (etag, body) = (object.etag.clone(), body.clone());
        tokio::spawn(async move {
            cache
                .compressed_variant("site.css", &etag, Encoding::Brotli, &body)
                .await
                .unwrap()
        })
    });
    let made: Vec<Bytes> = join_all(makes)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    // One compression: every request holds the same bytes, not an equal copy.
    for bytes in &made {
        assert_eq!(bytes.as_ptr(), made[0].as_ptr());
        assert_eq!(bytes.len(), made[0].len());
    }
    assert!(made[0].len() < text.len() / 2);
    assert_eq!(f.cache.variants.in_flight(), 0, "the flight unregistered");
    // Kept with the entry: a later request gets it without compressing.
    let kept = f
        .cache
        .variant("site.css", &object.etag, Encoding::Brotli)
        .unwrap();
    assert_eq!(kept.as_ptr(), made[0].as_ptr());
    // Another version of the object is another variant.
    let other = ETag::derive(&[b"other"]);
    let again = f
        .cache
        .compressed_variant("site.css", &other, Encoding::Brotli, &body)
        .await
        .unwrap();
    assert_ne!(again.as_ptr(), made[0].as_ptr());
    f.assert_accounting();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_is_made_once_even_when_the_cache_is_off() {
    let mut off = config();
    off.budget = 0;
    let f = fixture(off);
    let etag = ETag::derive(&[b"a.js"]);
    let body = Bytes::from(vec![b'x'; 200_000]);
    // No compression may start until all twenty requests wait for the one flight.
    let held = f.cache.variants.hold_all().await;
    let makes: Vec<_> = (0..20)
        .map(|_| {
            let cache = f.cache.clone();
            let (etag, body) = (etag.clone(), body.clone());
            tokio::spawn(async move {
                cache
                    .compressed_variant("a.js", &etag, Encoding::Gzip, &body)
                    .await
                    .unwrap()
            })
        })
        .collect();
    while f.cache.variants.waiting() < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(f.cache.variants.in_flight(), 1);
    drop(held);
    let made: Vec<Bytes> = join_all(makes)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    // One compression for all of them, though nothing is kept.
    assert!(made.iter().all(|b| b.as_ptr() == made[0].as_ptr()));
    assert!(made[0].len() < 10_000);
    assert_eq!(f.cache.variants.in_flight(), 0);
}
