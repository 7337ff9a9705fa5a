//! Behaviour tests of the hot cache against a counting, delaying, failing in-memory store.
//!
//! Freshness windows are real time (hundreds of milliseconds) with generous margins, so the
//! tests stay correct on a loaded machine; none of them asserts a speed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::object::Loader;
use crate::store::{Source, Stores};
use crate::testing::CountingStore;

const FRESH: Duration = Duration::from_millis(300);
const PAST_FRESH: Duration = Duration::from_millis(450);

struct Fixture {
    store: Arc<CountingStore>,
    cache: Arc<HotCache>,
}

fn config() -> CacheConfig {
    CacheConfig {
        budget: 1024 * 1024,
        max_object: 64 * 1024,
        revalidate_after: FRESH,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        negative_ttl: Duration::from_secs(60),
    }
}

fn fixture(config: CacheConfig) -> Fixture {
    let store = Arc::new(CountingStore::new());
    let source = Source::custom("mem", store.clone());
    let stores = Arc::new(Stores::new(
        vec![source],
        Duration::from_secs(5),
        Duration::from_secs(5),
    ));
    let loader = Arc::new(Loader::new(stores, 8 * 1024 * 1024, config.max_object));
    Fixture {
        store,
        cache: HotCache::new(config, loader),
    }
}

impl Fixture {
    async fn put(&self, key: &str, body: impl Into<Bytes>) {
        self.store.put_bytes(key, body).await.unwrap();
    }

    async fn lookup(&self, key: &str) -> Lookup {
        self.cache.lookup(key).await.unwrap()
    }

    fn body(lookup: &Lookup) -> Bytes {
        lookup.object.as_ref().unwrap().body.clone().unwrap()
    }

    fn assert_accounting(&self) {
        let state = self.cache.state.read();
        assert_eq!(
            state.lru.bytes(),
            state.lru.recount(),
            "running total drifted"
        );
        assert!(
            state.lru.bytes() <= self.cache.config.budget,
            "budget exceeded"
        );
    }
}

mod flights;
mod freshness;
mod memory;
mod recency;

#[test]
fn a_purge_of_an_index_names_the_key_whose_not_found_remembers_it() {
    use super::index_parent;
    assert_eq!(index_parent("docs/index.html", false), Some("docs"));
    assert_eq!(index_parent("a/b/index.html", false), Some("a/b"));
    assert_eq!(index_parent("docs/index.htm", false), None);
    assert_eq!(index_parent("index.html", false), None);
    assert_eq!(index_parent("docs/", true), Some("docs"));
    assert_eq!(index_parent("docs/ind", true), Some("docs"));
    assert_eq!(index_parent("docs/index.html", true), Some("docs"));
    assert_eq!(index_parent("docs/a", true), None);
    assert_eq!(index_parent("docs", true), None);
}
