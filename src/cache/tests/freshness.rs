//! Freshness towards the store: revalidation, stale-while-revalidate, stale-if-error, the
//! breaker, negative caching, metadata-only large objects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;

use super::*;

#[tokio::test]
async fn unchanged_object_revalidates_with_heads_only() {
    // (key, HEADs per revalidation): compressible types also check their three sidecars.
    for (key, heads) in [("a.bin", 1), ("style.css", 4)] {
        let f = fixture(config());
        f.put(key, vec![b'a'; 3000]).await;
        let first = f.lookup(key).await;
        tokio::time::sleep(PAST_FRESH).await;
        f.store.reset_counts();
        let again = f.lookup(key).await;
        assert_eq!(again.status, CacheStatus::Hit, "{key}");
        assert!(Arc::ptr_eq(
            first.object.as_ref().unwrap(),
            again.object.as_ref().unwrap()
        ));
        assert_eq!(
            (f.store.gets(), f.store.heads()),
            (0, heads),
            "{key}: no body transfer"
        );
        // The timestamp moved: the next lookup is fresh without asking the store.
        assert_eq!(f.lookup(key).await.status, CacheStatus::Hit);
        assert_eq!(f.store.heads(), heads);
    }
}

#[tokio::test]
async fn changed_object_replaces_the_entry_and_its_variants() {
    let f = fixture(config());
    f.put("a.bin", "version one").await;
    let v1 = f.lookup("a.bin").await.object.unwrap();
    f.cache.put_variant(
        "a.bin",
        &v1.etag,
        Encoding::Gzip,
        Bytes::from_static(b"gz1"),
    );
    assert!(f.cache.variant("a.bin", &v1.etag, Encoding::Gzip).is_some());
    f.put("a.bin", "version two").await; // same size and second: only the store ETag differs
    tokio::time::sleep(PAST_FRESH).await;
    let after = f.lookup("a.bin").await;
    assert_eq!(after.status, CacheStatus::Miss);
    assert_eq!(Fixture::body(&after), "version two");
    let v2 = after.object.unwrap();
    assert_ne!(v1.etag, v2.etag);
    assert!(f.cache.variant("a.bin", &v1.etag, Encoding::Gzip).is_none());
    assert!(f.cache.variant("a.bin", &v2.etag, Encoding::Gzip).is_none());
    f.assert_accounting();
}

#[tokio::test]
async fn a_replaced_sidecar_is_noticed_on_revalidation() {
    let f = fixture(config());
    f.put("app.js", vec![b'x'; 2000]).await;
    f.put("app.js.gz", "old gzip").await;
    let before = f.lookup("app.js").await.object.unwrap();
    assert_eq!(
        before.sidecar(Encoding::Gzip).unwrap().body.as_deref(),
        Some(&b"old gzip"[..])
    );
    f.put("app.js.gz", "new gzip").await;
    tokio::time::sleep(PAST_FRESH).await;
    let after = f.lookup("app.js").await;
    assert_eq!(after.status, CacheStatus::Miss);
    let sidecar = after
        .object
        .as_ref()
        .unwrap()
        .sidecar(Encoding::Gzip)
        .unwrap();
    assert_eq!(sidecar.body.as_deref(), Some(&b"new gzip"[..]));
}

#[tokio::test]
async fn deleted_object_becomes_a_cached_not_found() {
    let f = fixture(config());
    f.put("a.bin", "x").await;
    f.lookup("a.bin").await;
    f.store.delete_key("a.bin").await.unwrap();
    tokio::time::sleep(PAST_FRESH).await;
    let gone = f.lookup("a.bin").await;
    assert!(gone.object.is_none());
    assert_eq!(gone.status, CacheStatus::Miss);
    let heads = f.store.heads();
    assert_eq!(f.lookup("a.bin").await.status, CacheStatus::Hit);
    assert_eq!(f.store.heads(), heads);
}

#[tokio::test]
async fn stale_entry_is_served_during_an_outage() {
    let f = fixture(CacheConfig {
        stale_if_error: Duration::from_secs(60),
        ..config()
    });
    f.put("a.bin", "precious").await;
    let first = f.lookup("a.bin").await;
    f.store.set_failing(true);
    tokio::time::sleep(PAST_FRESH).await;
    let stale = f.lookup("a.bin").await;
    assert_eq!(stale.status, CacheStatus::Stale(StaleReason::StoreError));
    assert!(Arc::ptr_eq(
        first.object.as_ref().unwrap(),
        stale.object.as_ref().unwrap()
    ));
    assert!(stale.ttl.unwrap() < 0);
    let header = stale.cache_status_header();
    let header = header.to_str().unwrap();
    assert!(
        header.starts_with("cdn-origin; fwd=stale; ttl=-"),
        "{header}"
    );
    assert!(header.ends_with("; detail=store-error"), "{header}");
    assert_eq!(f.cache.stats().stale, 1);
    // The store recovers: the entry is revalidated and fresh again.
    f.store.set_failing(false);
    assert_eq!(f.lookup("a.bin").await.status, CacheStatus::Hit);
}

#[tokio::test]
async fn outage_beyond_stale_if_error_is_an_error() {
    let f = fixture(config()); // stale_if_error = 0
    f.put("a.bin", "x").await;
    f.lookup("a.bin").await;
    f.store.set_failing(true);
    tokio::time::sleep(PAST_FRESH).await;
    let error = f.cache.lookup("a.bin").await.unwrap_err();
    assert!(matches!(*error, StoreError::Backend { .. }), "{error}");
}

#[tokio::test]
async fn open_breaker_fails_fast_and_stale_copies_stand_in() {
    let f = fixture(CacheConfig {
        stale_if_error: Duration::from_secs(60),
        ..config()
    });
    f.put("kept.bin", "x").await;
    f.lookup("kept.bin").await;
    f.store.set_failing(true);
    for i in 0..5 {
        assert!(f.cache.lookup(&format!("missing-{i}.bin")).await.is_err());
    }
    let heads = f.store.heads();
    let error = f.cache.lookup("other.bin").await.unwrap_err();
    assert!(matches!(*error, StoreError::CircuitOpen { .. }), "{error}");
    assert_eq!(
        f.store.heads(),
        heads,
        "an open breaker does not touch the store"
    );
    tokio::time::sleep(PAST_FRESH).await;
    let stale = f.lookup("kept.bin").await;
    assert_eq!(stale.status, CacheStatus::Stale(StaleReason::StoreError));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let config = CacheConfig {
        stale_while_revalidate: Duration::from_secs(60),
        ..config()
    };
    let f = fixture(config);
    f.put("a.bin", "old").await;
    f.lookup("a.bin").await;
    f.put("a.bin", "new body").await;
    tokio::time::sleep(PAST_FRESH).await;
    f.store.reset_counts();
    f.store.set_delay(Duration::from_millis(200));
    let stale = join_all((0..20).map(|_| f.cache.lookup("a.bin"))).await;
    for s in stale {
        let s = s.unwrap();
        assert_eq!(s.status, CacheStatus::Stale(StaleReason::Revalidating));
        assert_eq!(Fixture::body(&s), "old");
        assert!(
            s.cache_status_header()
                .to_str()
                .unwrap()
                .ends_with("detail=revalidating")
        );
    }
    // The one background refresh lands; then the new body is a plain hit.
    let mut refreshed = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let l = f.lookup("a.bin").await;
        if l.status == CacheStatus::Hit {
            refreshed = Some(l);
            break;
        }
    }
    let refreshed = refreshed.expect("background refresh never landed");
    assert_eq!(Fixture::body(&refreshed), "new body");
    assert_eq!((f.store.gets(), f.store.heads()), (1, 1));
}

#[tokio::test]
async fn not_found_is_remembered_for_negative_ttl() {
    let f = fixture(CacheConfig {
        negative_ttl: FRESH,
        ..config()
    });
    let first = f.lookup("nope.bin").await;
    assert!(first.object.is_none() && first.stored);
    for _ in 0..50 {
        let again = f.lookup("nope.bin").await;
        assert!(again.object.is_none());
        assert_eq!(again.status, CacheStatus::Hit);
    }
    assert_eq!(
        f.store.gets() + f.store.heads(),
        1,
        "one store lookup for 51 requests"
    );
    f.put("nope.bin", "now here").await;
    tokio::time::sleep(PAST_FRESH).await;
    let found = f.lookup("nope.bin").await;
    assert_eq!(found.status, CacheStatus::Miss);
    assert_eq!(Fixture::body(&found), "now here");
}

#[tokio::test]
async fn large_objects_are_cached_as_metadata_only() {
    let f = fixture(CacheConfig {
        max_object: 1024,
        ..config()
    });
    f.put("big.bin", vec![1u8; 4096]).await;
    let miss = f.lookup("big.bin").await;
    let object = miss.object.unwrap();
    assert!(object.body.is_none());
    assert_eq!(object.info.size, 4096);
    let hit = f.lookup("big.bin").await;
    assert_eq!(hit.status, CacheStatus::Hit);
    assert!(f.cache.stats().bytes < 1024, "the body is not held");
}
