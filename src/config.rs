//! Settings: command-line flags, `CDN_ORIGIN_*` environment variables and a TOML file.
//!
//! Precedence is flag > environment > file > built-in default. clap gives flags and variables
//! (every flag has a `CDN_ORIGIN_…` twin); the file fills what neither set. All values are
//! parsed into domain types ([`ByteSize`], [`Seconds`], [`SocketAddr`], [`StoreSpec`]) whose
//! parsers are shared by the three sources, so a bad value gets the same message everywhere: a
//! flag error names the flag, a file error names the file, line, column and field (toml's spans,
//! see `load_file`). `Settings::validate` is the single place that checks the settings
//! against each other and lists every problem at once; `cdn-origin check-config` runs it without
//! starting the server.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Deserializer};

/// A byte count that accepts `256MiB`, `8MB`, `64k` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u64>() {
            return Ok(ByteSize(n));
        }
        t.parse::<bytesize::ByteSize>()
            .map(|b| ByteSize(b.as_u64()))
            .map_err(|_| format!("`{s}` is not a size (examples: 256MiB, 8MB, 65536)"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).display().iec())
    }
}

/// A duration that accepts `30s`, `5m`, `12h`, `30d`, `250ms` or a plain number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u64>() {
            return Ok(Seconds(Duration::from_secs(n)));
        }
        humantime::parse_duration(t)
            .map(Seconds)
            .map_err(|_| format!("`{s}` is not a duration (examples: 30s, 5m, 12h, 30d, 3600)"))
    }
}

/// Deserializes any `FromStr` domain type from a TOML string (or integer), so the file accepts
/// exactly what the flags accept and toml attaches the value's span to the error. Anything
/// else (a boolean, a float, a negative number, a table) is refused with what was expected.
fn from_str_value<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    struct Value<T>(std::marker::PhantomData<T>);

    impl<T: FromStr<Err = String>> serde::de::Visitor<'_> for Value<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string such as \"256MiB\" or \"30s\", or a whole number")
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<T, E> {
            T::from_str(&n.to_string()).map_err(E::custom)
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<T, E> {
            match u64::try_from(n) {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(n), &self)),
            }
        }

        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
            T::from_str(s).map_err(E::custom)
        }
    }

    de.deserialize_any(Value(std::marker::PhantomData))
        .map(Some)
}

/// A list, or one string of comma-separated members (`cors_origins = "*"`), as the flag and
/// its environment variable take it.
fn one_or_many<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string or a list of strings")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(de)? {
        OneOrMany::One(s) => s.split(',').map(|m| m.trim().to_string()).collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Where objects come from: a local folder, memory, or a cloud bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A local folder (absolute after `Settings::validate`).
    Local(PathBuf),
    /// An in-memory store (demos and tests).
    Memory,
    /// `s3://bucket/prefix`.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket (no leading or trailing slash; may be empty).
        prefix: String,
    },
    /// `gs://bucket/prefix`.
    Gcs {
        /// Bucket name.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// `az://container/prefix`.
    Azure {
        /// Container name.
        container: String,
        /// Key prefix.
        prefix: String,
    },
}

impl FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty store location".into());
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(StoreSpec::Local(PathBuf::from(s)));
        };
        let split = |rest: &str| -> Result<(String, String), String> {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("`{s}` names no bucket"));
            }
            Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(format!(
                        "`{s}`: file:// needs an absolute path (file:///srv/public)"
                    ));
                }
                let decoded = percent_encoding::percent_decode_str(rest)
                    .decode_utf8()
                    .map_err(|_| format!("`{s}` is not valid UTF-8 once decoded"))?;
                Ok(StoreSpec::Local(PathBuf::from(decoded.as_ref())))
            }
            "memory" => Ok(StoreSpec::Memory),
            "s3" | "s3a" => split(rest).map(|(bucket, prefix)| StoreSpec::S3 { bucket, prefix }),
            "gs" => split(rest).map(|(bucket, prefix)| StoreSpec::Gcs { bucket, prefix }),
            "az" | "azure" | "abfs" => {
                split(rest).map(|(container, prefix)| StoreSpec::Azure { container, prefix })
            }
            other => Err(format!(
                "`{s}`: unknown store scheme `{other}` (use a path, file://, memory://, s3://, gs:// or az://)"
            )),
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Local(p) => write!(f, "file://{}", p.display()),
            StoreSpec::Memory => write!(f, "memory://"),
            StoreSpec::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            StoreSpec::Gcs { bucket, prefix } => write!(f, "gs://{bucket}/{prefix}"),
            StoreSpec::Azure { container, prefix } => write!(f, "az://{container}/{prefix}"),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "cdn-origin",
    version,
    about = "An origin server for CDNs in front of object storage",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A subcommand; without one the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings for serving.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Validate every setting and policy file without starting; lists every problem of the
    /// settings (a file that does not parse, or a broken policy file, at its first error).
    CheckConfig(ServeArgs),
    /// Inspect cache policies.
    Policy {
        /// What to do.
        #[command(subcommand)]
        action: PolicyCommand,
    },
    /// Print hit rate and bandwidth per hour from the database.
    Report {
        /// How far back to look (e.g. 24h, 7d).
        #[arg(long, default_value = "24h")]
        since: Seconds,
        /// PostgreSQL URL.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Print a signed URL for a private object.
    Sign {
        /// The URL path to sign, e.g. /private/report.pdf, as written in a URL or decoded: `%XX`
        /// is read as an escape, so a file named `a%20b.pdf` is `/private/a%2520b.pdf`.
        path: String,
        /// How long the URL stays valid.
        #[arg(long, default_value = "1h")]
        ttl: Seconds,
        /// The signing secret (at least 32 bytes).
        #[arg(long, env = "CDN_ORIGIN_SIGNING_SECRET", hide_env_values = true)]
        secret: String,
        /// Base URL to prefix (e.g. https://cdn.example.com).
        #[allow(rustdoc::bare_urls)] // a `--help` text, where markup would show as written
        #[arg(long, default_value = "")]
        base: String,
    },
    /// Exit 0 when the server at URL answers /health with 200 (for container health checks).
    Healthcheck {
        /// Liveness URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/health")]
        url: String,
    },
}

/// `cdn-origin policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show which rule matches PATH and the headers it gives, under the settings the server
    /// would run with (the same flags, variables and `--config` file: the policies, the private
    /// prefix, dotfiles).
    Explain {
        /// URL path, e.g. /assets/app.3f9a1c2e.js.
        path: String,
        /// The server's settings.
        #[command(flatten)]
        settings: Box<ServeArgs>,
    },
}

/// Flags of the server. Every field is optional so that the TOML file can fill the gaps.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Object sources, searched in order: a folder, file:///abs, memory://, s3://bucket/prefix, gs://bucket, az://container (default: ./public).
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<StoreSpec>,
    /// More sources (same forms as SOURCE), searched after the positional ones.
    #[arg(
        long = "store",
        value_name = "URL",
        env = "CDN_ORIGIN_STORE",
        value_delimiter = ','
    )]
    pub stores: Vec<StoreSpec>,
    /// TOML settings file.
    #[arg(long, env = "CDN_ORIGIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "CDN_ORIGIN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, env = "CDN_ORIGIN_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Write one access-log line per request.
    #[arg(long, env = "CDN_ORIGIN_ACCESS_LOG", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub access_log: Option<bool>,
    /// Policy file or folder.
    #[arg(long, env = "CDN_ORIGIN_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Key prefix that is never served without a valid signature (e.g. `private/`).
    #[arg(long, env = "CDN_ORIGIN_PRIVATE_PREFIX")]
    pub private_prefix: Option<String>,
    /// Serve dotfiles (`.well-known` is always served).
    #[arg(long, env = "CDN_ORIGIN_SERVE_DOTFILES", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub serve_dotfiles: Option<bool>,
    /// S3 endpoint for S3-compatible stores (MinIO, R2, moto).
    #[arg(long, env = "CDN_ORIGIN_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default from AWS_REGION, else us-east-1).
    #[arg(long, env = "CDN_ORIGIN_S3_REGION")]
    pub s3_region: Option<String>,
    /// Allow plain-HTTP store endpoints.
    #[arg(long, env = "CDN_ORIGIN_S3_ALLOW_HTTP", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_allow_http: Option<bool>,
    /// Timeout for one store request.
    #[arg(long, env = "CDN_ORIGIN_STORE_TIMEOUT")]
    pub store_timeout: Option<Seconds>,
    /// Connect timeout towards the store.
    #[arg(long, env = "CDN_ORIGIN_STORE_CONNECT_TIMEOUT")]
    pub store_connect_timeout: Option<Seconds>,
    /// Retries for a failed store request.
    #[arg(long, env = "CDN_ORIGIN_STORE_RETRIES")]
    pub store_retries: Option<usize>,
    /// Log store requests slower than this.
    #[arg(long, env = "CDN_ORIGIN_SLOW_STORE")]
    pub slow_store: Option<Seconds>,
    /// How long in-flight responses may finish after SIGTERM.
    #[arg(long, env = "CDN_ORIGIN_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<Seconds>,
    /// Time allowed to send request headers.
    #[arg(long, env = "CDN_ORIGIN_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<Seconds>,
    /// Close a connection with no traffic in either direction for this long.
    #[arg(long, env = "CDN_ORIGIN_IDLE_TIMEOUT")]
    pub idle_timeout: Option<Seconds>,
    /// Largest request head (request line plus headers).
    #[arg(long, env = "CDN_ORIGIN_MAX_HEADER_SIZE")]
    pub max_header_size: Option<ByteSize>,
    /// Most open connections; more are refused with 503.
    #[arg(long, env = "CDN_ORIGIN_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Event loops serving connections, each a single-threaded runtime on its own thread
    /// (default: one per CPU).
    #[arg(long, env = "CDN_ORIGIN_EVENT_LOOPS")]
    pub event_loops: Option<usize>,
    /// Objects up to this size get a content-hash ETag; larger ones a derived one.
    #[arg(long, env = "CDN_ORIGIN_ETAG_HASH_LIMIT")]
    pub etag_hash_limit: Option<ByteSize>,
    /// At start, list the sources and load objects into the hot cache (and their ETags into
    /// the hash memo) in the background until the budget is full.
    #[arg(long, env = "CDN_ORIGIN_WARM_UP", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub warm_up: Option<bool>,
    /// Keep cached bodies of 16-96 KiB in a memory file and send them with sendfile(2),
    /// without copying them (Linux; default on).
    #[arg(long, env = "CDN_ORIGIN_SENDFILE", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub sendfile: Option<bool>,
    /// Serve plain HTTP/1.1 GET and HEAD requests with cdn-origin's own HTTP/1 layer, and
    /// everything else with hyper (default on; off: hyper serves every request).
    #[arg(long, env = "CDN_ORIGIN_FAST_HTTP1", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub fast_http1: Option<bool>,
    /// Hot cache budget (0 disables the cache).
    #[arg(long, env = "CDN_ORIGIN_CACHE_SIZE")]
    pub cache_size: Option<ByteSize>,
    /// Largest object kept in the hot cache.
    #[arg(long, env = "CDN_ORIGIN_CACHE_MAX_OBJECT")]
    pub cache_max_object: Option<ByteSize>,
    /// A cached entry is fresh for this long, then revalidated with the store.
    #[arg(long, env = "CDN_ORIGIN_REVALIDATE_AFTER")]
    pub revalidate_after: Option<Seconds>,
    /// After freshness ends, serve the stale entry at once and refresh in the background for this long.
    #[arg(long, env = "CDN_ORIGIN_STALE_WHILE_REVALIDATE")]
    pub stale_while_revalidate: Option<Seconds>,
    /// When the store fails, serve a stale entry up to this long after freshness ended.
    #[arg(long, env = "CDN_ORIGIN_STALE_IF_ERROR")]
    pub stale_if_error: Option<Seconds>,
    /// Remember a missing key for this long.
    #[arg(long, env = "CDN_ORIGIN_NEGATIVE_TTL")]
    pub negative_ttl: Option<Seconds>,
    /// Consecutive store failures that open the circuit breaker.
    #[arg(long, env = "CDN_ORIGIN_BREAKER_FAILURES")]
    pub breaker_failures: Option<u32>,
    /// How long an open breaker waits before a probe.
    #[arg(long, env = "CDN_ORIGIN_BREAKER_COOLDOWN")]
    pub breaker_cooldown: Option<Seconds>,
    /// Bearer token for POST /_admin/purge (unset: the endpoint does not exist).
    #[arg(long, env = "CDN_ORIGIN_PURGE_TOKEN", hide_env_values = true)]
    pub purge_token: Option<String>,
    /// Smallest body compressed on the fly.
    #[arg(long, env = "CDN_ORIGIN_COMPRESS_MIN_SIZE")]
    pub compress_min_size: Option<ByteSize>,
    /// Serve identity instead of 406 when the client refuses every coding we have, identity
    /// included (`identity;q=0`, `*;q=0`). Off by default: RFC 9110 §12.5.3 asks for identity
    /// only when identity is not refused.
    #[arg(long, env = "CDN_ORIGIN_IDENTITY_FALLBACK", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub identity_fallback: Option<bool>,
    /// PostgreSQL URL for the health check and the traffic history.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// How often background health probes run.
    #[arg(long, env = "CDN_ORIGIN_HEALTH_INTERVAL")]
    pub health_interval: Option<Seconds>,
    /// Name of this instance in the traffic history (default: host name).
    #[arg(long, env = "CDN_ORIGIN_INSTANCE")]
    pub instance: Option<String>,
    /// Secret for signed URLs (at least 32 bytes).
    #[arg(long, env = "CDN_ORIGIN_SIGNING_SECRET", hide_env_values = true)]
    pub signing_secret: Option<String>,
    /// Origins allowed by CORS for fonts and media (comma-separated, or `*`).
    #[arg(long, env = "CDN_ORIGIN_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Content types that get CORS headers (comma-separated: `font/*`, `text/vtt`, or `*` for
    /// every type; default: fonts, audio, video, text tracks and HLS/DASH manifests).
    #[arg(long, env = "CDN_ORIGIN_CORS_TYPES", value_delimiter = ',')]
    pub cors_types: Vec<String>,
}

/// The TOML settings file: the same settings as the flags, with snake_case names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default, deserialize_with = "from_str_value")]
    listen: Option<SocketAddrValue>,
    log_format: Option<LogFormat>,
    access_log: Option<bool>,
    policies: Option<PathBuf>,
    private_prefix: Option<String>,
    serve_dotfiles: Option<bool>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_allow_http: Option<bool>,
    #[serde(default, deserialize_with = "from_str_value")]
    store_timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "from_str_value")]
    store_connect_timeout: Option<Seconds>,
    store_retries: Option<usize>,
    #[serde(default, deserialize_with = "from_str_value")]
    slow_store: Option<Seconds>,
    #[serde(default, deserialize_with = "from_str_value")]
    drain_timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "from_str_value")]
    header_read_timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "from_str_value")]
    idle_timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "from_str_value")]
    max_header_size: Option<ByteSize>,
    max_connections: Option<usize>,
    event_loops: Option<usize>,
    #[serde(default, deserialize_with = "from_str_value")]
    etag_hash_limit: Option<ByteSize>,
    warm_up: Option<bool>,
    sendfile: Option<bool>,
    fast_http1: Option<bool>,
    #[serde(default, deserialize_with = "from_str_value")]
    cache_size: Option<ByteSize>,
    #[serde(default, deserialize_with = "from_str_value")]
    cache_max_object: Option<ByteSize>,
    #[serde(default, deserialize_with = "from_str_value")]
    revalidate_after: Option<Seconds>,
    #[serde(default, deserialize_with = "from_str_value")]
    stale_while_revalidate: Option<Seconds>,
    #[serde(default, deserialize_with = "from_str_value")]
    stale_if_error: Option<Seconds>,
    #[serde(default, deserialize_with = "from_str_value")]
    negative_ttl: Option<Seconds>,
    breaker_failures: Option<u32>,
    #[serde(default, deserialize_with = "from_str_value")]
    breaker_cooldown: Option<Seconds>,
    purge_token: Option<String>,
    #[serde(default, deserialize_with = "from_str_value")]
    compress_min_size: Option<ByteSize>,
    identity_fallback: Option<bool>,
    database_url: Option<String>,
    #[serde(default, deserialize_with = "from_str_value")]
    health_interval: Option<Seconds>,
    instance: Option<String>,
    signing_secret: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    cors_origins: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    cors_types: Vec<String>,
}

/// `SocketAddr` through the shared string parser.
#[derive(Debug, Clone, Copy)]
struct SocketAddrValue(SocketAddr);
impl FromStr for SocketAddrValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(SocketAddrValue)
            .map_err(|_| format!("`{s}` is not an address:port (example: 127.0.0.1:8080)"))
    }
}

/// A startup error that names where the bad value came from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads and parses the settings file; errors name the file, line, column and field.
fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "{}: cannot read settings file: {e}",
            path.display()
        ))
    })?;
    toml::from_str::<FileConfig>(&text).map_err(|e| {
        let start = e.span().map_or(0, |span| span.start);
        let (line, col) = line_col(&text, start);
        // The key of the line the error points at, so the message names its field whatever
        // toml's own words are (`duplicate key`, a type error).
        let field = text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.split_once('='))
            .map(|(key, _)| key.trim().trim_matches('"'))
            .filter(|key| !key.is_empty() && !key.starts_with('['))
            .map(|key| format!("field `{key}`: "))
            .unwrap_or_default();
        ConfigError(format!(
            "{}:{line}:{col}: {field}{}",
            path.display(),
            e.message().trim_end()
        ))
    })
}

/// The content types that get CORS headers unless `cors_types` says otherwise: what browsers
/// fetch cross-origin in CORS mode for fonts and media (`@font-face`, `<video crossorigin>`,
/// text tracks, which are always CORS requests when cross-origin, and HLS/DASH players'
/// manifests and segments).
pub const DEFAULT_CORS_TYPES: &[&str] = &[
    "font/*",
    "application/font-woff",
    "audio/*",
    "video/*",
    "text/vtt",
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "application/dash+xml",
];

/// A `cors_origins` member: `*`, or an origin exactly as a browser sends it in `Origin`
/// (`scheme://host[:port]`, lowercase, no path, no default port), since it is compared with
/// that header byte for byte.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let url = url::Url::parse(origin)
        .map_err(|e| format!("is not an origin like https://app.example.com ({e})"))?;
    let serialized = url.origin().ascii_serialization();
    if serialized == origin {
        Ok(())
    } else if serialized == "null" {
        Err("is not an origin like https://app.example.com".into())
    } else {
        Err(format!(
            "is not an origin as browsers send it: `{serialized}`"
        ))
    }
}

/// The `CDN_ORIGIN_*` variables of this process that are no setting's (a misspelt
/// `CDN_ORIGIN_CACHESIZE` would otherwise be ignored without a word). `CDN_ORIGIN_TEST_*`
/// belong to the test suite.
pub fn unknown_env_vars() -> Vec<String> {
    let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    unknown_vars(names)
}

fn unknown_vars(names: impl Iterator<Item = String>) -> Vec<String> {
    use clap::CommandFactory;
    fn known(cmd: &clap::Command, into: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                into.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            known(sub, into);
        }
    }
    let mut settings = Vec::new();
    known(&Cli::command(), &mut settings);
    let mut unknown: Vec<String> = names
        .filter(|n| n.starts_with("CDN_ORIGIN_") && !n.starts_with("CDN_ORIGIN_TEST_"))
        .filter(|n| !settings.contains(n))
        .collect();
    unknown.sort();
    unknown
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Fully resolved settings with defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sources in search order.
    pub sources: Vec<StoreSpec>,
    /// Listen address.
    pub listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Access log on/off.
    pub access_log: bool,
    /// Policy file or folder.
    pub policies: PathBuf,
    /// Whether the policy path was given (else a missing `policies/` falls back to the embedded defaults).
    pub policies_explicit: bool,
    /// Private key prefix (normalised: no leading slash, trailing slash).
    pub private_prefix: Option<String>,
    /// Serve dotfiles.
    pub serve_dotfiles: bool,
    /// S3 endpoint.
    pub s3_endpoint: Option<String>,
    /// S3 region.
    pub s3_region: Option<String>,
    /// Allow plain HTTP towards stores.
    pub s3_allow_http: bool,
    /// Per-request store timeout.
    pub store_timeout: Duration,
    /// Store connect timeout.
    pub store_connect_timeout: Duration,
    /// Store retries.
    pub store_retries: usize,
    /// Slow store request log threshold.
    pub slow_store: Duration,
    /// Drain timeout at shutdown.
    pub drain_timeout: Duration,
    /// Header read timeout.
    pub header_read_timeout: Duration,
    /// Idle connection timeout.
    pub idle_timeout: Duration,
    /// Maximum request head size.
    pub max_header_size: usize,
    /// Maximum open connections.
    pub max_connections: usize,
    /// Event loops (threads) that serve connections.
    pub event_loops: usize,
    /// Content-hash ETags up to this size.
    pub etag_hash_limit: u64,
    /// Warm the hot cache from a listing at start.
    pub warm_up: bool,
    /// Cached bodies of 16-96 KiB in a memory file, sent with `sendfile` (see
    /// [`crate::sendfile`]).
    pub sendfile: bool,
    /// Plain HTTP/1.1 GET and HEAD requests served by our own HTTP/1 layer (see
    /// [`crate::server::http1`]); the rest, or all with this off, by hyper.
    pub fast_http1: bool,
    /// Hot cache budget in bytes.
    pub cache_size: u64,
    /// Largest cached object.
    pub cache_max_object: u64,
    /// Freshness towards the store.
    pub revalidate_after: Duration,
    /// Stale-while-revalidate window towards the store.
    pub stale_while_revalidate: Duration,
    /// Stale-if-error window towards the store.
    pub stale_if_error: Duration,
    /// Negative cache lifetime.
    pub negative_ttl: Duration,
    /// Breaker threshold.
    pub breaker_failures: u32,
    /// Breaker cooldown.
    pub breaker_cooldown: Duration,
    /// Purge endpoint token.
    pub purge_token: Option<String>,
    /// Minimum size for on-the-fly compression.
    pub compress_min_size: u64,
    /// Identity instead of 406 when every coding, identity included, is refused (default off).
    pub identity_fallback: bool,
    /// Database URL.
    pub database_url: Option<String>,
    /// Health probe interval.
    pub health_interval: Duration,
    /// Instance name.
    pub instance: String,
    /// Signed-URL secret.
    pub signing_secret: Option<Vec<u8>>,
    /// CORS allowed origins.
    pub cors_origins: Vec<String>,
    /// Content types (patterns: `font/*`, `text/vtt`, `*`) whose responses get CORS headers.
    pub cors_types: Vec<String>,
}

impl Settings {
    /// Merges flags/env over the file over defaults, then validates. Every problem is listed.
    pub fn resolve(args: &ServeArgs) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let file_origin = args
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut problems = Vec::new();

        let mut sources: Vec<StoreSpec> =
            args.sources.iter().chain(&args.stores).cloned().collect();
        if sources.is_empty() {
            for (i, s) in file.sources.iter().enumerate() {
                match s.parse::<StoreSpec>() {
                    Ok(spec) => sources.push(spec),
                    Err(e) => problems.push(format!("{file_origin}: field `sources[{i}]`: {e}")),
                }
            }
        }
        if sources.is_empty() {
            sources.push(StoreSpec::Local(PathBuf::from("public")));
        }

        macro_rules! pick {
            ($field:ident, $default:expr) => {
                args.$field
                    .clone()
                    .or(file.$field.clone())
                    .unwrap_or($default)
            };
        }
        let secs = |d: u64| Seconds(Duration::from_secs(d));
        let mib = |n: u64| ByteSize(n * 1024 * 1024);

        let settings = Settings {
            sources,
            listen: args
                .listen
                .or(file.listen.map(|a| a.0))
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            log_format: pick!(log_format, LogFormat::Human),
            access_log: pick!(access_log, false),
            policies: pick!(policies, PathBuf::from("policies")),
            policies_explicit: args.policies.is_some() || file.policies.is_some(),
            private_prefix: args
                .private_prefix
                .clone()
                .or(file.private_prefix.clone())
                .map(|p| format!("{}/", p.trim_matches('/')))
                .filter(|p| p != "/"),
            serve_dotfiles: pick!(serve_dotfiles, false),
            s3_endpoint: args.s3_endpoint.clone().or(file.s3_endpoint.clone()),
            s3_region: args.s3_region.clone().or(file.s3_region.clone()),
            s3_allow_http: pick!(s3_allow_http, false),
            store_timeout: pick!(store_timeout, secs(10)).0,
            store_connect_timeout: pick!(store_connect_timeout, secs(3)).0,
            store_retries: pick!(store_retries, 2),
            slow_store: pick!(slow_store, secs(1)).0,
            drain_timeout: pick!(drain_timeout, secs(10)).0,
            header_read_timeout: pick!(header_read_timeout, secs(10)).0,
            // Longer than the 60 s that proxies keep an idle upstream connection (nginx's
            // upstream `keepalive_timeout`, Varnish's `backend_idle_timeout`), so that the CDN
            // closes first and never sends a request on a connection we are closing. nginx's
            // own default.
            idle_timeout: pick!(idle_timeout, secs(75)).0,
            max_header_size: pick!(max_header_size, ByteSize(64 * 1024)).0 as usize,
            max_connections: pick!(max_connections, 10_000),
            event_loops: pick!(
                event_loops,
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            ),
            etag_hash_limit: pick!(etag_hash_limit, mib(8)).0,
            warm_up: pick!(warm_up, false),
            sendfile: pick!(sendfile, true),
            fast_http1: pick!(fast_http1, true),
            cache_size: pick!(cache_size, mib(256)).0,
            cache_max_object: pick!(cache_max_object, mib(8)).0,
            revalidate_after: pick!(revalidate_after, secs(30)).0,
            stale_while_revalidate: pick!(stale_while_revalidate, secs(60)).0,
            stale_if_error: pick!(stale_if_error, secs(86_400)).0,
            negative_ttl: pick!(negative_ttl, secs(5)).0,
            breaker_failures: pick!(breaker_failures, 5),
            breaker_cooldown: pick!(breaker_cooldown, secs(30)).0,
            purge_token: args.purge_token.clone().or(file.purge_token.clone()),
            compress_min_size: pick!(compress_min_size, ByteSize(1024)).0,
            identity_fallback: pick!(identity_fallback, false),
            database_url: args.database_url.clone().or(file.database_url.clone()),
            health_interval: pick!(health_interval, secs(30)).0,
            instance: args
                .instance
                .clone()
                .or(file.instance.clone())
                .unwrap_or_else(default_instance),
            signing_secret: args
                .signing_secret
                .clone()
                .or(file.signing_secret.clone())
                .map(String::into_bytes),
            // Spaces after commas and a trailing `/` are forgiven, wherever the list came from
            // (the comparison with `Origin` has always ignored a trailing `/`).
            cors_origins: if args.cors_origins.is_empty() {
                &file.cors_origins
            } else {
                &args.cors_origins
            }
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect(),
            cors_types: match (&args.cors_types[..], &file.cors_types[..]) {
                ([], []) => DEFAULT_CORS_TYPES.iter().map(|t| t.to_string()).collect(),
                ([], listed) | (listed, _) => listed
                    .iter()
                    .map(|t| t.trim().to_ascii_lowercase())
                    .filter(|t| !t.is_empty())
                    .collect(),
            },
        };
        settings.validate(problems)
    }

    /// Cross-field checks; `problems` may already hold parse problems. All are reported at once.
    fn validate(mut self, mut problems: Vec<String>) -> Result<Settings, ConfigError> {
        for spec in &mut self.sources {
            if let StoreSpec::Local(path) = spec {
                match std::fs::canonicalize(&*path) {
                    Ok(abs) if abs.is_dir() => *path = abs,
                    Ok(abs) => problems.push(format!("source `{}` is not a folder", abs.display())),
                    // `--sendfile false` (a boolean flag takes its value after `=`) leaves
                    // `false` as a source: say so rather than only that it is missing.
                    Err(e) if matches!(path.to_str(), Some("true" | "false")) => problems.push(
                        format!(
                            "source folder `{}`: {e} (a boolean flag takes its value after `=`: `--flag=false`)",
                            path.display()
                        ),
                    ),
                    Err(e) => problems.push(format!("source folder `{}`: {e}", path.display())),
                }
            }
        }
        if self.max_header_size < 8 * 1024 {
            problems.push("max_header_size: must be at least 8KiB (hyper's minimum buffer)".into());
        }
        if self.max_header_size > MAX_HEADER_SIZE_LIMIT {
            problems.push("max_header_size: must be at most 16MiB".into());
        }
        if self.max_connections == 0 {
            problems.push("max_connections: must be at least 1".into());
        }
        if !(1..=1024).contains(&self.event_loops) {
            problems.push("event_loops: must be between 1 and 1024".into());
        }
        if self.cache_size > 0 && self.cache_max_object > self.cache_size {
            problems.push(format!(
                "cache_max_object ({}) is larger than cache_size ({})",
                ByteSize(self.cache_max_object),
                ByteSize(self.cache_size)
            ));
        }
        if self.breaker_failures == 0 {
            problems.push("breaker_failures: must be at least 1".into());
        }
        for origin in &self.cors_origins {
            if let Err(why) = check_origin(origin) {
                problems.push(format!("cors_origins: `{origin}` {why}"));
            }
        }
        for pattern in &self.cors_types {
            if crate::cors::TypePattern::parse(pattern).is_none() {
                problems.push(format!(
                    "cors_types: `{pattern}` is not a content type like `font/*`, `text/vtt` or `*`"
                ));
            }
        }
        for (name, d) in [
            ("store_timeout", self.store_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("health_interval", self.health_interval),
        ] {
            if d.is_zero() {
                problems.push(format!("{name}: must be longer than zero"));
            }
        }
        if let Some(token) = &self.purge_token
            && token.len() < 16
        {
            problems.push("purge_token: must be at least 16 characters".into());
        }
        if let Some(secret) = &self.signing_secret
            && secret.len() < 32
        {
            problems.push(format!(
                "signing_secret: must be at least 32 bytes (got {})",
                secret.len()
            ));
        }
        if self.signing_secret.is_none() && self.private_prefix.is_some() {
            tracing::info!(
                prefix = self.private_prefix.as_deref().unwrap_or(""),
                "no signing secret: the private prefix is never served"
            );
        }
        if let Some(url) = &self.database_url {
            // The URL's TLS parameters (libpq's, wider than tokio-postgres's) are read there.
            problems.extend(crate::db::DbSettings::new(url.clone()).validate());
        }
        let needs_s3 = self
            .sources
            .iter()
            .any(|s| matches!(s, StoreSpec::S3 { .. }));
        if let Some(endpoint) = &self.s3_endpoint {
            if url::Url::parse(endpoint).is_err() {
                problems.push(format!("s3_endpoint: `{endpoint}` is not a URL"));
            } else if endpoint.starts_with("http://") && !self.s3_allow_http && needs_s3 {
                problems.push("s3_endpoint is plain http: set s3_allow_http = true".into());
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError(format!(
                "invalid settings:\n  - {}",
                problems.join("\n  - ")
            )))
        }
    }
}

fn default_instance() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "cdn-origin".into())
}

/// The largest `max_header_size` accepted: far above any real request head, and small
/// enough for every offset into a head to fit the 32 bits the HTTP/1 layer and HTTP/2's
/// header-list limit keep them in.
const MAX_HEADER_SIZE_LIMIT: usize = 16 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_units_and_plain_numbers() {
        assert_eq!("256MiB".parse::<ByteSize>().unwrap().0, 256 * 1024 * 1024);
        assert_eq!("65536".parse::<ByteSize>().unwrap().0, 65536);
        assert!("lots".parse::<ByteSize>().is_err());
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!("30s".parse::<Seconds>().unwrap().0, Duration::from_secs(30));
        assert_eq!(
            "30d".parse::<Seconds>().unwrap().0,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            "3600".parse::<Seconds>().unwrap().0,
            Duration::from_secs(3600)
        );
        assert!("soon".parse::<Seconds>().is_err());
    }

    #[test]
    fn store_urls_parse_by_scheme() {
        assert_eq!("memory://".parse::<StoreSpec>().unwrap(), StoreSpec::Memory);
        assert_eq!(
            "s3://bucket/a/b/".parse::<StoreSpec>().unwrap(),
            StoreSpec::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            "./public".parse::<StoreSpec>().unwrap(),
            StoreSpec::Local(PathBuf::from("./public"))
        );
        assert!("ftp://x".parse::<StoreSpec>().is_err());
        assert!("s3://".parse::<StoreSpec>().is_err());
        assert!("file://relative".parse::<StoreSpec>().is_err());
    }

    #[test]
    fn file_errors_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("origin.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ncache_size = \"huge\"\n",
        )
        .unwrap();
        let err = load_file(&path).unwrap_err().0;
        assert!(err.contains("origin.toml:2:"), "{err}");
        assert!(err.contains("huge"), "{err}");

        std::fs::write(&path, "\n\ncolour = 3\n").unwrap();
        let err = load_file(&path).unwrap_err().0;
        assert!(err.contains("origin.toml:3:"), "{err}");
        assert!(err.contains("colour"), "{err}");

        // A value of the wrong type, a negative size, a key set twice: each names its field
        // and says what was wanted.
        for (text, line, wanted) in [
            ("cache_size = true\n", 1, "a string such as"),
            ("\ncache_size = -1\n", 2, "a string such as"),
            ("cache_size = 1.5\n", 1, "a string such as"),
            (
                "idle_timeout = \"5s\"\nidle_timeout = \"6s\"\n",
                2,
                "duplicate key",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = load_file(&path).unwrap_err().0;
            assert!(err.contains(&format!("origin.toml:{line}:")), "{err}");
            assert!(err.contains("field `"), "{err}");
            assert!(err.contains(wanted), "{err}");
            assert!(!err.contains("untagged"), "{err}");
        }
    }

    #[test]
    fn boolean_flags_take_their_value_after_an_equals_sign_only() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["cdn-origin", "--access-log", "./public"]).unwrap();
        assert_eq!(cli.serve.access_log, Some(true));
        assert_eq!(
            cli.serve.sources,
            [StoreSpec::Local(PathBuf::from("./public"))]
        );
        for (arg, want) in [
            ("--fast-http1=false", false),
            ("--fast-http1=no", false),
            ("--fast-http1=0", false),
            ("--fast-http1=on", true),
            ("--fast-http1", true),
        ] {
            let cli = Cli::try_parse_from(["cdn-origin", arg]).unwrap();
            assert_eq!(cli.serve.fast_http1, Some(want), "{arg}");
        }
        assert!(Cli::try_parse_from(["cdn-origin", "--fast-http1=maybe"]).is_err());
    }

    #[test]
    fn misspelt_variables_are_found() {
        let names = [
            "CDN_ORIGIN_CACHE_SIZE",
            "CDN_ORIGIN_CACHESIZE",
            "CDN_ORIGIN_TEST_S3_ENDPOINT",
            "DATABASE_URL",
            "CDN_ORIGIN_SIGNING_SECRET",
        ];
        assert_eq!(
            unknown_vars(names.iter().map(|s| s.to_string())),
            ["CDN_ORIGIN_CACHESIZE"]
        );
    }

    #[test]
    fn cors_types_default_to_fonts_and_media_and_must_be_content_types() {
        let dir = tempfile::tempdir().unwrap();
        let args = |types: &[&str]| ServeArgs {
            sources: vec![StoreSpec::Local(dir.path().to_path_buf())],
            cors_types: types.iter().map(|t| t.to_string()).collect(),
            ..ServeArgs::default()
        };
        assert_eq!(
            Settings::resolve(&args(&[])).unwrap().cors_types,
            DEFAULT_CORS_TYPES
        );
        assert_eq!(
            Settings::resolve(&args(&[" Font/* ", "*"]))
                .unwrap()
                .cors_types,
            ["font/*", "*"]
        );
        let err = Settings::resolve(&args(&["fonts", "text/css"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cors_types: `fonts`") && !err.contains("text/css"),
            "{err}"
        );
        let path = dir.path().join("types.toml");
        std::fs::write(&path, "cors_types = \"text/css, text/javascript\"\n").unwrap();
        assert_eq!(
            load_file(&path).unwrap().cors_types,
            ["text/css", "text/javascript"]
        );
    }

    #[test]
    fn cors_origins_are_origins_as_browsers_send_them() {
        for ok in ["*", "https://app.example.com", "http://localhost:3000"] {
            assert_eq!(check_origin(ok), Ok(()), "{ok}");
        }
        for bad in [
            "not a url",
            "https://a,https://b",
            "https://app.example.com/",
            "https://App.Example.com",
            "https://app.example.com:443",
            "app.example.com",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
        // A string in the file is the flag's comma-separated list.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("origin.toml");
        std::fs::write(&path, "cors_origins = \"*\"\n").unwrap();
        assert_eq!(load_file(&path).unwrap().cors_origins, ["*"]);
        std::fs::write(
            &path,
            "cors_origins = \"https://a.example, https://b.example\"\n",
        )
        .unwrap();
        assert_eq!(
            load_file(&path).unwrap().cors_origins,
            ["https://a.example", "https://b.example"]
        );
        // A trailing `/` and spaces after commas (the flag's and variable's list too) are
        // forgiven, as the comparison with `Origin` always forgave the `/`.
        let args = ServeArgs {
            sources: vec![StoreSpec::Local(dir.path().to_path_buf())],
            cors_origins: vec!["https://a.example/".into(), " https://b.example".into()],
            ..ServeArgs::default()
        };
        assert_eq!(
            Settings::resolve(&args).unwrap().cors_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn a_boolean_left_as_a_source_gets_a_hint() {
        let args = ServeArgs {
            sources: vec![StoreSpec::Local(PathBuf::from("false"))],
            ..ServeArgs::default()
        };
        let err = Settings::resolve(&args).unwrap_err().to_string();
        assert!(err.contains("--flag=false"), "{err}");
    }

    #[test]
    fn flags_win_over_file_and_every_problem_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("origin.toml");
        std::fs::write(
            &path,
            format!(
                "sources = [\"{}\"]\nlisten = \"127.0.0.1:9000\"\nidle_timeout = \"5s\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.listen.port(), 9100);
        assert_eq!(s.idle_timeout, Duration::from_secs(5));

        let bad = ServeArgs {
            config: Some(path.clone()),
            max_header_size: Some(ByteSize(17 * 1024 * 1024)),
            max_connections: Some(0),
            event_loops: Some(0),
            signing_secret: Some("short".into()),
            ..ServeArgs::default()
        };
        let err = Settings::resolve(&bad).unwrap_err().0;
        assert!(
            err.contains("max_header_size: must be at most 16MiB"),
            "{err}"
        );
        assert!(err.contains("max_connections"), "{err}");
        assert!(err.contains("event_loops"), "{err}");
        assert!(err.contains("signing_secret"), "{err}");

        // event_loops from the file; the default is the CPUs this process may use.
        std::fs::write(
            &path,
            format!(
                "sources = [\"{}\"]\nevent_loops = 3\nfast_http1 = false\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let from_file = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let resolved = Settings::resolve(&from_file).unwrap();
        assert_eq!(resolved.event_loops, 3);
        assert!(!resolved.fast_http1);
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let default = ServeArgs {
            sources: vec![StoreSpec::Local(dir.path().to_path_buf())],
            ..ServeArgs::default()
        };
        let resolved = Settings::resolve(&default).unwrap();
        assert_eq!(resolved.event_loops, cpus);
        assert!(resolved.fast_http1, "our HTTP/1 layer is on by default");
    }
}
