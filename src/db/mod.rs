//! The PostgreSQL pool behind the database health check and the per-minute traffic rows.
//!
//! deadpool-postgres gives the pool; this module adds what production needs and the crate
//! leaves out:
//!
//! * **Explicit timeouts.** deadpool waits forever by default; every `get` here has a wait,
//!   create and recycle timeout, tokio-postgres a connect timeout, and every query a timeout.
//! * **Min idle.** deadpool has no minimum: a maintenance task tops the pool up to `min_idle`
//!   idle connections (by checking out that many at once and returning them), so a burst does
//!   not pay the connection set-up, and retires idle connections unused for `idle_timeout`
//!   beyond that minimum (`Pool::retain`), plus any whose socket has closed.
//! * **Start without a database.** [`Database::new`] never connects; it cannot fail on an
//!   unreachable server. The maintenance task connects in the background and retries with
//!   exponential backoff (`retry_initial` doubling up to `retry_max`). The state (`connecting`,
//!   `up`, `down`) changes are logged once per change with stable fields:
//!   `event="db_state"`, `state`, `previous`, `target`, `error`.
//! * **A check** ([`Database::check`]) is `SELECT 1` with its latency, flagged slow above
//!   `slow_check` (100 ms by default); the health probes run it in the background.
//!
//! * **TLS** as libpq does it: `sslmode` (`disable`, `prefer` by default, `require`,
//!   `verify-ca`, `verify-full`) and `sslrootcert` in the URL ([`tls`]).
//!
//! The per-minute writer is in [`minutes`].

pub mod minutes;
mod settings;
mod status;
pub mod tls;

pub use minutes::{MINUTE_TABLE, MinuteRow, MinuteWriter};
pub use settings::DbSettings;
pub use status::{DbCheck, DbState, DbStatus, PoolFigures};

use crate::metrics::Metrics;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use deadpool_postgres::{TimeoutType, Timeouts};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Errors of the database layer. None of them is fatal to the server.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The settings are invalid (every problem listed).
    #[error("invalid database settings: {}", .0.join("; "))]
    Settings(Vec<String>),
    /// [`Database::new`] was called outside a tokio runtime.
    #[error("the database pool needs a tokio runtime")]
    NoRuntime,
    /// No connection could be had from the pool.
    #[error("database connection: {0}")]
    Connect(String),
    /// A query failed.
    #[error("database query: {0}")]
    Query(String),
    /// A query ran past `query_timeout`.
    #[error("database query timed out after {0:?}")]
    Timeout(Duration),
}

#[derive(Debug)]
struct StateCell {
    state: DbState,
    since: Instant,
    last_check: Option<DbCheck>,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    settings: DbSettings,
    metrics: Arc<Metrics>,
    target: String,
    state: Mutex<StateCell>,
    shutdown: watch::Sender<bool>,
}

/// The pool and its maintenance task. Share it as `Arc<Database>`.
#[derive(Debug)]
pub struct Database {
    inner: Arc<Inner>,
    maintenance: JoinHandle<()>,
}

impl Drop for Database {
    fn drop(&mut self) {
        self.maintenance.abort();
    }
}

/// `e` and its sources, joined by `: `.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn pool_error(e: &PoolError) -> DbError {
    match e {
        PoolError::Backend(pg) => DbError::Connect(error_chain(pg)),
        other => DbError::Connect(error_chain(other)),
    }
}

/// `host:port/dbname` for logs, without user or password.
fn describe_target(cfg: &tokio_postgres::Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", cfg.get_dbname().unwrap_or(""))
}

impl Database {
    /// Builds the pool and starts its maintenance task; does not connect. Fails only on
    /// invalid settings or outside a tokio runtime.
    pub fn new(settings: DbSettings, metrics: Arc<Metrics>) -> Result<Database, DbError> {
        let (mut pg, connector) = settings.prepare().map_err(DbError::Settings)?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| DbError::NoRuntime)?;
        pg.connect_timeout(settings.connect_timeout);
        // Keepalives find a peer that vanished without closing the socket.
        pg.keepalives(true).keepalives_idle(Duration::from_secs(30));
        if pg.get_application_name().is_none() {
            pg.application_name("cdn-origin");
        }
        let target = describe_target(&pg);
        let manager = Manager::from_config(
            pg,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_size)
            .wait_timeout(Some(settings.wait_timeout))
            .create_timeout(Some(settings.create_timeout))
            .recycle_timeout(Some(settings.recycle_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Settings(vec![format!("database pool: {e}")]))?;
        metrics.set_db_pool(0, 0, 0, settings.max_size as u64);
        metrics.set_db_up(false);
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            pool,
            settings,
            metrics,
            target,
            state: Mutex::new(StateCell {
                state: DbState::Connecting,
                since: Instant::now(),
                last_check: None,
                last_error: None,
            }),
            shutdown,
        });
        let maintenance = handle.spawn(maintain_forever(inner.clone()));
        Ok(Database { inner, maintenance })
    }

    /// The settings in force.
    pub fn settings(&self) -> &DbSettings {
        &self.inner.settings
    }

    /// The pool, for queries of other modules. Use [`Database::get`] for a connection with the
    /// configured timeouts and state tracking.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// A connection from the pool; a failure marks the database down.
    pub async fn get(&self) -> Result<deadpool_postgres::Object, DbError> {
        match self.inner.pool.get().await {
            Ok(client) => Ok(client),
            Err(e) => {
                let err = pool_error(&e);
                // Waiting for a free connection says nothing about the server.
                if !matches!(e, PoolError::Timeout(TimeoutType::Wait)) {
                    self.inner.set_state(DbState::Down, Some(err.to_string()));
                }
                Err(err)
            }
        }
    }

    /// Runs `SELECT 1` and records its latency (metrics, status, up/down state).
    pub async fn check(&self) -> DbCheck {
        let inner = &self.inner;
        let start = Instant::now();
        let at = SystemTime::now();
        let mut acquire = Duration::ZERO;
        let outcome: Result<Duration, DbError> = async {
            let client = self.get().await?;
            acquire = start.elapsed();
            let q = Instant::now();
            match tokio::time::timeout(
                inner.settings.query_timeout,
                client.simple_query("SELECT 1"),
            )
            .await
            {
                Ok(Ok(_)) => Ok(q.elapsed()),
                Ok(Err(e)) => {
                    // A connection that failed a query is not given back to the pool.
                    drop(deadpool_postgres::Object::take(client));
                    Err(DbError::Query(error_chain(&e)))
                }
                Err(_) => {
                    drop(deadpool_postgres::Object::take(client));
                    Err(DbError::Timeout(inner.settings.query_timeout))
                }
            }
        }
        .await;
        let check = match outcome {
            Ok(latency) => DbCheck {
                ok: true,
                latency,
                acquire,
                slow: latency > inner.settings.slow_check,
                error: None,
                at,
            },
            Err(e) => {
                let latency = start.elapsed();
                DbCheck {
                    ok: false,
                    latency,
                    acquire,
                    slow: latency > inner.settings.slow_check,
                    error: Some(e.to_string()),
                    at,
                }
            }
        };
        inner.metrics.record_db_check(check.latency, check.ok);
        if check.slow && check.ok {
            tracing::warn!(
                event = "db_check_slow",
                latency_ms = check.latency.as_secs_f64() * 1000.0,
                threshold_ms = inner.settings.slow_check.as_secs_f64() * 1000.0,
                target = %inner.target,
                "database check slow"
            );
        }
        if check.ok {
            inner.set_state(DbState::Up, None);
        } else {
            inner.set_state(DbState::Down, check.error.clone());
        }
        inner.state.lock().last_check = Some(check.clone());
        inner.publish_pool();
        check
    }

    /// The pool figures, last check and state.
    pub fn status(&self) -> DbStatus {
        let figures = self.inner.pool_figures();
        let cell = self.inner.state.lock();
        DbStatus {
            state: cell.state,
            state_seconds: cell.since.elapsed().as_secs_f64(),
            target: self.inner.target.clone(),
            pool: figures,
            last_check: cell.last_check.clone(),
            last_error: cell.last_error.clone(),
        }
    }

    /// The current reachability.
    pub fn state(&self) -> DbState {
        self.inner.state.lock().state
    }

    /// Starts the per-minute writer ([`MinuteWriter::run`]); it ends after [`Database::shutdown`]
    /// with a last flush of the partial minute.
    pub fn spawn_minute_writer(
        self: &Arc<Self>,
        metrics: Arc<Metrics>,
        instance: String,
    ) -> JoinHandle<()> {
        let writer = MinuteWriter::new(self.clone(), metrics, instance);
        let shutdown = self.inner.shutdown.subscribe();
        tokio::spawn(writer.run(shutdown))
    }

    /// Asks the background tasks to stop: the minute writer flushes its last rows and ends,
    /// the maintenance task ends. The pool stays usable.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub(crate) fn query_timeout(&self) -> Duration {
        self.inner.settings.query_timeout
    }
}

impl Inner {
    fn pool_figures(&self) -> PoolFigures {
        let s = self.pool.status();
        PoolFigures {
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
            max: s.max_size,
            min_idle: self.settings.min_idle,
        }
    }

    fn publish_pool(&self) {
        let f = self.pool_figures();
        self.metrics
            .set_db_pool(f.size as u64, f.idle as u64, f.waiting as u64, f.max as u64);
    }

    /// Records the state; logs and updates `db_up` only on a change.
    fn set_state(&self, new: DbState, error: Option<String>) {
        let mut cell = self.state.lock();
        if error.is_some() {
            cell.last_error.clone_from(&error);
        }
        let previous = cell.state;
        if previous == new {
            return;
        }
        cell.state = new;
        cell.since = Instant::now();
        drop(cell);
        self.metrics.set_db_up(new == DbState::Up);
        match new {
            DbState::Up => tracing::info!(
                event = "db_state", state = "up", previous = %previous, target = %self.target,
                "database up"
            ),
            _ => tracing::warn!(
                event = "db_state", state = %new, previous = %previous, target = %self.target,
                error = error.as_deref().unwrap_or(""),
                "database down"
            ),
        }
    }

    /// Retires idle connections and tops the pool up to `min_idle`. `Ok(true)` when it opened
    /// a connection, `Ok(false)` when there was nothing to do.
    async fn maintain(&self) -> Result<bool, DbError> {
        let s = self.pool.status();
        let min_idle = self.settings.min_idle;
        let idle_timeout = self.settings.idle_timeout;
        // Idle connections beyond min_idle unused for idle_timeout go; closed ones always go.
        let mut removable = s.available.saturating_sub(min_idle);
        self.pool.retain(|client, m| {
            if client.is_closed() {
                return false;
            }
            if removable > 0 && m.last_used() >= idle_timeout {
                removable -= 1;
                return false;
            }
            true
        });
        let s = self.pool.status();
        if s.available >= min_idle || s.size >= s.max_size {
            return Ok(false);
        }
        // Check out min_idle connections at once (idle ones first, new ones for the rest) and
        // give them back: afterwards at least min_idle are idle. Never queue behind callers.
        let timeouts = Timeouts {
            wait: Some(Duration::ZERO),
            create: Some(self.settings.create_timeout),
            recycle: Some(self.settings.recycle_timeout),
        };
        let before = s.size;
        let mut held = Vec::with_capacity(min_idle);
        for _ in 0..min_idle {
            match self.pool.timeout_get(&timeouts).await {
                Ok(client) => held.push(client),
                Err(PoolError::Timeout(TimeoutType::Wait)) => break,
                Err(e) => return Err(pool_error(&e)),
            }
        }
        drop(held);
        Ok(self.pool.status().size > before)
    }
}

async fn maintain_forever(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut backoff = inner.settings.retry_initial;
    loop {
        let delay = match inner.maintain().await {
            Ok(opened) => {
                if opened {
                    inner.set_state(DbState::Up, None);
                }
                backoff = inner.settings.retry_initial;
                inner.settings.maintenance_interval
            }
            Err(e) => {
                inner.set_state(DbState::Down, Some(e.to_string()));
                let delay = backoff;
                backoff = (backoff * 2).min(inner.settings.retry_max);
                tracing::debug!(
                    event = "db_retry",
                    delay_ms = delay.as_millis() as u64,
                    "database retry scheduled"
                );
                delay
            }
        };
        inner.publish_pool();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
