//! An I/O wrapper that ends a connection after a period with no progress in either direction.
//!
//! hyper has a header-read timeout but no idle timeout: a keep-alive connection nobody uses,
//! or a client that stops reading a large body, would otherwise hold a socket (and, for a
//! stalled write, a body stream) forever. Progress on a read *or* a write resets the clock, so
//! a long download to a client that reads steadily is never cut. The deadline is re-armed
//! lazily: a completed read or write only sets a flag; the clock is read when an operation
//! next has to wait, and the timer, armed once, is moved only when it fires early (there was
//! progress since it was armed). So a request costs one clock read and no timer-wheel update.

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
        progressed: bool,
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
            progressed: false,
        }
    }

    /// Runs one I/O operation on the inner stream: a completed one counts as progress; a
    /// pending one fails once the connection has been idle too long.
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
                check_idle(this.timer.as_mut(), *this.last_progress, *this.timeout, cx).map(Err)
            }
        }
    }
}

/// Called when an operation is pending: fails once `last_progress + timeout` has passed. The
/// timer's deadline is never later than that (it was set from an older `last_progress`); when
/// it fires early, it moves to the real deadline.
fn check_idle(
    mut timer: Pin<&mut Sleep>,
    last_progress: Instant,
    timeout: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    loop {
        match timer.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(()) => {
                let deadline = last_progress + timeout;
                if Instant::now() >= deadline {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle timeout",
                    ));
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

impl<T: AsyncRead> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.track(cx, |inner, cx| inner.poll_read(cx, buf))
    }
}

impl<T: AsyncWrite> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.track(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.track(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
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
        let mut io = IdleTimeout::new(server, TIMEOUT);
        let started = Instant::now();
        let err = io.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUT);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_moves_the_deadline_and_the_last_byte_starts_the_clock() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = IdleTimeout::new(server, TIMEOUT);
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
}
