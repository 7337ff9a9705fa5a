//! Memory: the byte budget under a mixed workload, variants in the budget, purge.

use bytes::Bytes;

use super::*;

/// A tiny deterministic generator, so a failure reproduces.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[tokio::test]
async fn byte_budget_is_never_exceeded_by_a_mixed_workload() {
    let budget = 96 * 1024;
    let f = fixture(CacheConfig {
        budget,
        max_object: 24 * 1024,
        ..config()
    });
    let mut rng = Lcg(42);
    for i in 0..120 {
        let size = rng.next(40 * 1024) as usize; // some above max_object
        f.put(&format!("k/{i}.bin"), vec![b'z'; size]).await;
    }
    for step in 0..1500 {
        let key = format!("k/{}.bin", rng.next(140)); // some keys do not exist
        match rng.next(10) {
            0..=6 => {
                let lookup = f.lookup(&key).await;
                if let Some(object) = lookup.object {
                    let len = rng.next(8 * 1024) as usize;
                    let encoding = Encoding::COMPRESSED[rng.next(3) as usize];
                    f.cache
                        .put_variant(&key, &object.etag, encoding, Bytes::from(vec![0; len]));
                }
            }
            7 => {
                f.cache.purge(&key, false);
            }
            8 => {
                f.cache.purge(&format!("k/{}", rng.next(10)), true);
            }
            _ => {
                let size = rng.next(40 * 1024) as usize;
                f.put(&key, vec![b'y'; size]).await;
            }
        }
        f.assert_accounting();
        let stats = f.cache.stats();
        assert!(stats.bytes <= budget, "step {step}: {stats:?}");
    }
    let stats = f.cache.stats();
    assert!(
        stats.evictions > 0 && stats.hits > 0,
        "the workload exercised eviction: {stats:?}"
    );
}

#[tokio::test]
async fn variants_count_in_the_budget_and_go_with_their_entry() {
    let f = fixture(config());
    f.put("a.bin", "x").await;
    let object = f.lookup("a.bin").await.object.unwrap();
    let before = f.cache.stats().bytes;
    f.cache.put_variant(
        "a.bin",
        &object.etag,
        Encoding::Brotli,
        Bytes::from(vec![0; 1000]),
    );
    assert!(f.cache.stats().bytes >= before + 1000);
    let other = ETag::strong("someone-else").unwrap();
    f.cache
        .put_variant("a.bin", &other, Encoding::Zstd, Bytes::from(vec![0; 1000]));
    assert!(
        f.cache
            .variant("a.bin", &object.etag, Encoding::Zstd)
            .is_none(),
        "etag mismatch ignored"
    );
    assert_eq!(
        f.cache
            .variant("a.bin", &object.etag, Encoding::Brotli)
            .unwrap()
            .len(),
        1000
    );
    f.assert_accounting();
    assert_eq!(f.cache.purge("a.bin", false), 1);
    assert_eq!(f.cache.stats().bytes, 0);
    assert!(
        f.cache
            .variant("a.bin", &object.etag, Encoding::Brotli)
            .is_none()
    );
}

#[tokio::test]
async fn purge_by_path_and_by_prefix() {
    let f = fixture(config());
    for key in ["img/a.bin", "img/b.bin", "css/c.bin"] {
        f.put(key, "x").await;
        f.lookup(key).await;
    }
    f.lookup("img/missing.bin").await; // a cached not-found counts too
    assert_eq!(f.cache.purge("/css/c.bin", false), 1);
    assert_eq!(f.cache.purge("/css/c.bin", false), 0);
    assert_eq!(f.cache.purge("/img/", true), 3);
    assert_eq!(f.cache.stats().entries, 0);
    f.store.reset_counts();
    assert_eq!(f.lookup("img/a.bin").await.status, CacheStatus::Miss);
    assert_eq!(f.store.gets(), 1);
}

#[tokio::test]
async fn entries_taken_out_are_dropped_once_the_lock_is_released_not_kept() {
    // Evictions, replacements and purges hand their entries to the caller, who drops them
    // after releasing the lock (an arena body's drop is a system call); none may stay parked.
    let f = fixture(CacheConfig {
        budget: 3000,
        ..config()
    });
    for k in ["a", "b", "c"] {
        f.put(k, vec![b'x'; 1024]).await;
    }
    let a = f.lookup("a").await.object.expect("a");
    assert_eq!(std::sync::Arc::strong_count(&a), 2, "ours and the cache's");
    // Loading "b" and "c" evicts "a" (two entries fit).
    f.lookup("b").await;
    f.lookup("c").await;
    assert_eq!(
        std::sync::Arc::strong_count(&a),
        1,
        "the evicted entry was dropped"
    );
    let c = f.lookup("c").await.object.expect("c");
    assert_eq!(std::sync::Arc::strong_count(&c), 2);
    assert_eq!(f.cache.purge("c", false), 1);
    assert_eq!(
        std::sync::Arc::strong_count(&c),
        1,
        "the purged entry was dropped"
    );
    // A variant insert that evicts drops what it evicted too.
    let b = f.lookup("b").await.object.expect("b");
    f.lookup("a").await;
    f.cache
        .put_variant("a", &a.etag, Encoding::Gzip, Bytes::from(vec![0; 1500]));
    assert_eq!(
        std::sync::Arc::strong_count(&b),
        1,
        "evicted by the variant"
    );
    assert!(f.cache.state.write().lru.take_released().is_empty());
}
