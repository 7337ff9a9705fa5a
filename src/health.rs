//! `GET /health` (liveness), `GET /health/ready` and `GET /health/detailed` (readiness).
//!
//! Liveness answers from memory and calls nothing: it says the process serves. Readiness and
//! the detailed view report the results of **background probes** that run every `interval`
//! (30 s by default): a cheap probe per store (a `GET` of a key that need not exist, where
//! `NotFound` means the store answered, but not a missing bucket or container, which only a
//! `GET`'s error body tells apart: [`crate::store::is_missing_object`]) and the database check
//! (`SELECT 1`). The endpoints
//! only read the last results, so however often a load balancer or an attacker calls them,
//! the stores and the database see one probe per interval.
//!
//! Status:
//! * `down` (503): every configured store failed its last probe: nothing can be served.
//! * `degraded` (200): some store failed, a breaker is not closed, or the database is
//!   configured but not up. Objects keep being served; the database only records history.
//! * `ok` (200): everything answered.
//!
//! Stores that have not been probed yet do not count either way; call
//! [`Health::probe_once`] before accepting traffic to start with real results.
//! Store health changes are logged with `event="store_health"`, `store`, `state`, `error`.

use crate::db::{Database, DbState};
use crate::metrics::{BreakerState, Metrics, StoreOp, StoreOutcome};
use bytes::Bytes;
use http::StatusCode;
use object_store::{GetOptions, ObjectStore, path::Path};
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::json;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The key probed with HEAD; it need not exist.
pub const PROBE_KEY: &str = "__cdn_origin_health_probe__";

/// A store to probe, under the name used in metrics and logs.
#[derive(Debug, Clone)]
pub struct StoreProbeTarget {
    /// The configured store name (a bounded metrics label).
    pub name: String,
    /// The store.
    pub store: Arc<dyn ObjectStore>,
}

/// What the server's runtime parts (hot cache, breakers) report; implemented by the cache.
pub trait RuntimeStatus: Send + Sync + 'static {
    /// The hot cache figures as JSON, or `None` without a cache.
    fn cache(&self) -> Option<serde_json::Value>;
    /// Each store's breaker state.
    fn breakers(&self) -> Vec<(String, BreakerState)>;
}

/// A [`RuntimeStatus`] for a server without cache or breakers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRuntimeStatus;

impl RuntimeStatus for NoRuntimeStatus {
    fn cache(&self) -> Option<serde_json::Value> {
        None
    }
    fn breakers(&self) -> Vec<(String, BreakerState)> {
        Vec::new()
    }
}

/// Overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything answered.
    Ok,
    /// Serving, with a dependency in trouble.
    Degraded,
    /// No store answers.
    Down,
}

impl HealthStatus {
    /// 503 for `down`, 200 otherwise.
    pub fn http_status(self) -> StatusCode {
        match self {
            HealthStatus::Down => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        }
    }
}

/// The last probe of one store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreProbe {
    /// Store name.
    pub name: String,
    /// Whether the store answered (an object or "not found").
    pub ok: bool,
    /// Probe latency in milliseconds.
    pub latency_ms: f64,
    /// The error, if it failed.
    pub error: Option<String>,
    /// When the probe ran (Unix seconds).
    pub at_unix: u64,
}

/// Liveness, readiness and the detailed view. Create with [`Health::new`].
pub struct Health {
    stores: Vec<StoreProbeTarget>,
    db: Option<Arc<Database>>,
    metrics: Arc<Metrics>,
    runtime: Arc<dyn RuntimeStatus>,
    interval: Duration,
    probe_timeout: Duration,
    version: &'static str,
    started: Instant,
    probe_key: Path,
    last: RwLock<Arc<Vec<StoreProbe>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("stores", &self.stores)
            .field("interval", &self.interval)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

const LIVENESS_BODY: &[u8] = b"{\"status\":\"ok\"}";

impl Health {
    /// A health reporter; probes start with [`Health::spawn_probes`]. The probe timeout is
    /// `interval` capped at 5 s.
    pub fn new(
        stores: Vec<StoreProbeTarget>,
        db: Option<Arc<Database>>,
        metrics: Arc<Metrics>,
        runtime: Arc<dyn RuntimeStatus>,
        interval: Duration,
        version: &'static str,
    ) -> Arc<Health> {
        let interval = interval.max(Duration::from_millis(10));
        Arc::new(Health {
            stores,
            db,
            metrics,
            runtime,
            interval,
            probe_timeout: interval.min(Duration::from_secs(5)),
            version,
            started: Instant::now(),
            probe_key: Path::from(PROBE_KEY),
            last: RwLock::new(Arc::new(Vec::new())),
        })
    }

    /// Probes every interval (the first at once) until the task is aborted or the last
    /// `Arc<Health>` is dropped.
    pub fn spawn_probes(self: &Arc<Self>) -> JoinHandle<()> {
        let weak: Weak<Health> = Arc::downgrade(self);
        let interval = self.interval;
        tokio::spawn(async move {
            // The first round is the caller's `probe_once` before traffic; the next one is
            // due one interval later, so starting up costs one probe, not two.
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(health) = weak.upgrade() else { return };
                health.probe_once().await;
            }
        })
    }

    /// Runs one round of probes (stores and database, concurrently) and keeps the results.
    pub async fn probe_once(&self) {
        let stores = futures::future::join_all(self.stores.iter().map(|t| self.probe_store(t)));
        let db = async {
            if let Some(db) = &self.db {
                db.check().await;
            }
        };
        let (results, ()) = futures::join!(stores, db);
        let previous = self.last.read().clone();
        for probe in &results {
            let was_ok = previous.iter().find(|p| p.name == probe.name).map(|p| p.ok);
            if was_ok != Some(probe.ok) && !(was_ok.is_none() && probe.ok) {
                if probe.ok {
                    tracing::info!(
                        event = "store_health", store = %probe.name, state = "up",
                        "store answers again"
                    );
                } else {
                    tracing::warn!(
                        event = "store_health", store = %probe.name, state = "down",
                        error = probe.error.as_deref().unwrap_or(""), "store probe failed"
                    );
                }
            }
        }
        *self.last.write() = Arc::new(results);
    }

    async fn probe_store(&self, target: &StoreProbeTarget) -> StoreProbe {
        let start = Instant::now();
        // The answer's body, if the key exists after all, is not read: dropping it ends the
        // request.
        let outcome = tokio::time::timeout(
            self.probe_timeout,
            target
                .store
                .get_opts(&self.probe_key, GetOptions::default()),
        )
        .await;
        let latency = start.elapsed();
        let (ok, error, label) = match outcome {
            Ok(Ok(_)) => (true, None, StoreOutcome::Ok),
            Ok(Err(e)) if crate::store::is_missing_object(&e) => {
                (true, None, StoreOutcome::NotFound)
            }
            Ok(Err(e)) => (false, Some(crate::db::error_chain(&e)), StoreOutcome::Error),
            Err(_) => (
                false,
                Some(format!("probe timed out after {:?}", self.probe_timeout)),
                StoreOutcome::Timeout,
            ),
        };
        self.metrics
            .record_store(&target.name, StoreOp::Get, label, latency, 0);
        StoreProbe {
            name: target.name.clone(),
            ok,
            latency_ms: latency.as_secs_f64() * 1000.0,
            error,
            at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// The last store probe results (empty before the first round).
    pub fn store_probes(&self) -> Arc<Vec<StoreProbe>> {
        self.last.read().clone()
    }

    /// The overall status from the last probes, the database state and the breakers.
    pub fn status(&self) -> HealthStatus {
        let breakers = self.runtime.breakers();
        self.status_of(&self.store_probes(), &breakers)
    }

    fn status_of(
        &self,
        probes: &[StoreProbe],
        breakers: &[(String, BreakerState)],
    ) -> HealthStatus {
        if !probes.is_empty() && probes.len() >= self.stores.len() && probes.iter().all(|p| !p.ok) {
            return HealthStatus::Down;
        }
        let store_failing = probes.iter().any(|p| !p.ok);
        let db_not_up = self.db.as_ref().is_some_and(|db| db.state() != DbState::Up);
        let breaker_not_closed = breakers.iter().any(|(_, s)| *s != BreakerState::Closed);
        if store_failing || db_not_up || breaker_not_closed {
            HealthStatus::Degraded
        } else {
            HealthStatus::Ok
        }
    }

    /// `GET /health`: 200 `{"status":"ok"}`, no dependency calls.
    pub fn liveness(&self) -> (StatusCode, Bytes) {
        (StatusCode::OK, Bytes::from_static(LIVENESS_BODY))
    }

    /// `GET /health/ready`: status, failing stores, database state; 503 when down.
    pub fn ready(&self) -> (StatusCode, Bytes) {
        let probes = self.store_probes();
        let status = self.status_of(&probes, &self.runtime.breakers());
        let failing: Vec<&str> = probes
            .iter()
            .filter(|p| !p.ok)
            .map(|p| p.name.as_str())
            .collect();
        let database = match &self.db {
            Some(db) => json!(db.state()),
            None => json!("not configured"),
        };
        let body = json!({
            "status": status,
            "stores": { "total": self.stores.len(), "probed": probes.len(), "failing": failing },
            "database": database,
        });
        (status.http_status(), to_body(&body))
    }

    /// `GET /health/detailed`: everything, including the traffic figures; 503 when down.
    pub fn detailed(&self) -> (StatusCode, Bytes) {
        let probes = self.store_probes();
        let breakers = self.runtime.breakers();
        let status = self.status_of(&probes, &breakers);
        let stores: Vec<serde_json::Value> = self
            .stores
            .iter()
            .map(|t| match probes.iter().find(|p| p.name == t.name) {
                Some(p) => json!(p),
                None => json!({ "name": t.name, "ok": null, "error": "not probed yet" }),
            })
            .collect();
        let database = match &self.db {
            Some(db) => json!(db.status()),
            None => json!("not configured"),
        };
        let breakers: Vec<serde_json::Value> = breakers
            .iter()
            .map(|(store, state)| json!({ "store": store, "state": state }))
            .collect();
        let body = json!({
            "status": status,
            "version": self.version,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "probe_interval_seconds": self.interval.as_secs_f64(),
            "stores": stores,
            "database": database,
            "cache": self.runtime.cache(),
            "breakers": breakers,
            "traffic": self.metrics.traffic(),
        });
        (status.http_status(), to_body(&body))
    }
}

fn to_body(value: &serde_json::Value) -> Bytes {
    match serde_json::to_vec(value) {
        Ok(v) => Bytes::from(v),
        // A Value with string keys always serializes; keep a valid answer regardless.
        Err(_) => Bytes::from_static(b"{\"status\":\"down\",\"error\":\"health encoding failed\"}"),
    }
}

#[cfg(test)]
mod tests;
