//! Runtime status shared by `/metrics` and the health endpoints: hot-cache figures and the
//! circuit breakers, read from their owners at scrape time rather than pushed on every change.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::app::App;
use crate::cache::HotCache;
use crate::cache::breaker::BreakerState as CacheBreakerState;
use crate::metrics::BreakerState;
use crate::store::Stores;

/// What the health endpoints ask about the cache and breakers.
pub struct Runtime {
    /// The hot cache.
    pub cache: Arc<HotCache>,
    /// The stores with their breakers.
    pub stores: Arc<Stores>,
}

/// The metrics' view of a breaker state.
pub fn breaker_state(s: CacheBreakerState) -> BreakerState {
    match s {
        CacheBreakerState::Closed => BreakerState::Closed,
        CacheBreakerState::Open => BreakerState::Open,
        CacheBreakerState::HalfOpen => BreakerState::HalfOpen,
    }
}

impl crate::health::RuntimeStatus for Runtime {
    fn cache(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.cache.stats()).ok()
    }

    fn breakers(&self) -> Vec<(String, BreakerState)> {
        self.stores
            .breakers()
            .iter()
            .map(|b| (b.name().to_string(), breaker_state(b.state())))
            .collect()
    }
}

/// Brings the cache and breaker gauges up to date before an exposition.
pub fn refresh_gauges(app: &App) {
    let stats = app.cache.stats();
    app.metrics.set_cache_usage(stats.bytes, stats.entries);
    let before = app
        .reported_evictions
        .swap(stats.evictions, Ordering::Relaxed);
    if stats.evictions > before {
        app.metrics.cache_evicted(stats.evictions - before);
    }
    for b in app.stores.breakers() {
        app.metrics
            .set_breaker_state(b.name(), breaker_state(b.state()));
    }
}
