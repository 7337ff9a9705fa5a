//! Database settings: the pool shape our users run in production and every timeout, with
//! validation that lists every problem at once (for `cdn-origin check-config`).

use std::time::Duration;

/// Pool shape and timeouts. [`DbSettings::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// `postgres://user:password@host:port/dbname?...` (libpq URL or key=value form).
    pub url: String,
    /// Maximum connections (10).
    pub max_size: usize,
    /// Idle connections kept open by the maintenance task (2).
    pub min_idle: usize,
    /// TCP connect and start-up timeout per attempt (5 s).
    pub connect_timeout: Duration,
    /// Idle connections beyond `min_idle` unused this long are closed (30 s).
    pub idle_timeout: Duration,
    /// How long a caller waits for a free connection (2 s).
    pub wait_timeout: Duration,
    /// How long creating a connection may take in the pool (5 s).
    pub create_timeout: Duration,
    /// How long recycling (the liveness test of a returned connection) may take (2 s).
    pub recycle_timeout: Duration,
    /// How long one query (the check, a batch of minute rows) may take (5 s).
    pub query_timeout: Duration,
    /// A check slower than this is flagged `slow` (100 ms).
    pub slow_check: Duration,
    /// First retry delay after a failed connection (500 ms), doubled per failure.
    pub retry_initial: Duration,
    /// Longest retry delay (30 s).
    pub retry_max: Duration,
    /// How often the maintenance task runs while the database is up (5 s).
    pub maintenance_interval: Duration,
}

impl DbSettings {
    /// The production pool shape for `url`: max 10, min idle 2, idle timeout 30 s.
    pub fn new(url: impl Into<String>) -> DbSettings {
        DbSettings {
            url: url.into(),
            max_size: 10,
            min_idle: 2,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            wait_timeout: Duration::from_secs(2),
            create_timeout: Duration::from_secs(5),
            recycle_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(5),
            slow_check: Duration::from_millis(100),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            maintenance_interval: Duration::from_secs(5),
        }
    }

    /// Every problem with these settings, each naming its field; empty when valid.
    pub fn validate(&self) -> Vec<String> {
        self.prepare().err().unwrap_or_default()
    }

    /// What the pool connects with (the URL read once, root certificates included), or every
    /// problem with these settings.
    pub(super) fn prepare(
        &self,
    ) -> Result<
        (
            tokio_postgres::Config,
            tokio_postgres_rustls::MakeRustlsConnect,
        ),
        Vec<String>,
    > {
        let prepared = super::tls::prepare(&self.url);
        let mut problems = self.pool_problems();
        match prepared {
            Ok(prepared) if problems.is_empty() => Ok(prepared),
            Ok(_) => Err(problems),
            Err(e) => {
                problems.insert(0, format!("database_url: {e}"));
                Err(problems)
            }
        }
    }

    /// The problems of everything but the URL.
    fn pool_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_size == 0 {
            problems.push("database.max_size: must be at least 1".to_owned());
        }
        if self.min_idle > self.max_size {
            problems.push(format!(
                "database.min_idle: {} is more than max_size {}",
                self.min_idle, self.max_size
            ));
        }
        let timeouts = [
            ("connect_timeout", self.connect_timeout),
            ("idle_timeout", self.idle_timeout),
            ("wait_timeout", self.wait_timeout),
            ("create_timeout", self.create_timeout),
            ("recycle_timeout", self.recycle_timeout),
            ("query_timeout", self.query_timeout),
            ("slow_check", self.slow_check),
            ("retry_initial", self.retry_initial),
            ("retry_max", self.retry_max),
            ("maintenance_interval", self.maintenance_interval),
        ];
        for (name, value) in timeouts {
            if value.is_zero() {
                problems.push(format!("database.{name}: must be more than zero"));
            }
        }
        if self.retry_max < self.retry_initial {
            problems.push("database.retry_max: must not be less than retry_initial".to_owned());
        }
        problems
    }
}
