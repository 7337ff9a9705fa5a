//! A request body that the answer does not use (a `POST` to a file, a `GET` with content) is
//! read and thrown away before the answer is sent, up to [`LIMIT`] bytes and for at most
//! [`WAIT`], as nginx discards one.
//!
//! Without it, an HTTP/2 answer sent while the client is still sending ends with
//! `RST_STREAM(NO_ERROR)` from the h2 crate (RFC 9113 §8.1 allows it, to stop the upload),
//! and clients that take the reset for a failure drop the answer they already have (curl
//! 7.88 and Python's httpx show an error instead of the 405).
//! On HTTP/1, the connection can be kept for the next request instead of closed.
//!
//! A body larger than the limit, or slower than the wait, is answered without more reading
//! (on HTTP/2 that stops the upload with the reset; on HTTP/1 the connection closes,
//! lingering, `server::linger`). A request that asks `Expect: 100-continue` is answered at
//! once and its body never asked for: reading it would tell the client to send what nobody
//! wants (RFC 9110 §10.1.1).

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;

/// The most bytes of an unused body read before answering: what most uploads are, so that
/// they get their answer whole, and a bound on the work a fast client can ask for in [`WAIT`].
pub const LIMIT: usize = 16 * 1024 * 1024;

/// The longest an answer waits for an unused body to end.
pub const WAIT: Duration = Duration::from_secs(1);

/// Reads and drops `req`'s body if it has one, within [`LIMIT`] and [`WAIT`].
pub async fn discard<B>(req: Request<B>)
where
    B: http_body::Body<Data = Bytes>,
{
    if req.body().is_end_stream() || req.headers().contains_key(http::header::EXPECT) {
        return;
    }
    let body = std::pin::pin!(req.into_body());
    let _ = tokio::time::timeout(WAIT, read_up_to(body, LIMIT)).await;
}

/// Reads frames until the body ends, fails, or passes `limit` bytes.
async fn read_up_to<B>(mut body: std::pin::Pin<&mut B>, limit: usize)
where
    B: http_body::Body<Data = Bytes>,
{
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.len());
            if read > limit {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A body of `chunks` frames of `size` bytes that counts the frames taken from it.
    fn counted(
        chunks: usize,
        size: usize,
        taken: Arc<AtomicUsize>,
    ) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> {
        let frames = (0..chunks).map(move |_| {
            taken.fetch_add(1, Ordering::SeqCst);
            Ok(http_body::Frame::data(Bytes::from(vec![0u8; size])))
        });
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_small_body_is_read_to_its_end() {
        let taken = Arc::new(AtomicUsize::new(0));
        discard(Request::new(counted(4, 1000, taken.clone()))).await;
        assert_eq!(taken.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn reading_stops_past_the_limit() {
        let taken = Arc::new(AtomicUsize::new(0));
        discard(Request::new(counted(100, 1024 * 1024, taken.clone()))).await;
        // 16 MiB is sixteen frames; the seventeenth passes the limit.
        assert_eq!(taken.load(Ordering::SeqCst), 17);
    }

    #[tokio::test]
    async fn a_body_behind_expect_is_never_asked_for() {
        let taken = Arc::new(AtomicUsize::new(0));
        let req = Request::builder()
            .header("expect", "100-continue")
            .body(counted(4, 1000, taken.clone()))
            .unwrap();
        discard(req).await;
        assert_eq!(taken.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_is_waited_for_one_second() {
        let started = tokio::time::Instant::now();
        let body = StreamBody::new(futures::stream::pending::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >());
        discard(Request::new(body)).await;
        assert_eq!(started.elapsed(), WAIT);
    }
}
