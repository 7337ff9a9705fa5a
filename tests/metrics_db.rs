//! The database pool, checks, minute rows and `report` against a real PostgreSQL, and a
//! database that goes away mid-run (a throwaway cluster started and stopped with pg_ctl).
//!
//! The shared server is `postgres://postgres@127.0.0.1:5432/test` (override with
//! `DATABASE_URL_TEST` or `CDN_ORIGIN_TEST_DATABASE_URL`). Each test works in its own schema
//! (through `search_path` in the URL), so runs do not see each other's rows. Without the server
//! the tests print why and return, unless `CI` is set, where they fail.

use cdn_origin::db::{Database, DbSettings, DbState, MinuteWriter};
use cdn_origin::health::{Health, HealthStatus, NoRuntimeStatus, StoreProbeTarget};
use cdn_origin::metrics::{CacheLabel, ContentClass, Metrics, RequestRecord};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn base_url() -> String {
    ["DATABASE_URL_TEST", "CDN_ORIGIN_TEST_DATABASE_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn skip_or_fail(reason: &str) {
    assert!(std::env::var_os("CI").is_none(), "required in CI: {reason}");
    eprintln!("skipping: {reason}");
}

async fn connect(url: &str) -> Option<tokio_postgres::Client> {
    let mut config: tokio_postgres::Config = url.parse().ok()?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(conn);
    Some(client)
}

/// A fresh schema on the shared server; `None` (after printing why) when it is unreachable.
struct Schema {
    name: String,
    admin: tokio_postgres::Client,
}

impl Schema {
    async fn create() -> Option<Schema> {
        let Some(admin) = connect(&base_url()).await else {
            skip_or_fail(&format!("PostgreSQL not reachable at {}", base_url()));
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "cdn_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        Some(Schema { name, admin })
    }

    fn url(&self) -> String {
        let base = base_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{}", self.name)
    }

    async fn drop_schema(self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await;
    }
}

fn fast_settings(url: String) -> DbSettings {
    let mut s = DbSettings::new(url);
    s.connect_timeout = Duration::from_secs(1);
    s.create_timeout = Duration::from_secs(1);
    s.wait_timeout = Duration::from_secs(1);
    s.recycle_timeout = Duration::from_secs(1);
    s.query_timeout = Duration::from_secs(2);
    s.maintenance_interval = Duration::from_millis(50);
    s.retry_initial = Duration::from_millis(50);
    s.retry_max = Duration::from_millis(400);
    s
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn record(m: &Metrics, cache: CacheLabel, n: usize, body: u64) {
    for _ in 0..n {
        m.record_request(&RequestRecord {
            method: &http::Method::GET,
            status: http::StatusCode::OK,
            cache,
            class: ContentClass::Image,
            body_bytes: body,
            saved_not_modified: 0,
            saved_compression: 0,
            latency: Duration::from_millis(1),
        });
    }
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_keeps_min_idle_and_retires_idle_connections_beyond_it() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let metrics = Arc::new(Metrics::new());
    let mut settings = fast_settings(schema.url());
    settings.idle_timeout = Duration::from_millis(300);
    let db = Database::new(settings, metrics.clone()).unwrap();
    wait_until("min idle 2", Duration::from_secs(10), || {
        let s = db.status();
        s.state == DbState::Up && s.pool.idle >= 2
    })
    .await;
    let status = db.status();
    assert_eq!((status.pool.max, status.pool.min_idle), (10, 2));
    assert!(
        !status.target.contains("postgres@"),
        "no credentials in {}",
        status.target
    );

    let held = futures::future::try_join_all((0..5).map(|_| db.get()))
        .await
        .unwrap();
    let busy = db.status().pool;
    assert!(busy.size >= 5 && busy.idle == 0, "{busy:?}");
    drop(held);
    assert!(db.status().pool.idle >= 5);
    // Idle beyond min_idle for longer than idle_timeout are closed, down to min_idle.
    wait_until("retire to min idle", Duration::from_secs(10), || {
        db.status().pool.size == 2
    })
    .await;
    let text = metrics.encode();
    assert_eq!(sample(&text, "cdn_origin_db_pool_max"), 10.0);
    assert_eq!(sample(&text, "cdn_origin_db_up"), 1.0);
    drop(db);
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_measures_select_1_and_flags_slow_answers() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let metrics = Arc::new(Metrics::new());
    let db = Database::new(fast_settings(schema.url()), metrics.clone()).unwrap();
    let check = db.check().await;
    assert!(check.ok, "{check:?}");
    assert!(check.latency > Duration::ZERO && check.latency < Duration::from_secs(1));
    assert!(!check.slow, "SELECT 1 on loopback under 100 ms: {check:?}");
    assert_eq!(db.state(), DbState::Up);
    let status = serde_json::to_value(db.status()).unwrap();
    assert_eq!(status["state"], "up");
    assert_eq!(status["last_check"]["ok"], true);
    assert!(status["last_check"]["latency_ms"].as_f64().unwrap() > 0.0);
    let text = metrics.encode();
    assert_eq!(
        sample(&text, "cdn_origin_db_checks_total{outcome=\"ok\"}"),
        1.0
    );
    assert!(sample(&text, "cdn_origin_db_check_last_duration_seconds") > 0.0);

    let mut strict = fast_settings(schema.url());
    strict.slow_check = Duration::from_nanos(1);
    let db = Database::new(strict, metrics).unwrap();
    assert!(db.check().await.slow);
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minute_rows_are_written_and_read_back_by_report() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let url = schema.url();
    let no_table = cdn_origin::report::report(&url, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(no_table.contains("no data"), "{no_table}");

    let db = Arc::new(Database::new(fast_settings(url.clone()), Arc::new(Metrics::new())).unwrap());
    // Two minutes of the previous hour, so both rows fall in one hour of the report.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hour = UNIX_EPOCH + Duration::from_secs(now - now % 3600 - 3600);
    let (m1, m2) = (
        hour + Duration::from_secs(600),
        hour + Duration::from_secs(660),
    );

    let metrics_a = Arc::new(Metrics::new());
    let mut a = MinuteWriter::new(db.clone(), metrics_a.clone(), "a".to_owned());
    record(&metrics_a, CacheLabel::Miss, 10, 1_000);
    a.collect(m1);
    record(&metrics_a, CacheLabel::Hit, 90, 1_000);
    record(&metrics_a, CacheLabel::Bypass, 5, 10);
    a.collect(m2);
    assert_eq!(a.flush().await.unwrap(), 2);
    assert_eq!(a.pending(), 0);

    let metrics_b = Arc::new(Metrics::new());
    let mut b = MinuteWriter::new(db.clone(), metrics_b.clone(), "b".to_owned());
    record(&metrics_b, CacheLabel::Hit, 100, 500);
    b.collect(m1);
    assert_eq!(b.flush().await.unwrap(), 1);
    // The same instance and minute again (a restart) adds to the row.
    record(&metrics_b, CacheLabel::Hit, 100, 500);
    b.collect(m1);
    b.flush().await.unwrap();

    let rows = cdn_origin::report::fetch_hours(&url, Duration::from_secs(3 * 3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.instances, 2);
    assert_eq!((r.requests, r.hits, r.misses, r.stale), (305, 290, 10, 0));
    assert_eq!(r.bytes_sent, 100_000 + 50 + 100_000);
    assert_eq!(r.hit_ratio(), Some(290.0 / 300.0));

    let text = cdn_origin::report::report(&url, Duration::from_secs(3 * 3600))
        .await
        .unwrap();
    assert!(text.contains(&r.hour), "{text}");
    assert!(text.contains("96.7 %"), "{text}");
    assert!(text.contains("hit ratio per hour"), "{text}");
    schema.drop_schema().await;
}

/// A PostgreSQL cluster of our own, stopped on drop.
struct Cluster {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// More server options (`-c name=value ...`).
    options: String,
}

impl Cluster {
    async fn start() -> Option<Cluster> {
        Cluster::start_with(|_| Some(String::new())).await
    }

    /// Starts a cluster whose extra server options `options` writes (given the cluster's
    /// directory, before it is handed to the postgres user); `None` from it skips.
    async fn start_with(
        options: impl FnOnce(&std::path::Path) -> Option<String>,
    ) -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .find(|b| b.join("pg_ctl").exists())
        });
        let Some(bin) = bin else {
            skip_or_fail("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let options = options(dir.path())?;
        let chown = tokio::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .await;
        if !chown.is_ok_and(|s| s.success()) {
            skip_or_fail("cannot hand a data directory to the postgres user (not root?)");
            return None;
        }
        let data = dir.path().join("data");
        let init = run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "--no-sync".as_ref(),
            ],
        )
        .await;
        assert!(init, "initdb failed");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let cluster = Cluster {
            bin,
            dir,
            port,
            options,
        };
        assert!(cluster.pg_ctl_start().await, "pg_ctl start failed");
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn pg_ctl_start(&self) -> bool {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off {}",
            self.port,
            self.dir.path().display(),
            self.options
        );
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        )
        .await
    }

    async fn pg_ctl_stop(&self) -> bool {
        let data = self.dir.path().join("data");
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
        .await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

async fn run_as_postgres(program: &std::path::Path, args: &[&std::ffi::OsStr]) -> bool {
    let out = tokio::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .await;
    match out {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "{} failed: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Err(e) => {
            eprintln!("{} did not run: {e}", program.display());
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_degrades_the_server_and_recovers() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let metrics = Arc::new(Metrics::new());
    let mut settings = fast_settings(cluster.url());
    settings.min_idle = 1;
    let db = Arc::new(Database::new(settings, metrics.clone()).unwrap());
    let store = StoreProbeTarget {
        name: "mem".to_owned(),
        store: Arc::new(object_store::memory::InMemory::new()),
    };
    let health = Health::new(
        vec![store],
        Some(db.clone()),
        metrics.clone(),
        Arc::new(NoRuntimeStatus),
        Duration::from_millis(100),
        "test",
    );
    let probes = health.spawn_probes();
    wait_until("ok at start", Duration::from_secs(15), || {
        health.status() == HealthStatus::Ok
    })
    .await;
    let mut writer = MinuteWriter::new(db.clone(), metrics.clone(), "x".to_owned());
    record(&metrics, CacheLabel::Hit, 3, 10);
    writer.collect(SystemTime::now() - Duration::from_secs(120));
    assert_eq!(writer.flush().await.unwrap(), 1);

    assert!(cluster.pg_ctl_stop().await, "pg_ctl stop failed");
    wait_until("db down", Duration::from_secs(15), || {
        db.state() == DbState::Down
    })
    .await;
    wait_until("degraded", Duration::from_secs(5), || {
        health.status() == HealthStatus::Degraded
    })
    .await;
    let (code, body) = health.ready();
    assert_eq!(
        code,
        http::StatusCode::OK,
        "a dead database does not stop serving"
    );
    let ready: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["database"].as_str()),
        (Some("degraded"), Some("down"))
    );
    let detail: serde_json::Value = serde_json::from_slice(&health.detailed().1).unwrap();
    assert_eq!(detail["database"]["state"], "down");
    assert!(
        detail["database"]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{detail}"
    );
    assert_eq!(sample(&metrics.encode(), "cdn_origin_db_up"), 0.0);

    // Minutes collected while the database is down stay queued.
    record(&metrics, CacheLabel::Miss, 7, 10);
    writer.collect(SystemTime::now() - Duration::from_secs(60));
    assert!(writer.flush().await.is_err());
    assert_eq!(writer.pending(), 1);

    assert!(cluster.pg_ctl_start().await, "pg_ctl restart failed");
    wait_until("db up again", Duration::from_secs(20), || {
        db.state() == DbState::Up
    })
    .await;
    wait_until("ok again", Duration::from_secs(5), || {
        health.status() == HealthStatus::Ok
    })
    .await;
    assert_eq!(
        writer.flush().await.unwrap(),
        1,
        "the queued minute goes out"
    );
    let client = connect(&cluster.url()).await.unwrap();
    let row = client
        .query_one("SELECT count(*), sum(requests)::bigint FROM cdn_origin_minute_stats WHERE instance = 'x'", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (2, 10));
    probes.abort();
    db.shutdown();
}

/// Writes a CA and a server certificate for `db.internal` signed by it (`ca.pem`,
/// `server.pem`, `server.key`), and a second CA that signed nothing (`other-ca.pem`), with the
/// openssl command line; `None` (after printing why, or failing under CI) without openssl.
fn write_certificates(dir: &std::path::Path) -> Option<()> {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca
openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other-ca
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=db.internal
printf 'subjectAltName=DNS:db.internal\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext
chmod 600 server.key
"#;
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .output();
    match out {
        Ok(out) if out.status.success() => Some(()),
        Ok(out) => {
            skip_or_fail(&format!(
                "openssl could not make test certificates: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            None
        }
        Err(e) => {
            skip_or_fail(&format!("openssl did not run: {e}"));
            None
        }
    }
}

/// Whether the pool's connection to `url` is encrypted, or the error it got.
async fn encrypted(url: String) -> Result<bool, String> {
    let db =
        Database::new(fast_settings(url), Arc::new(Metrics::new())).map_err(|e| e.to_string())?;
    let client = db.get().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get::<_, bool>(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_and_sslrootcert_mean_what_they_mean_to_libpq() {
    let Some(cluster) = Cluster::start_with(|dir| {
        write_certificates(dir)?;
        Some(format!(
            "-c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key",
            dir.display()
        ))
    })
    .await
    else {
        return;
    };
    let port = cluster.port;
    let certs = cluster.dir.path().display().to_string();
    // The certificate names db.internal: hostaddr connects to loopback under that name.
    let by_name = format!("postgres://postgres@db.internal:{port}/postgres?hostaddr=127.0.0.1");
    let by_ip = format!("postgres://postgres@127.0.0.1:{port}/postgres");

    // Not verifying: encrypted unless disabled, whatever the certificate.
    assert_eq!(
        encrypted(by_ip.clone()).await,
        Ok(true),
        "prefer, the default"
    );
    assert_eq!(
        encrypted(format!("{by_ip}?sslmode=require")).await,
        Ok(true)
    );
    assert_eq!(
        encrypted(format!("{by_ip}?sslmode=disable")).await,
        Ok(false)
    );

    // verify-full: the chain and the name; verify-ca: the chain only; require with a root
    // file checks the chain as well (as libpq does).
    let ca = format!("sslrootcert={certs}/ca.pem");
    let other_ca = format!("sslrootcert={certs}/other-ca.pem");
    let accepted = [
        format!("{by_name}&sslmode=verify-full&{ca}"),
        format!("{by_ip}?sslmode=verify-ca&{ca}"),
        format!("{by_ip}?sslmode=require&{ca}"),
    ];
    for url in accepted {
        assert_eq!(encrypted(url.clone()).await, Ok(true), "{url}");
    }
    let refused = [
        format!("{by_ip}?sslmode=verify-full&{ca}"),
        format!("{by_name}&sslmode=verify-full&{other_ca}"),
        format!("{by_ip}?sslmode=verify-ca&{other_ca}"),
        format!("{by_ip}?sslmode=require&{other_ca}"),
    ];
    for url in refused {
        let e = encrypted(url.clone()).await.unwrap_err();
        assert!(e.contains("invalid peer certificate"), "{url}: {e}");
    }

    // Settings errors name the parameter, before any connection.
    let e = encrypted(format!("{by_ip}?sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(e.contains("sslrootcert"), "{e}");
    drop(cluster);
}
