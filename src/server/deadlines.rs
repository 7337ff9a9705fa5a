//! An I/O wrapper that puts the connection's two deadlines on its reads and writes:
//!
//! - **idle**: no progress in either direction for the idle timeout ends the connection. A
//!   keep-alive connection nobody uses, or a client that stops reading a large body, would
//!   otherwise hold a socket (and, for a stalled write, a body stream) forever. Progress on a
//!   read *or* a write resets the clock, so a long download to a client that reads steadily
//!   is never cut.
//! - **request head** (HTTP/1): once the first byte of a request has arrived, the rest of its
//!   head must follow within the header-read timeout (slowloris), however steadily it
//!   trickles. The clock runs only while a head is being read: a keep-alive connection waiting
//!   for its next request is under the idle timeout alone, and a request being answered (a
//!   slow store, a long body) is not timed by it either. The service tells the wrapper that a
//!   head was complete through a shared flag ([`HeadSignal`]). HTTP/2 connections (those that
//!   open with the connection preface) are left to HTTP/2's own limits: frames of every
//!   stream share the connection, so "a head in progress" means nothing there.
//!
//! This replaces hyper's own header-read timeout, which starts its clock as soon as a
//! keep-alive connection begins waiting (so it cut idle keep-alive connections at the header
//! timeout) and costs a boxed timer per request.
//!
//! Both deadlines are kept lazily on one timer: a completed read or write only sets a flag
//! (or moves a small state machine); the clock is read when an operation next has to wait,
//! and the timer, armed once, is moved only when it fires early or a head has to finish
//! sooner. A request whose head arrives in one read costs no clock read and no timer update.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The HTTP/2 connection preface (RFC 9113 section 3.4), as hyper-util's protocol detection
/// reads it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Set by the service each time hyper hands it a request: the head being read is complete.
#[derive(Clone, Debug, Default)]
pub struct HeadSignal(Arc<AtomicBool>);

impl HeadSignal {
    /// Called by the service for every request it receives.
    pub fn head_complete(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        // A plain load first: the flag is usually already known, and a swap would be a locked
        // instruction on every request.
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::Relaxed)
    }

    fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Where the connection is in reading a request head (HTTP/1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    /// Waiting for the first byte of a request: only the idle timeout applies.
    Waiting,
    /// Bytes of a head were read; its clock starts the first time a read has to wait for more
    /// (a head that arrives in one read is never timed).
    Begun,
    /// A read waited for more of the head, which must be complete by this instant.
    Due(Instant),
    /// The head was handed to the service: nothing to time until the response is written.
    Answering,
}

/// The request-head clock of an HTTP/1 connection.
#[derive(Debug)]
struct HeadClock {
    limit: Duration,
    signal: HeadSignal,
    state: Head,
    /// How many leading bytes matched the HTTP/2 preface; `None` once they did not (HTTP/1).
    preface: Option<usize>,
}

impl HeadClock {
    /// After a read that returned `bytes`. `false` when they complete the HTTP/2 preface:
    /// the clock does not apply to this connection.
    fn read(&mut self, bytes: &[u8]) -> bool {
        if let Some(matched) = self.preface {
            let want = &H2_PREFACE[matched..];
            let n = want.len().min(bytes.len());
            if bytes[..n] != want[..n] {
                self.preface = None;
            } else if matched + n == H2_PREFACE.len() {
                return false;
            } else {
                self.preface = Some(matched + n);
            }
        }
        if self.state == Head::Waiting {
            self.state = Head::Begun;
            self.signal.clear();
        }
        true
    }

    /// After a write: a response is going out, so the next byte read begins a new head.
    fn wrote(&mut self) {
        self.state = Head::Waiting;
    }

    /// When an operation waits: the instant the head being read must be complete by, if one
    /// is being read.
    fn due(&mut self) -> Option<Instant> {
        match self.state {
            Head::Waiting | Head::Answering => None,
            Head::Begun | Head::Due(_) if self.signal.take() => {
                self.state = Head::Answering;
                None
            }
            Head::Begun => {
                let due = Instant::now() + self.limit;
                self.state = Head::Due(due);
                Some(due)
            }
            Head::Due(due) => Some(due),
        }
    }
}

pin_project! {
    /// See the module docs.
    pub struct Deadlines<T> {
        #[pin]
        inner: T,
        timer: Pin<Box<Sleep>>,
        idle: Duration,
        last_progress: Instant,
        progressed: bool,
        head: Option<HeadClock>,
    }
}

impl<T> Deadlines<T> {
    /// Wraps `inner`; it errors with `TimedOut` after `idle` without progress.
    pub fn new(inner: T, idle: Duration) -> Self {
        let now = Instant::now();
        Deadlines {
            inner,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            idle,
            last_progress: now,
            progressed: false,
            head: None,
        }
    }

    /// Adds the request-head deadline: `limit` from the first byte of a head to the service
    /// receiving it ([`HeadSignal::head_complete`]).
    pub fn with_head_timeout(mut self, limit: Duration, signal: HeadSignal) -> Self {
        self.head = Some(HeadClock {
            limit,
            signal,
            state: Head::Waiting,
            preface: Some(0),
        });
        self
    }

    /// Runs one I/O operation on the inner stream: a completed one counts as progress; a
    /// pending one fails once a deadline has passed.
    fn track<R>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let this = self.project();
        match op(this.inner, cx) {
            Poll::Ready(r) => {
                *this.progressed = true;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if std::mem::take(this.progressed) {
                    *this.last_progress = Instant::now();
                }
                let head_due = this.head.as_mut().and_then(HeadClock::due);
                let idle_due = *this.last_progress + *this.idle;
                check(this.timer.as_mut(), idle_due, head_due, cx).map(Err)
            }
        }
    }

    /// A write of `n` bytes completed.
    fn wrote(self: Pin<&mut Self>, n: usize) {
        if n > 0
            && let Some(head) = self.project().head
        {
            head.wrote();
        }
    }
}

/// Called when an operation is pending: fails once `idle_due` or `head_due` has passed. The
/// timer's deadline is never later than the earlier of the two: it was set from an older
/// `last_progress`, and is brought forward when a head is due sooner. When it fires early, it
/// moves to the real deadline.
fn check(
    mut timer: Pin<&mut Sleep>,
    idle_due: Instant,
    head_due: Option<Instant>,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    let due = head_due.map_or(idle_due, |head| head.min(idle_due));
    if due < timer.deadline() {
        timer.as_mut().reset(due);
    }
    loop {
        match timer.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(()) => {
                let now = Instant::now();
                if head_due.is_some_and(|head| now >= head) {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not complete within the header-read timeout",
                    ));
                }
                if now >= idle_due {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle timeout",
                    ));
                }
                timer.as_mut().reset(due);
            }
        }
    }
}

impl<T: AsyncRead> AsyncRead for Deadlines<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = self
            .as_mut()
            .track(cx, |inner, cx| inner.poll_read(cx, buf));
        if let Poll::Ready(Ok(())) = r {
            let head = self.project().head;
            let read = &buf.filled()[before..];
            if !read.is_empty()
                && let Some(clock) = head
                && !clock.read(read)
            {
                *head = None;
            }
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for Deadlines<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = self
            .as_mut()
            .track(cx, |inner, cx| inner.poll_write(cx, buf));
        if let Poll::Ready(Ok(n)) = r {
            self.wrote(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = self
            .as_mut()
            .track(cx, |inner, cx| inner.poll_write_vectored(cx, bufs));
        if let Poll::Ready(Ok(n)) = r {
            self.wrote(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_after_the_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let mut io = Deadlines::new(server, TIMEOUT);
        let started = Instant::now();
        let err = io.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUT);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_moves_the_deadline_and_the_last_byte_starts_the_clock() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = Deadlines::new(server, TIMEOUT);
        let started = Instant::now();
        let writer = tokio::spawn(async move {
            for i in 0..5u8 {
                tokio::time::sleep(TIMEOUT * 6 / 10).await;
                client.write_u8(i).await.unwrap();
            }
            client
        });
        // Five bytes 6 s apart: 30 s in all, three times the timeout, never idle for 10 s.
        for i in 0..5u8 {
            assert_eq!(io.read_u8().await.unwrap(), i);
        }
        let last_byte = started.elapsed();
        assert_eq!(last_byte, TIMEOUT * 3);
        let _client = writer.await.unwrap();
        let err = io.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), last_byte + TIMEOUT);
    }

    const HEAD: Duration = Duration::from_secs(3);

    fn with_head(
        server: tokio::io::DuplexStream,
    ) -> (Deadlines<tokio::io::DuplexStream>, HeadSignal) {
        let signal = HeadSignal::default();
        let io = Deadlines::new(server, TIMEOUT).with_head_timeout(HEAD, signal.clone());
        (io, signal)
    }

    /// Writes `bytes` one at a time, `every` apart, then keeps the stream open.
    fn trickle(
        mut client: tokio::io::DuplexStream,
        bytes: &'static [u8],
        every: Duration,
    ) -> tokio::task::JoinHandle<tokio::io::DuplexStream> {
        tokio::spawn(async move {
            for b in bytes {
                client.write_u8(*b).await.unwrap();
                tokio::time::sleep(every).await;
            }
            client
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_head_is_cut_at_the_head_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let (mut io, _signal) = with_head(server);
        // A byte a second: never idle for the 10 s idle timeout, but the head takes too long.
        let _client = trickle(
            client,
            b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa",
            Duration::from_secs(1),
        );
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let err = loop {
            match io.read(&mut buf).await {
                Ok(n) => assert!(n > 0),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("header-read"), "{err}");
        // The clock started at the first wait after the first byte.
        assert_eq!(started.elapsed(), HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn only_heads_are_timed_not_answers_nor_keep_alive_waits() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, signal) = with_head(server);
        let mut buf = [0u8; 1024];
        for round in 0..3 {
            // A head in two parts, 2 s apart (within the 3 s head timeout).
            client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            assert!(io.read(&mut buf).await.unwrap() > 0);
            let rest = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                client.write_all(b"Host: x\r\n\r\n").await.unwrap();
                client
            });
            assert!(io.read(&mut buf).await.unwrap() > 0, "round {round}");
            client = rest.await.unwrap();
            // The service has it; answering takes 5 s (a slow store), then the response.
            signal.head_complete();
            tokio::time::sleep(Duration::from_secs(5)).await;
            io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            assert!(client.read(&mut buf).await.unwrap() > 0);
            // The connection then waits 8 s for its next request: longer than the head
            // timeout, shorter than the idle timeout.
            let next = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(8)).await;
                client.write_all(b"G").await.unwrap();
                client
            });
            assert_eq!(io.read(&mut buf).await.unwrap(), 1, "round {round}");
            client = next.await.unwrap();
            client.write_all(b"ET").await.unwrap();
            // (the first byte of the next head was "G"; the rest follows in the next round)
            assert!(io.read(&mut buf).await.unwrap() > 0);
            signal.head_complete();
            io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            assert!(client.read(&mut buf).await.unwrap() > 0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_head_timeout_restarts_for_the_next_request() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, signal) = with_head(server);
        let mut buf = [0u8; 1024];
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        signal.head_complete();
        io.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        // The second request's head trickles: cut 3 s after it began.
        let _client = trickle(
            client,
            b"GET /two HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaa",
            Duration::from_millis(500),
        );
        let started = Instant::now();
        let err = loop {
            match io.read(&mut buf).await {
                Ok(n) => assert!(n > 0),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_have_no_head_clock() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, _signal) = with_head(server);
        let mut buf = [0u8; 1024];
        // The preface in two reads, then frames a byte every 2 s: only the idle timeout
        // applies, and it never fires.
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 5);
        client.write_all(&H2_PREFACE[5..]).await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), H2_PREFACE.len() - 5);
        let _client = trickle(client, &[0; 10], Duration::from_secs(2));
        let started = Instant::now();
        for _ in 0..10 {
            assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        }
        assert_eq!(started.elapsed(), Duration::from_secs(18));
        let err = io.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("idle"), "{err}");
    }
}
