//! Test helpers: start the real server on an ephemeral port, build fixtures in every backend,
//! speak raw HTTP over a TCP socket, and find the outside services (S3-compatible server).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cdn_origin::app::App;
use cdn_origin::config::{ServeArgs, Settings};
use cdn_origin::server::Server;
use cdn_origin::store::Source;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GETs `path` and returns the body as text.
    pub async fn text(&self, path: &str) -> String {
        client()
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Sends the shutdown signal and waits until the server returned.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    /// Signals shutdown without waiting.
    pub fn signal_stop(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.take().expect("running")
    }
}

/// The repository's shipped policies.
pub fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// Default test arguments: a placeholder source folder (overridden by `sources`), port 0.
pub fn args(root: &std::path::Path) -> ServeArgs {
    ServeArgs {
        sources: vec![cdn_origin::config::StoreSpec::Local(root.to_path_buf())],
        listen: Some("127.0.0.1:0".parse().unwrap()),
        policies: Some(policies_dir()),
        ..ServeArgs::default()
    }
}

/// Starts a server with `args`, optionally over injected sources.
pub async fn start(args: ServeArgs, sources: Option<Vec<Source>>) -> TestServer {
    let settings = Settings::resolve(&args).expect("valid test settings");
    let app = App::build(settings, sources).expect("app builds");
    let server = Server::bind(app.clone()).await.expect("bind");
    let _writer = app.spawn_background().await;
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await;
    });
    TestServer {
        addr,
        app,
        stop: Some(tx),
        handle: Some(handle),
    }
}

/// A client that neither decompresses nor follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A client that speaks HTTP/2 from the first byte (h2c, prior knowledge).
pub fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// POSTs `body` to `/_admin/purge` with `token` as the bearer; the status and the answer.
pub async fn purge(srv: &TestServer, token: &str, body: &str) -> (reqwest::StatusCode, String) {
    let res = client()
        .post(srv.url("/_admin/purge"))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Sends `request` verbatim and returns everything the server sent until it closed (or 5 s).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Status code of a raw response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Deterministic pseudo-random bytes.
pub fn bytes_of(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Compressible text of about `len` bytes.
pub fn css_of(len: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!(
            ".c{i} {{ color: #{:06x}; margin: {}px; }}\n",
            i * 7919 % 0xffffff,
            i % 40
        ));
        i += 1;
    }
    s.truncate(len);
    s.into_bytes()
}

/// The standard fixture set: (key, bytes).
pub fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "index.html",
            b"<!doctype html><title>home</title>\n".to_vec(),
        ),
        ("hello.txt", b"hello, world\n".to_vec()),
        ("empty.txt", Vec::new()),
        ("data.bin", bytes_of(100_000, 1)),
        ("style.css", css_of(20_000)),
        (
            "docs/index.html",
            b"<!doctype html><title>docs</title>\n".to_vec(),
        ),
        ("img/logo.png", bytes_of(5_000, 2)),
        ("fonts/a.woff2", bytes_of(3_000, 3)),
        ("video/clip.mp4", bytes_of(2_000_000, 4)),
        ("naïve café.txt", b"unicode name\n".to_vec()),
        (
            "assets/app.3f9a1c2e.js",
            b"console.log('fingerprinted');\n".to_vec(),
        ),
        ("doc.pdf", bytes_of(10_000, 5)),
        (".env", b"SECRET=1\n".to_vec()),
        ("private/report.txt", b"private report\n".to_vec()),
    ]
}

/// Sets the modification time of the file at `path` to `ago` before now; that time.
pub fn backdate(path: &std::path::Path, ago: Duration) -> std::time::SystemTime {
    let then = std::time::SystemTime::now() - ago;
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(then)
        .unwrap();
    then
}

/// Writes the fixtures into a fresh temporary folder.
pub fn local_fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (key, data) in fixtures() {
        let path = dir.path().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    dir
}

/// Puts the fixtures into any object store.
pub async fn put_fixtures(store: &dyn ObjectStore) {
    for (key, data) in fixtures() {
        store
            .put(
                &Path::parse(key).unwrap(),
                PutPayload::from(Bytes::from(data)),
            )
            .await
            .unwrap();
    }
}

/// The S3-compatible test server's endpoint, or None (skip) when absent; panics under CI.
pub fn s3_endpoint() -> Option<String> {
    match std::env::var("CDN_ORIGIN_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CDN_ORIGIN_TEST_S3_ENDPOINT is not set but CI is: start it with scripts/test.sh"
                );
            }
            eprintln!(
                "skipping: CDN_ORIGIN_TEST_S3_ENDPOINT is not set (scripts/test.sh starts moto)"
            );
            None
        }
    }
}

/// Creates a fresh bucket on the S3-compatible server and returns a store for it.
pub async fn s3_bucket(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    let url = format!("{endpoint}/{bucket}");
    let res = client().put(&url).send().await.expect("create bucket");
    assert!(
        res.status().is_success() || res.status().as_u16() == 409,
        "create bucket: {}",
        res.status()
    );
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .expect("s3 store");
    Arc::new(store)
}

/// A unique name per call (bucket names must be unique across tests in one moto).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
