//! A bounded soak (issue 7, point 5): mixed load from many concurrent clients against a store
//! with faults injected on a schedule, for `CDN_ORIGIN_SOAK_SECS` seconds (default 60; set it
//! higher by hand for a long run).
//!
//! The load: cache hits, misses over a key space larger than the hot cache (so it evicts),
//! single and multiple byte ranges, 304s, 404s, gzip and brotli responses, HEADs and a large
//! streamed object, half of the clients over HTTP/1.1 and half over HTTP/2. Every answer is
//! checked byte for byte against the seeded objects.
//!
//! The faults: every 6 s, one second of either "every other read fails", a full outage, or a
//! store slower than the store timeout. A 502/503/504 is *expected* only for a request that
//! overlaps a fault window (plus a grace period for the breaker's cooldown); any other error
//! status, any transport error and any wrong byte is *unexpected*, and there must be none.
//!
//! Then the process must be flat: resident memory (VmRSS) at the end no more than a loose margin
//! above what it was once warm, and open file descriptors back to where they were before the
//! load once the clients are gone. The figures are printed.
//!
//! This is the only test in this binary, so the process-wide figures belong to it alone.

mod common;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cdn_origin::testing::FaultyStore;
use common::*;
use parking_lot::Mutex;

const COLD_KEYS: usize = 400;
const BIG: usize = 2 * 1024 * 1024;
const CLIENTS: usize = 24;
/// How long after a fault window a 5xx is still expected: breaker cooldown (1 s), one store
/// timeout (1 s) and scheduling slack.
const GRACE: Duration = Duration::from_secs(3);

/// The seeded objects, shared by every client for checking.
struct Corpus {
    hello: Vec<u8>,
    css: Vec<u8>,
    data: Vec<u8>,
    big: Vec<u8>,
    cold: Vec<Vec<u8>>,
}

impl Corpus {
    fn new() -> Corpus {
        Corpus {
            hello: b"hello, soak\n".to_vec(),
            css: css_of(20_000),
            data: bytes_of(100_000, 1),
            big: bytes_of(BIG, 2),
            cold: (0..COLD_KEYS)
                .map(|i| bytes_of(2_000 + (i * 37) % 14_000, i as u8))
                .collect(),
        }
    }
}

/// Fault windows so far: (start, end); `None` while one is running.
type Windows = Arc<Mutex<Vec<(Instant, Option<Instant>)>>>;

fn overlaps_fault(windows: &Windows, start: Instant, end: Instant) -> bool {
    windows.lock().iter().any(|(ws, we)| {
        let we = we.map_or(end + GRACE, |we| we + GRACE);
        *ws <= end && start <= we
    })
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    expected_errors: AtomicU64,
    aborted: AtomicU64,
    aborted_by_kind: [AtomicU64; 9],
    unexpected: Mutex<Vec<String>>,
    by_kind: [AtomicU64; 9],
}

const KINDS: [&str; 9] = [
    "hit",
    "miss",
    "range",
    "multirange",
    "304",
    "404",
    "gzip",
    "br",
    "big+head",
];

/// xorshift64*: a tiny deterministic generator per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Decodes a compressed body.
type Decoder = fn(&[u8]) -> std::io::Result<Vec<u8>>;

/// The outcome of one request: Ok, or an error status (expected or not is decided by timing),
/// or a wrong answer (always unexpected).
enum Check {
    Ok,
    ErrorStatus(u16),
    Wrong(String),
}

fn status_check(status: u16, want: u16) -> Option<Check> {
    match status {
        s if s == want => None,
        502..=504 => Some(Check::ErrorStatus(status)),
        other => Some(Check::Wrong(format!("status {other}, wanted {want}"))),
    }
}

async fn one_request(
    c: &reqwest::Client,
    base: &str,
    corpus: &Corpus,
    etag: &str,
    kind: usize,
    rng: &mut Rng,
) -> Result<Check, reqwest::Error> {
    let url = |p: &str| format!("{base}{p}");
    Ok(match kind {
        0 => {
            let res = c.get(url("/hot/hello.txt")).send().await?;
            if let Some(bad) = status_check(res.status().as_u16(), 200) {
                return Ok(bad);
            }
            let body = res.bytes().await?;
            if body.as_ref() == corpus.hello {
                Check::Ok
            } else {
                Check::Wrong("hello body".into())
            }
        }
        1 => {
            let i = rng.below(COLD_KEYS as u64) as usize;
            let res = c.get(url(&format!("/cold/{i}.bin"))).send().await?;
            if let Some(bad) = status_check(res.status().as_u16(), 200) {
                return Ok(bad);
            }
            let body = res.bytes().await?;
            if body.as_ref() == corpus.cold[i].as_slice() {
                Check::Ok
            } else {
                Check::Wrong(format!("cold/{i} body"))
            }
        }
        2 => {
            let a = rng.below(corpus.data.len() as u64 - 1);
            let b = a + rng.below(corpus.data.len() as u64 - a);
            let res = c
                .get(url("/hot/data.bin"))
                .header("range", format!("bytes={a}-{b}"))
                .send()
                .await?;
            if let Some(bad) = status_check(res.status().as_u16(), 206) {
                return Ok(bad);
            }
            let body = res.bytes().await?;
            let want = &corpus.data[a as usize..=b as usize];
            if body.as_ref() == want {
                Check::Ok
            } else {
                Check::Wrong(format!("range {a}-{b}"))
            }
        }
        3 => {
            let res = c
                .get(url("/hot/data.bin"))
                .header("range", "bytes=0-99,5000-5099")
                .send()
                .await?;
            if let Some(bad) = status_check(res.status().as_u16(), 206) {
                return Ok(bad);
            }
            let ct = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = res.bytes().await?;
            let ok = ct.starts_with("multipart/byteranges")
                && body.windows(100).any(|w| w == &corpus.data[..100])
                && body.windows(100).any(|w| w == &corpus.data[5000..5100]);
            if ok {
                Check::Ok
            } else {
                Check::Wrong("multipart body".into())
            }
        }
        4 => {
            let res = c
                .get(url("/hot/hello.txt"))
                .header("if-none-match", etag)
                .send()
                .await?;
            if let Some(bad) = status_check(res.status().as_u16(), 304) {
                return Ok(bad);
            }
            if res.bytes().await?.is_empty() {
                Check::Ok
            } else {
                Check::Wrong("304 with a body".into())
            }
        }
        5 => {
            let res = c
                .get(url(&format!("/nope/{}.txt", rng.below(50))))
                .send()
                .await?;
            status_check(res.status().as_u16(), 404).unwrap_or(Check::Ok)
        }
        6 | 7 => {
            let (token, decode): (&str, Decoder) = if kind == 6 {
                ("gzip", |b| {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(b).read_to_end(&mut out)?;
                    Ok(out)
                })
            } else {
                ("br", |b| {
                    let mut out = Vec::new();
                    brotli::Decompressor::new(b, 4096).read_to_end(&mut out)?;
                    Ok(out)
                })
            };
            let res = c
                .get(url("/hot/style.css"))
                .header("accept-encoding", token)
                .send()
                .await?;
            if let Some(bad) = status_check(res.status().as_u16(), 200) {
                return Ok(bad);
            }
            let enc = res
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = res.bytes().await?;
            match decode(&body) {
                Ok(plain) if enc == token && plain == corpus.css => Check::Ok,
                _ => Check::Wrong(format!("{token} body (content-encoding {enc:?})")),
            }
        }
        _ => {
            if rng.below(4) == 0 {
                let res = c.get(url("/big/clip.bin")).send().await?;
                if let Some(bad) = status_check(res.status().as_u16(), 200) {
                    return Ok(bad);
                }
                let body = res.bytes().await?;
                if body.as_ref() == corpus.big.as_slice() {
                    Check::Ok
                } else {
                    Check::Wrong("big body".into())
                }
            } else {
                let res = c.head(url("/hot/style.css")).send().await?;
                if let Some(bad) = status_check(res.status().as_u16(), 200) {
                    return Ok(bad);
                }
                let len = res
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if len == corpus.css.len().to_string() {
                    Check::Ok
                } else {
                    Check::Wrong(format!("HEAD length {len}"))
                }
            }
        }
    })
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_load_with_store_faults_stays_correct_and_flat() {
    let secs: u64 = std::env::var("CDN_ORIGIN_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let run = Duration::from_secs(secs.max(10));
    let corpus = Arc::new(Corpus::new());

    let store = Arc::new(FaultyStore::new());
    for (key, body) in [
        ("hot/hello.txt", &corpus.hello),
        ("hot/style.css", &corpus.css),
        ("hot/data.bin", &corpus.data),
        ("big/clip.bin", &corpus.big),
    ] {
        store.put_bytes(key, body.clone()).await.unwrap();
    }
    for (i, body) in corpus.cold.iter().enumerate() {
        store
            .put_bytes(&format!("cold/{i}.bin"), body.clone())
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.store_timeout = Some("1s".parse().unwrap());
    a.breaker_failures = Some(5);
    a.breaker_cooldown = Some("1s".parse().unwrap());
    a.revalidate_after = Some("1s".parse().unwrap());
    a.stale_while_revalidate = Some("1s".parse().unwrap());
    a.stale_if_error = Some("1h".parse().unwrap());
    a.negative_ttl = Some("1s".parse().unwrap());
    a.cache_size = Some("2MiB".parse().unwrap());
    a.cache_max_object = Some("64KiB".parse().unwrap());
    a.etag_hash_limit = Some("64KiB".parse().unwrap());
    let srv = start(
        a,
        Some(vec![cdn_origin::store::Source::custom(
            "soak",
            store.clone(),
        )]),
    )
    .await;
    let base = format!("http://{}", srv.addr);

    let etag = client()
        .get(format!("{base}/hot/hello.txt"))
        .send()
        .await
        .unwrap()
        .headers()
        .get("etag")
        .expect("etag")
        .to_str()
        .unwrap()
        .to_string();
    let fds_before = open_fds();
    let rss_before = vm_rss_kib();

    let started = Instant::now();
    let deadline = started + run;
    let windows: Windows = Arc::default();
    let faults = {
        let (store, windows) = (store.clone(), windows.clone());
        tokio::spawn(async move {
            let mut round = 0u64;
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if Instant::now() + Duration::from_secs(2) > deadline {
                    break;
                }
                windows.lock().push((Instant::now(), None));
                match round % 3 {
                    0 => store.fail_every(2),
                    1 => store.set_outage(true),
                    _ => store.set_delay(Duration::from_millis(1500)),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                store.heal();
                if let Some(last) = windows.lock().last_mut() {
                    last.1 = Some(Instant::now());
                }
                round += 1;
            }
            round
        })
    };

    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let (corpus, tally, windows, base, etag) = (
            corpus.clone(),
            tally.clone(),
            windows.clone(),
            base.clone(),
            etag.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(15));
            if id % 2 == 1 {
                builder = builder.http2_prior_knowledge();
            }
            let c = builder.build().unwrap();
            let mut rng =
                Rng(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0x1234_5678_9abc_def1));
            while Instant::now() < deadline {
                let kind = rng.below(KINDS.len() as u64) as usize;
                let t0 = Instant::now();
                let result = one_request(&c, &base, &corpus, &etag, kind, &mut rng).await;
                let t1 = Instant::now();
                tally.requests.fetch_add(1, Ordering::Relaxed);
                tally.by_kind[kind].fetch_add(1, Ordering::Relaxed);
                let in_fault = || overlaps_fault(&windows, t0, t1);
                let problem = match result {
                    Ok(Check::Ok) => None,
                    Ok(Check::ErrorStatus(_)) if in_fault() => {
                        tally.expected_errors.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    // A response whose head is already out when a store read fails can only
                    // be aborted (multipart/byteranges opens each part lazily): clean, and
                    // expected while the store is failing.
                    Err(_) if in_fault() => {
                        tally.aborted.fetch_add(1, Ordering::Relaxed);
                        tally.aborted_by_kind[kind].fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Ok(Check::ErrorStatus(s)) => {
                        Some(format!("status {s} outside any fault window"))
                    }
                    Ok(Check::Wrong(why)) => Some(why),
                    Err(e) => Some(format!("transport error: {e:?}")),
                };
                if let Some(p) = problem {
                    let at = t0.duration_since(started).as_secs_f64();
                    tally
                        .unexpected
                        .lock()
                        .push(format!("{} at {at:.1}s: {p}", KINDS[kind]));
                }
            }
        }));
    }

    // Warm-up: a tenth of the run (at least 5 s), then the reference figures.
    tokio::time::sleep((run / 10).max(Duration::from_secs(5))).await;
    let rss_warm = vm_rss_kib();
    let mut samples = vec![rss_warm];
    while Instant::now() < deadline {
        tokio::time::sleep(
            Duration::from_secs(2).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
        samples.push(vm_rss_kib());
    }
    for c in clients {
        c.await.unwrap();
    }
    let rounds = faults.await.unwrap();
    // Clients are gone (their pools with them); give the server a moment to see the closes.
    let settle = Instant::now() + Duration::from_secs(5);
    while open_fds() > fds_before + 2 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (fds_end, rss_end) = (open_fds(), vm_rss_kib());
    let stats = srv.app.cache.stats();

    let requests = tally.requests.load(Ordering::Relaxed);
    let per_kind: Vec<String> = KINDS
        .iter()
        .zip(&tally.by_kind)
        .map(|(k, n)| format!("{k} {}", n.load(Ordering::Relaxed)))
        .collect();
    eprintln!(
        "soak: {secs} s, {CLIENTS} clients, {requests} requests ({:.0}/s): {}",
        requests as f64 / run.as_secs_f64(),
        per_kind.join(", ")
    );
    let aborted_kinds: Vec<String> = KINDS
        .iter()
        .zip(&tally.aborted_by_kind)
        .filter(|(_, n)| n.load(Ordering::Relaxed) > 0)
        .map(|(k, n)| format!("{k} {}", n.load(Ordering::Relaxed)))
        .collect();
    eprintln!("soak: aborted bodies by kind: {}", aborted_kinds.join(", "));
    eprintln!(
        "soak: {rounds} fault windows, {} expected 5xx and {} aborted bodies during them, store reads {} (failed on purpose {})",
        tally.expected_errors.load(Ordering::Relaxed),
        tally.aborted.load(Ordering::Relaxed),
        store.reads(),
        store.failures()
    );
    eprintln!(
        "soak: cache {} entries, {} bytes, {} evictions, {} hits, {} misses, {} stale",
        stats.entries, stats.bytes, stats.evictions, stats.hits, stats.misses, stats.stale
    );
    eprintln!(
        "soak: VmRSS KiB before {rss_before}, warm {rss_warm}, end {rss_end}; samples {samples:?}"
    );
    eprintln!("soak: open fds before {fds_before}, end {fds_end}");

    let unexpected = tally.unexpected.lock().clone();
    assert!(
        unexpected.is_empty(),
        "{} unexpected errors (first 20):\n{}",
        unexpected.len(),
        unexpected
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(rounds >= 1, "no fault was injected");
    assert!(
        requests > 1000,
        "only {requests} requests in {secs} s: the load did not run"
    );
    assert!(
        stats.evictions > 0,
        "the cold key space never made the cache evict"
    );
    assert!(
        fds_end <= fds_before + 2,
        "file descriptors leaked: {fds_before} before, {fds_end} after"
    );
    let grown_mib = rss_end.saturating_sub(rss_warm) / 1024;
    assert!(
        grown_mib < 64,
        "resident memory grew by {grown_mib} MiB after warm-up"
    );
    srv.stop().await;
}
