//! An I/O wrapper that ends a connection after a period with no progress in either direction.
//!
//! hyper has a header-read timeout but no idle timeout: a keep-alive connection nobody uses,
//! or a client that stops reading a large body, would otherwise hold a socket (and, for a
//! stalled write, a body stream) forever. Progress on a read *or* a write resets the clock, so
//! a long download to a client that reads steadily is never cut. The deadline is re-armed
//! lazily: a chunk only stores `Instant::now()`, and the timer is reset only when it fires
//! early, so the hot path costs no timer operations per chunk.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pin_project! {
    /// See the module docs.
    pub struct IdleTimeout<T> {
        #[pin]
        inner: T,
        timer: Pin<Box<Sleep>>,
        timeout: Duration,
        last_progress: Instant,
    }
}

impl<T> IdleTimeout<T> {
    /// Wraps `inner`; it errors with `TimedOut` after `timeout` without progress.
    pub fn new(inner: T, timeout: Duration) -> Self {
        let now = Instant::now();
        IdleTimeout {
            inner,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
            timeout,
            last_progress: now,
        }
    }
}

/// Called when an operation is pending: fails once the connection has been idle too long.
fn check_idle(
    mut timer: Pin<&mut Sleep>,
    last_progress: Instant,
    timeout: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    loop {
        let deadline = last_progress + timeout;
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) if Instant::now() >= deadline => {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle timeout",
                ));
            }
            Poll::Ready(()) => continue,
            Poll::Pending => return Poll::Pending,
        }
    }
}

impl<T: AsyncRead> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        match this.inner.poll_read(cx, buf) {
            Poll::Ready(r) => {
                *this.last_progress = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                check_idle(this.timer.as_mut(), *this.last_progress, *this.timeout, cx).map(Err)
            }
        }
    }
}

impl<T: AsyncWrite> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.inner.poll_write(cx, buf) {
            Poll::Ready(r) => {
                *this.last_progress = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                check_idle(this.timer.as_mut(), *this.last_progress, *this.timeout, cx).map(Err)
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.inner.poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                *this.last_progress = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                check_idle(this.timer.as_mut(), *this.last_progress, *this.timeout, cx).map(Err)
            }
        }
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
