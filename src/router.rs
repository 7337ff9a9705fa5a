//! Routes a request, once it passes the checks every request message must ([`message`]): the
//! internal endpoints (`/health`, `/health/ready`, `/health/detailed`,
//! `/metrics`, `POST /_admin/purge`) and everything else to the object pipeline.
//!
//! The internal paths shadow objects of the same name; keep those names out of the store.
//! The purge endpoint exists only when a token is configured, and the token is compared in
//! constant time.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::message;
use crate::pipeline::{self, Arrival, Outcome};
use crate::response::{self, Body, SharedFields};

/// Handles one request (hyper's: `B` is its request body). A body the answer does not use is
/// read and dropped ([`crate::unused_body`]): before the answer on HTTP/1, beside it on
/// HTTP/2.
pub async fn route<B>(app: &Arc<App>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // A body's framing is checked before anything reads it; the refusal closes the
    // connection, whose next bytes cannot be trusted to start a request.
    if req.version() < http::Version::HTTP_2
        && !req.body().is_end_stream()
        && let Err(refusal) = message::check_transfer_coding(req.headers())
    {
        return closing(refused_recorded(app, &req, Instant::now(), refusal));
    }
    if req.method() == Method::POST && is_purge(app, req.uri().path()) {
        if let Err(refusal) = message::check(&req) {
            return refused(refusal);
        }
        return purge(app, req).await;
    }
    let (mut response, shared) = answer(app, &req).await;
    if let Some(shared) = shared {
        *response.headers_mut() = shared.into_map();
    }
    // Hyper leaves the content out of an HTTP/1 answer to a HEAD itself.
    if req.method() == Method::HEAD && req.version() >= http::Version::HTTP_2 {
        response::without_content(&mut response);
    }
    if crate::unused_body::discard(req).await == crate::unused_body::Discarded::Left {
        return closing(response);
    }
    response
}

/// `response`, saying that the connection closes after it (HTTP/1: its request's body is left
/// unread, so the next bytes cannot be taken for a request).
fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Handles a request whose body is not read: every request but the purge `POST`. Our own
/// HTTP/1 layer (`server::http1`) calls this for its `GET` and `HEAD` requests, and keeps the
/// request (its field map's memory) for the next one. When the response's fields are a
/// prepared set shared with other responses, they come apart ([`SharedFields`]) and the
/// response's own map is empty.
pub async fn answer<B>(app: &Arc<App>, req: &Request<B>) -> (Response<Body>, Option<SharedFields>) {
    let started = Instant::now();
    if let Err(refusal) = message::check(req) {
        return (refused_recorded(app, req, started, refusal), None);
    }
    let path = req.uri().path();
    let internal = matches!(
        path,
        "/health" | "/health/ready" | "/health/detailed" | "/metrics"
    );
    if internal {
        match *req.method() {
            Method::GET | Method::HEAD => {}
            Method::OPTIONS => return (response::options(), None),
            _ => return (response::method_not_allowed(), None),
        }
        let head = req.method() == Method::HEAD;
        let (status, body, content_type) = match path {
            "/health" => with_json(app.health.liveness()),
            "/health/ready" => with_json(app.health.ready()),
            "/health/detailed" => with_json(app.health.detailed()),
            _ => (
                StatusCode::OK,
                Bytes::from(app.metrics_text()),
                crate::metrics::CONTENT_TYPE,
            ),
        };
        return (internal_response(status, body, content_type, head), None);
    }
    if is_purge(app, path) {
        let mut res = response::plain(StatusCode::METHOD_NOT_ALLOWED, "use POST\n", None);
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return (res, None);
    }
    let arrival = Arrival::of(req, started);
    // `then`, not `then_some`: a guard built and dropped at once would write its line.
    let unanswered = app.settings.access_log.then(|| Unanswered(&arrival));
    let outcome = pipeline::handle(app, req, &arrival).await;
    if let Some(unanswered) = unanswered {
        unanswered.answered();
    }
    pipeline::record(app, &arrival, &outcome);
    (outcome.response, outcome.shared)
}

/// The access-log line of a request whose future is dropped before it has an answer: an
/// HTTP/2 stream its client reset, or a request still waiting on the store when the drain
/// timeout ends a shutdown (an HTTP/1 request runs to its end: hyper does not read the socket
/// while it is answered, `half_close`). Written with status 499, nginx's code for a request
/// that ended before its answer, no bytes and cache `-`; with 500 if the request's handling
/// panicked, which is the server's fault. Such requests are not counted in the metrics.
struct Unanswered<'a>(&'a Arrival<'a>);

impl Unanswered<'_> {
    /// The request got its answer: [`pipeline::record`] writes its line instead.
    fn answered(self) {
        std::mem::forget(self);
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        let status = if std::thread::panicking() {
            StatusCode::INTERNAL_SERVER_ERROR.as_u16()
        } else {
            CLIENT_CLOSED_REQUEST
        };
        let arrival = self.0;
        pipeline::access_line(
            arrival.method,
            arrival.path,
            status,
            0,
            arrival.started.elapsed(),
            "-",
        );
    }
}

/// nginx's status for a request that ended before its answer (never sent to a client).
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// The answer to a request message refused before routing, counted in the metrics and the
/// access log as any answer.
fn refused_recorded<B>(
    app: &Arc<App>,
    req: &Request<B>,
    started: Instant,
    refusal: message::Refusal,
) -> Response<Body> {
    tracing::debug!(?refusal, "request refused");
    let outcome = Outcome::plain(refused(refusal));
    pipeline::record(app, &Arrival::of(req, started), &outcome);
    outcome.response
}

/// The answer to a request message refused before routing.
fn refused(refusal: message::Refusal) -> Response<Body> {
    response::plain(refusal.status(), refusal.text(), None)
}

fn with_json((status, body): (StatusCode, Bytes)) -> (StatusCode, Bytes, &'static str) {
    (status, body, "application/json")
}

fn internal_response(
    status: StatusCode,
    body: Bytes,
    content_type: &'static str,
    head: bool,
) -> Response<Body> {
    let len = body.len();
    let mut res = Response::new(if head {
        response::empty()
    } else {
        response::full(body)
    });
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Whether `path` is the purge endpoint, which exists only when a token is configured.
fn is_purge(app: &App, path: &str) -> bool {
    path == "/_admin/purge" && app.settings.purge_token.is_some()
}

/// `POST /_admin/purge` with `Authorization: Bearer TOKEN` and a JSON body
/// `{"path": "/a.css"}` or `{"prefix": "/assets/"}`; answers `{"purged": N}`.
async fn purge<B>(app: &Arc<App>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let expected = app.settings.purge_token.as_deref().unwrap_or_default();
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) || expected.is_empty() {
        tracing::warn!(
            token_given = !given.is_empty(),
            "purge refused: missing or wrong bearer token"
        );
        let mut res = response::plain(StatusCode::UNAUTHORIZED, "unauthorized\n", None);
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return response::plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n", None),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PurgeRequest {
        path: Option<String>,
        prefix: Option<String>,
    }
    let parsed: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(_) => {
            return response::plain(
                StatusCode::BAD_REQUEST,
                "expected JSON {\"path\": \"/a.css\"} or {\"prefix\": \"/assets/\"}\n",
                None,
            );
        }
    };
    let (target, prefix) = match (parsed.path, parsed.prefix) {
        (Some(p), None) => (p, false),
        (None, Some(p)) => (p, true),
        _ => {
            return response::plain(
                StatusCode::BAD_REQUEST,
                "give exactly one of path or prefix\n",
                None,
            );
        }
    };
    let key = target.trim_start_matches('/');
    let purged = app.cache.purge(key, prefix);
    tracing::info!(path = %target, prefix, purged, "purge");
    let body = serde_json::json!({ "purged": purged }).to_string();
    internal_response(StatusCode::OK, Bytes::from(body), "application/json", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::CapturedLog;

    /// The access-log lines written on this thread while `f` runs, as JSON.
    fn access_lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let log = CapturedLog::default();
        tracing::subscriber::with_default(log.subscriber(), f);
        log.access_lines()
    }

    fn arrival(method: &Method) -> Arrival<'_> {
        Arrival {
            method,
            path: "/a.css",
            started: Instant::now(),
        }
    }

    #[test]
    fn an_unanswered_request_is_logged_once_499_or_500_after_a_panic() {
        let dropped = access_lines(|| drop(Unanswered(&arrival(&Method::GET))));
        assert_eq!(dropped.len(), 1);
        assert_eq!(
            (
                &dropped[0]["status"],
                &dropped[0]["cache"],
                &dropped[0]["bytes"]
            ),
            (&499.into(), &"-".into(), &0.into())
        );
        let answered = access_lines(|| Unanswered(&arrival(&Method::GET)).answered());
        assert!(answered.is_empty(), "{answered:?}");
        let panicked = access_lines(|| {
            let caught = std::panic::catch_unwind(|| {
                let head = arrival(&Method::HEAD);
                let _guard = Unanswered(&head);
                panic!("a bug while answering");
            });
            assert!(caught.is_err());
        });
        assert_eq!(panicked.len(), 1);
        assert_eq!(
            (&panicked[0]["status"], &panicked[0]["method"]),
            (&500.into(), &"HEAD".into())
        );
    }
}
