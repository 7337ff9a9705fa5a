//! Health status rules and endpoint bodies, with in-memory, slow and unreachable stores.

use super::*;
use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};

fn memory(name: &str) -> StoreProbeTarget {
    StoreProbeTarget {
        name: name.to_owned(),
        store: Arc::new(InMemory::new()),
    }
}

/// A store whose every call waits `delay`.
fn slow(name: &str, delay: Duration) -> StoreProbeTarget {
    let config = ThrottleConfig {
        wait_get_per_call: delay,
        ..ThrottleConfig::default()
    };
    StoreProbeTarget {
        name: name.to_owned(),
        store: Arc::new(ThrottledStore::new(InMemory::new(), config)),
    }
}

/// An HTTP store on a loopback port nobody listens on: every call fails at once.
fn unreachable(name: &str) -> StoreProbeTarget {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let store = object_store::http::HttpBuilder::new()
        .with_url(format!("http://127.0.0.1:{port}"))
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .unwrap();
    StoreProbeTarget {
        name: name.to_owned(),
        store: Arc::new(store),
    }
}

struct Breakers(Vec<(String, BreakerState)>);

impl RuntimeStatus for Breakers {
    fn cache(&self) -> Option<serde_json::Value> {
        Some(json!({ "entries": 3 }))
    }
    fn breakers(&self) -> Vec<(String, BreakerState)> {
        self.0.clone()
    }
}

fn health(stores: Vec<StoreProbeTarget>, runtime: Arc<dyn RuntimeStatus>) -> Arc<Health> {
    Health::new(
        stores,
        None,
        Arc::new(Metrics::new()),
        runtime,
        Duration::from_secs(1),
        "1.2.3",
    )
}

fn json_of(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn liveness_is_ok_without_any_probe() {
    let h = health(vec![unreachable("dead")], Arc::new(NoRuntimeStatus));
    let (status, body) = h.liveness();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], br#"{"status":"ok"}"#);
}

#[tokio::test]
async fn answering_stores_and_no_database_are_ok() {
    let h = health(vec![memory("a"), memory("b")], Arc::new(NoRuntimeStatus));
    h.probe_once().await;
    let (status, body) = h.ready();
    assert_eq!(status, StatusCode::OK);
    let v = json_of(&body);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["database"], "not configured");
    assert_eq!(v["stores"]["failing"], json!([]));
    let (status, body) = h.detailed();
    assert_eq!(status, StatusCode::OK);
    let v = json_of(&body);
    assert_eq!(v["version"], "1.2.3");
    assert_eq!(
        v["stores"][0]["ok"], true,
        "NotFound for the probe key means the store answered"
    );
    assert!(v["cache"].is_null());
    assert_eq!(v["traffic"]["requests"]["total"], 0);
}

#[tokio::test]
async fn one_failing_store_degrades_and_all_failing_is_down() {
    let h = health(
        vec![memory("good"), unreachable("bad")],
        Arc::new(NoRuntimeStatus),
    );
    h.probe_once().await;
    let (status, body) = h.ready();
    assert_eq!(status, StatusCode::OK);
    let v = json_of(&body);
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["stores"]["failing"], json!(["bad"]));

    let h = health(
        vec![unreachable("x"), unreachable("y")],
        Arc::new(NoRuntimeStatus),
    );
    h.probe_once().await;
    let (status, body) = h.detailed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let v = json_of(&body);
    assert_eq!(v["status"], "down");
    assert!(v["stores"][1]["error"].as_str().unwrap().len() > 3, "{v}");
}

#[tokio::test]
async fn a_store_slower_than_the_probe_timeout_fails_its_probe() {
    let h = Health::new(
        vec![memory("fast"), slow("slow", Duration::from_secs(5))],
        None,
        Arc::new(Metrics::new()),
        Arc::new(NoRuntimeStatus),
        Duration::from_millis(50),
        "t",
    );
    let start = Instant::now();
    h.probe_once().await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the probe timeout bounds a round"
    );
    let probes = h.store_probes();
    let slow_probe = probes.iter().find(|p| p.name == "slow").unwrap();
    assert!(!slow_probe.ok);
    assert!(slow_probe.error.as_deref().unwrap().contains("timed out"));
    assert_eq!(h.status(), HealthStatus::Degraded);
}

#[tokio::test]
async fn an_open_breaker_degrades_and_shows_in_detail() {
    let runtime = Arc::new(Breakers(vec![("main".into(), BreakerState::Open)]));
    let h = health(vec![memory("main")], runtime);
    h.probe_once().await;
    let (status, body) = h.detailed();
    assert_eq!(status, StatusCode::OK);
    let v = json_of(&body);
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["breakers"], json!([{ "store": "main", "state": "open" }]));
    assert_eq!(v["cache"]["entries"], 3);
}

#[tokio::test]
async fn endpoints_answer_from_the_last_probe_without_calling_stores() {
    let delay = Duration::from_millis(200);
    let h = Health::new(
        vec![slow("s", delay)],
        None,
        Arc::new(Metrics::new()),
        Arc::new(NoRuntimeStatus),
        Duration::from_secs(1),
        "t",
    );
    h.probe_once().await;
    let before = h.store_probes();
    let start = Instant::now();
    for _ in 0..100 {
        assert_eq!(h.ready().0, StatusCode::OK);
        assert_eq!(h.detailed().0, StatusCode::OK);
    }
    assert!(
        start.elapsed() < delay,
        "100 calls of each took {:?}",
        start.elapsed()
    );
    assert_eq!(h.store_probes(), before, "no new probe result");
}

#[tokio::test]
async fn unprobed_stores_do_not_make_the_server_down() {
    let h = health(vec![unreachable("x")], Arc::new(NoRuntimeStatus));
    assert_eq!(h.ready().0, StatusCode::OK);
    let v = json_of(&h.detailed().1);
    assert_eq!(v["stores"][0]["error"], "not probed yet");
}

#[tokio::test]
async fn background_probes_refresh_the_results() {
    let h = Health::new(
        vec![memory("m")],
        None,
        Arc::new(Metrics::new()),
        Arc::new(NoRuntimeStatus),
        Duration::from_millis(20),
        "t",
    );
    let task = h.spawn_probes();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.store_probes().len(), 1);
    let text = h.metrics.encode();
    let probes = text
        .lines()
        .find(|l| {
            l.starts_with(
                "cdn_origin_store_requests_total{store=\"m\",op=\"get\",outcome=\"not_found\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(
        (3..=15).contains(&probes),
        "one probe per 20 ms for 200 ms, got {probes}"
    );
    task.abort();
}
