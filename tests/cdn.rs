//! Real CDN caches in front of the server: Varnish and nginx's `proxy_cache` (Debian's
//! `varnish` and `nginx`, started here on loopback with the settings a user who put them in
//! front of us would start them with).
//!
//! What a CDN needs from an origin, checked end to end through each cache rather than against
//! our own reading of the RFCs: it stores our 200s for the time our policy gives and answers
//! repeats itself; it serves byte ranges (video seeking) from the one whole object it fetched;
//! once our TTL is over it revalidates with the validators we sent and keeps its copy on our
//! 304; and a changed file reaches clients at the first revalidation after the change, with
//! its new ETag. Our server's own `/metrics` counts what reached the origin.
//!
//! The binaries are found as `CDN_ORIGIN_TEST_VARNISHD` / `CDN_ORIGIN_TEST_NGINX`, on the
//! `PATH` or in `/usr/sbin` (`scripts/setup.sh` installs both); without one, its tests skip
//! with a message, and fail when `CI` is set.

mod common;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::header::{CONTENT_RANGE, ETAG, RANGE};

/// The caches under test.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Varnish with its built-in VCL (`-b`): caches by the origin's Cache-Control, asks the
    /// origin for gzip and decodes it for clients that do not take it, grace from
    /// stale-while-revalidate, conditional fetches for stale objects.
    Varnish,
    /// nginx with `proxy_cache`, `proxy_cache_revalidate` (conditional requests for expired
    /// entries) and `proxy_cache_use_stale updating` with background updates.
    Nginx,
}

impl Kind {
    fn binary(self) -> (&'static str, &'static str) {
        match self {
            Kind::Varnish => ("varnishd", "CDN_ORIGIN_TEST_VARNISHD"),
            Kind::Nginx => ("nginx", "CDN_ORIGIN_TEST_NGINX"),
        }
    }

    /// The binary, or `None` (skip, with the reason printed); panics under CI.
    fn find(self) -> Option<PathBuf> {
        let (name, var) = self.binary();
        let found = std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|p| p.join(name))
                        .find(|p| p.is_file())
                })
            })
            .or_else(|| Some(Path::new("/usr/sbin").join(name)).filter(|p| p.is_file()));
        if found.is_none() {
            let why = format!("{name} not found (scripts/setup.sh installs it; or set {var})");
            if std::env::var_os("CI").is_some() {
                panic!("{why}, and CI is set");
            }
            eprintln!("skipping: {why}");
        }
        found
    }
}

/// A running cache in front of our server, stopped (killed) on drop.
struct Cache {
    kind: Kind,
    child: Child,
    addr: SocketAddr,
    _work: tempfile::TempDir,
}

impl Cache {
    /// Starts the cache on a free port. The port is picked by binding and releasing it, so
    /// another process may take it first: a start whose cache exits, or whose port answers
    /// without the cache's own field, is tried again on another port.
    async fn start(kind: Kind, bin: &Path, backend: SocketAddr) -> Cache {
        for _ in 0..5 {
            if let Some(cache) = Cache::try_start(kind, bin, backend).await {
                return cache;
            }
        }
        panic!("{kind:?} did not start in five tries");
    }

    async fn try_start(kind: Kind, bin: &Path, backend: SocketAddr) -> Option<Cache> {
        let work = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let dir = work.path().display().to_string();
        let mut cmd = Command::new(bin);
        match kind {
            // -F: stay in the foreground (our child); -j none: no privilege separation, so
            // that it runs the same as root or as a user; -T none: no management port.
            Kind::Varnish => cmd
                .arg("-F")
                .args(["-a", &addr.to_string()])
                .args(["-b", &backend.to_string()])
                .args(["-n", &dir])
                .args(["-s", "malloc,64m", "-j", "none", "-T", "none"]),
            Kind::Nginx => {
                let conf = work.path().join("nginx.conf");
                std::fs::write(&conf, nginx_conf(&dir, addr, backend)).unwrap();
                cmd.args(["-p", &dir, "-c"])
                    .arg(&conf)
                    .args(["-e", &format!("{dir}/error.log")])
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", bin.display()));
        let mut cache = Cache {
            kind,
            child,
            addr,
            _work: work,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = cache.child.try_wait() {
                eprintln!("{kind:?} exited at start-up ({status}); trying another port");
                return None;
            }
            if let Ok(res) = client().get(cache.url("/")).send().await {
                if cache.answered(&res) {
                    return Some(cache);
                }
                eprintln!("another server answers on {addr}; trying another port");
                return None;
            }
            assert!(Instant::now() < deadline, "{kind:?} did not answer in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether `res` came through this cache (its own field is there).
    fn answered(&self, res: &reqwest::Response) -> bool {
        let field = |name| res.headers().get(name).and_then(|v| v.to_str().ok());
        match self.kind {
            Kind::Varnish => field("x-varnish").is_some(),
            Kind::Nginx => field("x-cache-status").is_some(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Whether the cache answered from its store without asking us: Varnish's `X-Varnish`
    /// names this request and the one that stored the object; nginx says `HIT`.
    fn is_hit(&self, res: &reqwest::Response) -> bool {
        let field = |name| res.headers().get(name).and_then(|v| v.to_str().ok());
        match self.kind {
            Kind::Varnish => field("x-varnish").is_some_and(|v| v.split_whitespace().count() == 2),
            Kind::Nginx => field("x-cache-status") == Some("HIT"),
        }
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx as a caching reverse proxy, as its documentation sets one up.
fn nginx_conf(dir: &str, addr: SocketAddr, backend: SocketAddr) -> String {
    let mut conf = String::new();
    // As root, Debian's nginx would run its workers as `nobody`, who cannot write the cache
    // in our temporary folder.
    if std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    }) {
        conf.push_str("user root;\n");
    }
    write!(
        conf,
        r#"worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=cdn:10m max_size=256m inactive=10m use_temp_path=off;
    upstream origin {{ server {backend}; keepalive 8; }}
    server {{
        listen {addr};
        location ~ ^/(metrics|health/detailed)$ {{ return 404; }}
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache cdn;
            proxy_cache_revalidate on;
            proxy_cache_lock on;
            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
            proxy_cache_background_update on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"#
    )
    .unwrap();
    conf
}

/// Policies for these tests: stylesheets fresh for `css_ttl` seconds and then served stale
/// for a minute while revalidated (Varnish's grace comes from stale-while-revalidate); video
/// as shipped.
fn policies(css_ttl: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cdn.toml"),
        format!(
            r#"
[[rule]]
name = "css"
content-type = "text/css"
public = true
max-age = {css_ttl}
stale-while-revalidate = 60

[[rule]]
name = "video"
content-type = "video/*"
public = true
max-age = "7d"

[default]
public = true
max-age = "1h"

[errors]
max-age = "60s"
"#
        ),
    )
    .unwrap();
    dir
}

/// The number of GET responses our server sent with a status of `class` ("2xx", "3xx").
async fn origin_responses(srv: &TestServer, class: &str) -> f64 {
    let text = srv.text("/metrics").await;
    text.lines()
        .filter(|l| {
            l.starts_with("cdn_origin_requests_total{")
                && l.contains("method=\"GET\"")
                && l.contains(&format!("status=\"{class}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Setup {
    srv: TestServer,
    cache: Cache,
    root: tempfile::TempDir,
    _policies: tempfile::TempDir,
}

async fn setup(kind: Kind, css_ttl: u32) -> Option<Setup> {
    let bin = kind.find()?;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("app.css"), css_of(40_000)).unwrap();
    std::fs::create_dir_all(root.path().join("video")).unwrap();
    std::fs::write(root.path().join("video/clip.mp4"), bytes_of(2_000_000, 4)).unwrap();
    let policies = policies(css_ttl);
    let mut a = args(root.path());
    a.policies = Some(policies.path().to_path_buf());
    // Our own hot cache looks at the folder again after a second, so that a changed file is
    // what the CDN's revalidation finds.
    a.revalidate_after = Some("1s".parse().unwrap());
    let srv = start(a, None).await;
    let cache = Cache::start(kind, &bin, srv.addr).await;
    Some(Setup {
        srv,
        cache,
        root,
        _policies: policies,
    })
}

/// Each scenario below runs against every cache: `varnish::NAME` and `nginx::NAME`.
macro_rules! against_each_cache {
    ($($scenario:ident),+ $(,)?) => {
        mod varnish {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Kind::Varnish).await;
            })+
        }
        mod nginx {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Kind::Nginx).await;
            })+
        }
    };
}

against_each_cache!(
    repeats_and_ranges_from_one_origin_fetch,
    keeps_each_encoding_for_the_clients_that_accept_it,
    revalidates_with_our_304_and_picks_up_a_changed_file,
);

async fn repeats_and_ranges_from_one_origin_fetch(kind: Kind) {
    let Some(s) = setup(kind, 3600).await else {
        return;
    };
    let c = client();
    let css = css_of(40_000);
    if matches!(kind, Kind::Nginx) {
        // The documented configuration keeps the origin's own numbers off the public path.
        let res = c.get(s.cache.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 404);
    }

    // A stylesheet: fetched once (gzip, which Varnish asks for and decodes for this client),
    // then answered from the cache, byte for byte.
    for i in 0..3 {
        let res = c.get(s.cache.url("/app.css")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            s.cache.is_hit(&res),
            i > 0,
            "request {i}: {:?}",
            res.headers()
        );
        assert_eq!(res.bytes().await.unwrap(), css, "request {i}");
    }
    assert_eq!(origin_responses(&s.srv, "2xx").await, 1.0);

    // Video seeking: ranges at two offsets, both cut from the one whole object.
    let video = bytes_of(2_000_000, 4);
    for (i, (from, to)) in [(1_000usize, 1_999usize), (1_500_000, 1_563_999)]
        .into_iter()
        .enumerate()
    {
        let res = c
            .get(s.cache.url("/video/clip.mp4"))
            .header(RANGE, format!("bytes={from}-{to}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 206, "range {i}");
        assert_eq!(
            res.headers()[CONTENT_RANGE],
            format!("bytes {from}-{to}/2000000").as_str()
        );
        if i > 0 {
            assert!(s.cache.is_hit(&res), "the second range is a hit");
        }
        assert_eq!(res.bytes().await.unwrap(), video[from..=to], "range {i}");
    }
    assert_eq!(origin_responses(&s.srv, "2xx").await, 2.0);
    drop(s.root);
}

/// Our `Vary: Accept-Encoding` keeps the cache from handing one client's encoding to
/// another: every client gets an encoding it accepts (or none) that decodes to the file, the
/// second time from the cache and in the same encoding as the first.
async fn keeps_each_encoding_for_the_clients_that_accept_it(kind: Kind) {
    let Some(s) = setup(kind, 3600).await else {
        return;
    };
    let c = client();
    let css = css_of(40_000);
    let clients = [Some("br"), Some("gzip"), None, Some("zstd;q=0.5, gzip")];
    let mut first = Vec::new();
    for round in 0..2 {
        for (i, accept) in clients.iter().enumerate() {
            let mut req = c.get(s.cache.url("/app.css"));
            if let Some(accept) = accept {
                req = req.header("accept-encoding", *accept);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            let encoding = res
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            assert!(
                encoding.is_empty() || accept.is_some_and(|a| a.contains(encoding.as_str())),
                "client {accept:?} got {encoding:?}"
            );
            if round == 0 {
                first.push(encoding.clone());
            } else {
                assert!(
                    s.cache.is_hit(&res),
                    "client {accept:?}: {:?}",
                    res.headers()
                );
                assert_eq!(encoding, first[i], "client {accept:?}, second time");
            }
            let body = res.bytes().await.unwrap();
            assert_eq!(decode(&encoding, &body).await, css, "client {accept:?}");
        }
    }
}

async fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match encoding {
        "br" => BrotliDecoder::new(data).read_to_end(&mut out).await,
        "gzip" => GzipDecoder::new(data).read_to_end(&mut out).await,
        "zstd" => ZstdDecoder::new(data).read_to_end(&mut out).await,
        "" => return data.to_vec(),
        other => panic!("unexpected encoding {other}"),
    }
    .unwrap();
    out
}

async fn revalidates_with_our_304_and_picks_up_a_changed_file(kind: Kind) {
    let Some(s) = setup(kind, 1).await else {
        return;
    };
    let c = client();
    let old = css_of(40_000);

    let first = c.get(s.cache.url("/app.css")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let old_etag = first.headers()[ETAG].clone();
    assert_eq!(first.bytes().await.unwrap(), old);
    assert_eq!(origin_responses(&s.srv, "3xx").await, 0.0);

    // Past the 1 s TTL (caches count in whole seconds: 2.5 s is past it for every one) the
    // copy is stale: the cache answers with it (stale-while-revalidate) and revalidates with
    // our validators; we answer 304 and it keeps its copy.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin_responses(&s.srv, "3xx").await < 1.0 {
        let res = c.get(s.cache.url("/app.css")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.bytes().await.unwrap(), old);
        assert!(
            Instant::now() < deadline,
            "no 304 reached the cache in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        origin_responses(&s.srv, "2xx").await,
        1.0,
        "the revalidation was answered with a 304, not the body again"
    );
    // The refreshed copy is served as a hit again (nginx says UPDATING until its background
    // update has stored the 304's news).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = c.get(s.cache.url("/app.css")).send().await.unwrap();
        let hit = s.cache.is_hit(&fresh);
        assert_eq!(fresh.headers()[ETAG], old_etag);
        assert_eq!(fresh.bytes().await.unwrap(), old);
        if hit {
            break;
        }
        assert!(Instant::now() < deadline, "no hit after the 304 in 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A new deploy of the file: the next revalidation gets a 200 with the new body and ETag,
    // and clients see it.
    let new = css_of(41_000);
    std::fs::write(s.root.path().join("app.css"), &new).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = c.get(s.cache.url("/app.css")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let etag = res.headers()[ETAG].clone();
        let body = res.bytes().await.unwrap();
        if body == new {
            assert_ne!(etag, old_etag, "a new body has a new ETag");
            break;
        }
        assert_eq!(body, old, "either the old file or the new one, never a mix");
        assert!(Instant::now() < deadline, "the change did not show in 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
