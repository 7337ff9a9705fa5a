//! The application state shared by every connection: settings, stores, hot cache, policies,
//! access rules, metrics and health. [`App::build`] wires them from validated settings.

use std::path::Path;
use std::sync::Arc;

use crate::cache::{CacheConfig, HotCache};
use crate::config::Settings;
use crate::db::{Database, DbSettings};
use crate::health::{Health, StoreProbeTarget};
use crate::metrics::Metrics;
use crate::object::Loader;
use crate::policy::PolicyHandle;
use crate::sendfile::BodyArena;
use crate::signing::AccessRules;
use crate::store::{Source, Stores};

/// The policies compiled into the binary, used when no policy path is given and `./policies`
/// does not exist, so `cdn-origin ./public` works from any folder.
pub const EMBEDDED_POLICIES: &str = include_str!("../policies/default.toml");

/// Shared state.
pub struct App {
    /// Validated settings.
    pub settings: Settings,
    /// The stores, in search order.
    pub stores: Arc<Stores>,
    /// The hot cache in front of them.
    pub cache: Arc<HotCache>,
    /// Cache policies (reloadable).
    pub policies: Arc<PolicyHandle>,
    /// Private prefix and signatures.
    pub access: AccessRules,
    /// CORS for fonts and media.
    pub cors: crate::cors::CorsRules,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Health state.
    pub health: Arc<Health>,
    /// The database, when configured.
    pub db: Option<Arc<Database>>,
    /// The memory file that cached bodies are sent from with `sendfile`, when in use.
    pub arena: Option<Arc<BodyArena>>,
    /// Cache evictions already added to the metrics counter.
    pub reported_evictions: std::sync::atomic::AtomicU64,
}

impl App {
    /// Builds the app. `sources` overrides the settings' sources (tests inject stores).
    pub fn build(settings: Settings, sources: Option<Vec<Source>>) -> Result<Arc<App>, String> {
        let sources = match sources {
            Some(s) => s,
            None => settings
                .sources
                .iter()
                .map(|spec| Source::build(spec, &settings))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let policies = Arc::new(load_policies(
            &settings.policies,
            settings.policies_explicit,
        )?);
        let metrics = Arc::new(Metrics::new());
        let probes = sources
            .iter()
            .map(|s| StoreProbeTarget {
                name: s.name.clone(),
                store: s.store(),
            })
            .collect();
        let stores = Arc::new(
            Stores::new(sources, settings.store_timeout, settings.slow_store)
                .with_breakers(settings.breaker_failures, settings.breaker_cooldown)
                .with_metrics(metrics.clone())
                .with_private_prefix(settings.private_prefix.clone()),
        );
        let arena = body_arena(&settings);
        let loader = Arc::new(
            Loader::new(
                stores.clone(),
                settings.etag_hash_limit,
                settings.cache_max_object,
            )
            .with_arena(arena.clone()),
        );
        let cache = HotCache::new(
            CacheConfig {
                budget: settings.cache_size,
                max_object: settings.cache_max_object,
                revalidate_after: settings.revalidate_after,
                stale_while_revalidate: settings.stale_while_revalidate,
                stale_if_error: settings.stale_if_error,
                negative_ttl: settings.negative_ttl,
            },
            loader,
        );
        let db = match &settings.database_url {
            Some(url) => Some(Arc::new(
                Database::new(DbSettings::new(url.clone()), metrics.clone())
                    .map_err(|e| format!("database_url: {e}"))?,
            )),
            None => None,
        };
        let runtime = Arc::new(crate::status::Runtime {
            cache: cache.clone(),
            stores: stores.clone(),
        });
        let health = Health::new(
            probes,
            db.clone(),
            metrics.clone(),
            runtime,
            settings.health_interval,
            env!("CARGO_PKG_VERSION"),
        );
        if let Some(prefix) = &settings.private_prefix
            && settings.signing_secret.is_none()
        {
            tracing::warn!(
                prefix,
                "a private prefix without a signing secret: everything under it is a 404"
            );
        }
        let access = AccessRules::new(
            settings.private_prefix.clone(),
            settings.signing_secret.clone(),
        );
        let cors = crate::cors::CorsRules::new(&settings.cors_origins, &settings.cors_types);
        Ok(Arc::new(App {
            settings,
            stores,
            cache,
            policies,
            access,
            cors,
            metrics,
            health,
            db,
            arena,
            reported_evictions: Default::default(),
        }))
    }

    /// Runs one round of health probes, then starts the background tasks (health probes, the
    /// traffic-history writer). Returns the writer's handle, to await at shutdown.
    pub async fn spawn_background(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        self.health.probe_once().await;
        self.health.spawn_probes();
        if self.settings.warm_up && self.settings.cache_size > 0 {
            tokio::spawn(self.clone().warm_up());
        }
        self.db
            .as_ref()
            .map(|db| db.spawn_minute_writer(self.metrics.clone(), self.settings.instance.clone()))
    }

    /// Lists every source and looks each servable key up through the hot cache, in search
    /// order, until the cache budget is full: objects land in the cache and their content
    /// hashes in the ETag memo before the first client asks. Keys a client could not request
    /// (dotfiles, the private prefix, odd names) are skipped; listing errors end the warm-up of
    /// that source with a log line, never the server.
    pub async fn warm_up(self: Arc<Self>) {
        use futures::StreamExt;
        let started = std::time::Instant::now();
        let (mut loaded, mut skipped) = (0u64, 0u64);
        'sources: for source in self.stores.sources() {
            let mut listing = source.store().list(None);
            while let Some(item) = listing.next().await {
                let meta = match item {
                    Ok(meta) => meta,
                    Err(e) => {
                        tracing::warn!(store = %source.name, error = %e, "warm-up listing failed");
                        break;
                    }
                };
                let key = meta.location.to_string();
                // The same rules as request mapping: no hidden segments, no odd characters.
                let dotfiles = self.settings.serve_dotfiles;
                let servable = !key.contains('\\')
                    && !key.chars().any(char::is_control)
                    && key
                        .split('/')
                        .all(|seg| !seg.starts_with('.') || dotfiles || seg == ".well-known");
                if !servable
                    || self.access.is_private(&key)
                    || meta.size > self.settings.cache_max_object
                {
                    skipped += 1;
                    continue;
                }
                if self.cache.lookup(&key).await.is_ok() {
                    loaded += 1;
                }
                let stats = self.cache.stats();
                if stats.bytes + self.settings.cache_max_object > stats.budget {
                    break 'sources;
                }
            }
        }
        tracing::info!(
            loaded,
            skipped,
            cache_bytes = self.cache.stats().bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "warm-up done"
        );
    }

    /// Stops the background writers and lets the last partial minute reach the database.
    pub async fn shutdown_background(&self, writer: Option<tokio::task::JoinHandle<()>>) {
        if let Some(db) = &self.db {
            db.shutdown();
        }
        if let Some(writer) = writer {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        }
    }

    /// The Prometheus text, with cache and breaker gauges brought up to date first.
    pub fn metrics_text(&self) -> String {
        crate::status::refresh_gauges(self);
        self.metrics.encode()
    }
}

/// The body arena for the settings: with the hot cache and `sendfile` on, twice the cache
/// budget (see [`crate::sendfile`]). A system that cannot make one (no `memfd_create`, no
/// hole punching, shared memory forced to huge pages, not Linux) is logged, and the server
/// copies bodies as before.
fn body_arena(settings: &Settings) -> Option<Arc<BodyArena>> {
    if !settings.sendfile || settings.cache_size == 0 || settings.cache_max_object == 0 {
        return None;
    }
    match BodyArena::new(settings.cache_size.saturating_mul(2)) {
        Ok(arena) => Some(arena),
        Err(e) => {
            tracing::warn!(error = %e, "sendfile: cannot make the body arena; bodies are copied");
            None
        }
    }
}

/// Loads policies from `path`; when the path was not given explicitly and does not exist, the
/// embedded defaults are used.
pub fn load_policies(path: &Path, explicit: bool) -> Result<PolicyHandle, String> {
    if !explicit && !path.exists() {
        let set =
            crate::policy::PolicySet::from_str(EMBEDDED_POLICIES, "embedded policies/default.toml")
                .map_err(|e| e.to_string())?;
        tracing::info!(
            missing = %path.display(),
            "policies: the embedded defaults (no policy folder; SIGHUP reloads only a folder present at start)"
        );
        return Ok(PolicyHandle::from_set(set));
    }
    let handle = PolicyHandle::load(path).map_err(|e| e.to_string())?;
    tracing::info!(path = %path.display(), "policies loaded");
    Ok(handle)
}
