//! Connections over `max_connections` get a 503 with `Retry-After: 1` that the client can
//! read, in the protocol it speaks, and are closed.
//!
//! - An HTTP/1 client gets `HTTP/1.1 503` with `Connection: close`, and the connection
//!   lingers ([`REFUSAL_LINGER`] at most) so that its unread request does not reset the
//!   answer away.
//! - An HTTP/2 client (its first bytes are the connection preface) gets SETTINGS, a 503 on its
//!   first stream, and GOAWAY: hyper serves the connection for at most [`H2_REFUSAL`], and
//!   every request on it is answered 503. An HTTP/1 answer would be a protocol error to it
//!   (curl: "empty reply from server").
//!
//! A refusal waits at most [`REFUSAL_LINGER`] for the client's first bytes, to tell the
//! protocols apart; one that sends nothing is answered in HTTP/1. At most
//! [`REFUSALS_LINGERING`] refusals wait or linger at once; past that, in a flood, a refused
//! connection is answered in HTTP/1 and closed at once, so that the flood cannot hold more
//! descriptors than this on top of the cap.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

use super::{deadlines, linger};

/// How many refused connections may wait or linger at once.
pub const REFUSALS_LINGERING: usize = 64;

/// How long a refused connection waits for its first bytes, and lingers after an HTTP/1
/// answer, at most: enough for a request that was on its way.
pub const REFUSAL_LINGER: Duration = Duration::from_millis(250);

/// How long hyper serves a refused HTTP/2 connection at most, from its first bytes.
pub const H2_REFUSAL: Duration = Duration::from_secs(1);

/// The refusal's body.
const BODY: &str = "too many connections\n";

/// Refuses connections over the cap.
pub struct Refusals {
    lingering: Arc<Semaphore>,
    h2: http2::Builder<TokioExecutor>,
}

impl Default for Refusals {
    fn default() -> Self {
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new()).max_concurrent_streams(1);
        Refusals {
            lingering: Arc::new(Semaphore::new(REFUSALS_LINGERING)),
            h2,
        }
    }
}

impl Refusals {
    /// Answers `stream` with a 503 and closes it.
    pub async fn refuse(&self, mut stream: TcpStream) {
        let Ok(_lingering) = self.lingering.try_acquire() else {
            if write_http1(&mut stream).await {
                let _ = stream.shutdown().await;
            }
            return;
        };
        let mut first = [0u8; 24];
        let peeked = tokio::time::timeout(REFUSAL_LINGER, stream.peek(&mut first)).await;
        if let Ok(Ok(n @ 1..)) = peeked
            && deadlines::may_be_h2_preface(&first[..n])
        {
            let _ = tokio::time::timeout(H2_REFUSAL, self.refuse_h2(stream)).await;
            return;
        }
        if write_http1(&mut stream).await {
            let _ = tokio::time::timeout(REFUSAL_LINGER, linger::close(&mut stream, None)).await;
        }
    }

    /// Serves an HTTP/2 connection whose every request is answered 503, until the first is:
    /// then GOAWAY, and the close once the client has read it.
    async fn refuse_h2(&self, stream: TcpStream) {
        let answered = Arc::new(Notify::new());
        let service = {
            let answered = answered.clone();
            service_fn(move |_req| {
                answered.notify_one();
                std::future::ready(Ok::<_, Infallible>(unavailable()))
            })
        };
        let (lent, mut returned) = linger::Lent::new(stream);
        {
            // Scoped: hyper gives the stream back when its connection is dropped.
            let conn = self.h2.serve_connection(TokioIo::new(lent), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = answered.notified() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
        }
        if let Ok(mut stream) = returned.try_recv() {
            linger::close(&mut stream, None).await;
        }
    }
}

/// The HTTP/2 refusal.
fn unavailable() -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let fields = res.headers_mut();
    fields.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    fields.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    fields.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Writes the HTTP/1 refusal; false if the client did not take it within a second.
async fn write_http1(stream: &mut TcpStream) -> bool {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let written = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    );
    matches!(written.await, Ok(Ok(())))
}
