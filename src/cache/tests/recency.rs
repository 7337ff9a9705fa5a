//! Recency: least recently used entries go first, exactly in a small cache and to within a
//! quarter of the entries in a large one (`entries.rs`, "Recency").

use std::time::Instant;

use proptest::prelude::*;

use super::super::entries::ByteLru;
use super::*;

/// A not-found entry's weight is its fixed overhead plus its key, so keys of different
/// lengths give entries of different weights without objects.
fn key(k: usize) -> String {
    format!("k{k}{}", "-".repeat(k * 37 % 200))
}

/// A hit as `HotCache::fresh_hit` does it: moved to the front unless still near it.
fn hit(lru: &mut ByteLru, key: &str) {
    if lru.hit(key).is_some_and(|(_, promote)| promote) {
        lru.promote(key);
    }
}

#[tokio::test]
async fn a_hit_keeps_an_entry_and_the_least_recently_used_one_goes() {
    // Each entry weighs about 1,400 bytes (1 KiB of body, metadata, bookkeeping): three fit.
    let f = fixture(CacheConfig {
        budget: 4500,
        ..config()
    });
    for k in ["a", "b", "c", "d"] {
        f.put(k, vec![b'x'; 1024]).await;
    }
    for k in ["a", "b", "c"] {
        assert_eq!(f.lookup(k).await.status, CacheStatus::Miss);
    }
    assert_eq!(f.lookup("a").await.status, CacheStatus::Hit);
    assert_eq!(f.lookup("d").await.status, CacheStatus::Miss);
    f.assert_accounting();
    // "b" was the least recently used: "a" was hit after it.
    assert_eq!(f.lookup("a").await.status, CacheStatus::Hit);
    assert_eq!(f.lookup("c").await.status, CacheStatus::Hit);
    assert_eq!(f.lookup("d").await.status, CacheStatus::Hit);
    assert_eq!(f.lookup("b").await.status, CacheStatus::Miss);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(usize),
    Hit(usize),
    Get(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0usize..60).prop_map(Op::Insert),
        5 => (0usize..60).prop_map(Op::Hit),
        1 => (0usize..60).prop_map(Op::Get),
    ]
}

proptest! {
    /// Against exact LRU order (every insert, hit and get is a use): an evicted entry is
    /// always among the `q` least recently used, `q` a quarter of the most entries the cache
    /// has held (at least 1, so a cache that never held eight entries is exact).
    #[test]
    fn eviction_takes_only_from_the_least_recently_used_quarter(
        budget in 300u64..6000,
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        let mut lru = ByteLru::new(budget);
        // Exact recency order, least recently used first.
        let mut exact: Vec<String> = Vec::new();
        let mut max_len = 0usize;
        let now = Instant::now();
        for op in ops {
            match op {
                Op::Insert(k) => {
                    let key = key(k);
                    exact.retain(|e| *e != key);
                    if !lru.insert(&key, None, now) {
                        continue;
                    }
                    let before = exact.clone();
                    exact.retain(|e| lru.hit(e).is_some());
                    let evicted: Vec<&String> =
                        before.iter().filter(|e| !exact.contains(e)).collect();
                    // The i-th entry popped is within the last quarter of those left, so
                    // within the last quarter plus i of those before the insert.
                    let bound = (max_len / 4).max(1) + evicted.len() - 1;
                    for e in &evicted {
                        let from_end = before.iter().position(|b| b == *e).unwrap();
                        prop_assert!(
                            from_end < bound,
                            "{e} evicted at {from_end} from the least recently used end \
                             of {} (bound {bound})",
                            before.len()
                        );
                    }
                    exact.push(key);
                }
                Op::Hit(k) | Op::Get(k) => {
                    let key = key(k);
                    if lru.hit(&key).is_none() {
                        continue;
                    }
                    if let Op::Hit(_) = op {
                        hit(&mut lru, &key);
                    } else {
                        lru.get(&key);
                    }
                    exact.retain(|e| *e != key);
                    exact.push(key);
                }
            }
            max_len = max_len.max(lru.len());
            prop_assert_eq!(lru.len(), exact.len());
            prop_assert_eq!(lru.bytes(), lru.recount());
        }
    }
}
