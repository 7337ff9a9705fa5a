//! A request body that the answer does not use (a `POST` to a file, a `GET` with content) is
//! read and thrown away, up to [`LIMIT`] bytes and for at most [`WAIT`], as nginx discards
//! one.
//!
//! - **HTTP/2**: the answer goes at once, and the body is read beside it, in a task of its
//!   own. Dropped unread, the body would end the stream with `RST_STREAM(NO_ERROR)` from the
//!   h2 crate while the client still sends (RFC 9113 §8.1 allows it, to stop the upload),
//!   and clients that take the reset for a failure drop the answer they already have (curl
//!   7.88 and Python's httpx show an error instead of the 405). Past the limit or the wait,
//!   the body is dropped and the reset stops the upload. `Expect: 100-continue` changes
//!   nothing here: hyper sends no `100` on HTTP/2, a client sends the body after its own
//!   wait, and a reset would lose the answer just the same.
//! - **HTTP/1** (hyper's side of the connection): the body is read before the answer, so that
//!   the connection stays open for the next request. A body past the limit or the wait is
//!   left, and the answer says `Connection: close` (the close lingers, `server::linger`). A
//!   request that asks `Expect: 100-continue` is answered at once, its body never asked for
//!   (reading it would tell the client to send what nobody wants, RFC 9110 §10.1.1), and the
//!   connection closes.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::BodyExt;

/// The most bytes of an unused body read: what most uploads are, so that they get their
/// answer whole, and a bound on the work a fast client can ask for in [`WAIT`].
pub const LIMIT: usize = 16 * 1024 * 1024;

/// The longest an unused body is read.
pub const WAIT: Duration = Duration::from_secs(1);

/// What became of a request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discarded {
    /// There was none, or it has been read to its end.
    Done,
    /// An HTTP/2 body, read in a task beside the answer.
    Beside,
    /// An HTTP/1 body that is left unread (or unfinished): the connection must close.
    Left,
}

/// Reads and drops `req`'s body, if it has one, within [`LIMIT`] and [`WAIT`]: on HTTP/2 in a
/// task of its own, so that this returns at once; on HTTP/1 before this returns.
pub async fn discard<B>(req: Request<B>) -> Discarded
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
{
    if req.body().is_end_stream() {
        return Discarded::Done;
    }
    if req.version() >= Version::HTTP_2 {
        tokio::spawn(async move {
            let body = std::pin::pin!(req.into_body());
            let _ = tokio::time::timeout(WAIT, read_up_to(body, LIMIT)).await;
        });
        return Discarded::Beside;
    }
    if req.headers().contains_key(http::header::EXPECT) {
        return Discarded::Left;
    }
    let body = std::pin::pin!(req.into_body());
    match tokio::time::timeout(WAIT, read_up_to(body, LIMIT)).await {
        Ok(true) => Discarded::Done,
        _ => Discarded::Left,
    }
}

/// Reads frames until the body ends (true), fails or passes `limit` bytes (false).
async fn read_up_to<B>(mut body: std::pin::Pin<&mut B>, limit: usize) -> bool
where
    B: http_body::Body<Data = Bytes>,
{
    let mut read = 0usize;
    loop {
        match body.frame().await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read = read.saturating_add(data.len());
                    if read > limit {
                        return false;
                    }
                }
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
    ) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> + Send + 'static {
        let frames = (0..chunks).map(move |_| {
            taken.fetch_add(1, Ordering::SeqCst);
            Ok(http_body::Frame::data(Bytes::from(vec![0u8; size])))
        });
        StreamBody::new(futures::stream::iter(frames))
    }

    /// A body that never ends.
    fn endless() -> impl http_body::Body<Data = Bytes> + Send + 'static {
        StreamBody::new(futures::stream::pending::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >())
    }

    #[tokio::test]
    async fn a_small_http1_body_is_read_to_its_end_before_the_answer() {
        let taken = Arc::new(AtomicUsize::new(0));
        let done = discard(Request::new(counted(4, 1000, taken.clone()))).await;
        assert_eq!(done, Discarded::Done);
        assert_eq!(taken.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn reading_stops_past_the_limit_and_the_connection_closes() {
        let taken = Arc::new(AtomicUsize::new(0));
        let done = discard(Request::new(counted(100, 1024 * 1024, taken.clone()))).await;
        assert_eq!(done, Discarded::Left);
        // 16 MiB is sixteen frames; the seventeenth passes the limit.
        assert_eq!(taken.load(Ordering::SeqCst), 17);
    }

    #[tokio::test]
    async fn an_http1_body_behind_expect_is_never_asked_for() {
        let taken = Arc::new(AtomicUsize::new(0));
        let req = Request::builder()
            .header("expect", "100-continue")
            .body(counted(4, 1000, taken.clone()))
            .unwrap();
        assert_eq!(discard(req).await, Discarded::Left);
        assert_eq!(taken.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_http1_body_that_never_ends_is_waited_for_one_second() {
        let started = tokio::time::Instant::now();
        assert_eq!(discard(Request::new(endless())).await, Discarded::Left);
        assert_eq!(started.elapsed(), WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_body_is_read_beside_the_answer_expect_or_not() {
        let taken = Arc::new(AtomicUsize::new(0));
        let req = Request::builder()
            .version(Version::HTTP_2)
            .header("expect", "100-continue")
            .body(counted(4, 1000, taken.clone()))
            .unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(discard(req).await, Discarded::Beside);
        assert_eq!(started.elapsed(), Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(taken.load(Ordering::SeqCst), 4);
        // One that never ends does not hold the answer either.
        let req = Request::builder()
            .version(Version::HTTP_2)
            .body(endless())
            .unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(discard(req).await, Discarded::Beside);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
