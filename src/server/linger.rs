//! The lingering close: how the server closes a connection without losing what it sent.
//!
//! Closing a socket that still has unread bytes from the client, or that receives bytes
//! after the close, makes the kernel answer with a reset (RST), and a reset makes the
//! client's kernel drop whatever it had received and its program had not read yet: the end of
//! a response, or the whole of a 400, 413 or 431 sent while the client was still sending its
//! request. That happens when the client keeps writing after our last answer: the rest of an
//! oversized head or of a request body we did not read, pipelined requests after a
//! `Connection: close`, or on HTTP/2 the window updates and PING answers a client sends while
//! it reads a response, and its answer to a GOAWAY.
//!
//! So a connection is closed as nginx's `lingering_close` does it: shut down the write side
//! (the client gets a FIN after the last byte it is owed), then read and discard what the
//! client still sends until it closes its side, and close then. Bounds, nginx's too:
//! - [`QUIET`] without a byte from the client (`lingering_timeout`; [`QUIET_STOPPING`] once
//!   the server is shutting down, so that clients that keep their side open do not hold up
//!   the drain);
//! - [`AT_MOST`] in all (`lingering_time`): a client still sending after that gets the reset.
//!
//! A client that is silent while it reads the rest of a large answer is no risk: the kernel
//! goes on sending what it holds after the close, and resets only on bytes that arrive.
//!
//! An HTTP/1 connection that hyper closes, and every HTTP/2 connection, come back here when
//! hyper drops them: hyper is lent the I/O in a [`Lent`], which hands it back on drop. A
//! connection cut by a deadline (no request in time, idle) is closed at once, as nginx does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Stop;

/// How long the client may be silent before the close (nginx's `lingering_timeout`).
pub const QUIET: Duration = Duration::from_secs(5);

/// [`QUIET`] once the server is shutting down.
pub const QUIET_STOPPING: Duration = Duration::from_secs(1);

/// How long the close may take in all (nginx's `lingering_time`).
pub const AT_MOST: Duration = Duration::from_secs(30);

/// Shuts down the write side of `io`, then reads and discards until the client closes, or
/// one of the module's bounds passes ([`QUIET_STOPPING`] instead of [`QUIET`] once `stop`
/// says the server is shutting down). Dropping `io` afterwards closes the socket.
pub async fn close<S>(io: &mut S, stop: Option<&Stop>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = io.shutdown().await;
    let end = Instant::now() + AT_MOST;
    let mut sink = vec![0u8; 16 * 1024];
    loop {
        let quiet = match stop {
            Some(stop) if stop.is_stopping() => QUIET_STOPPING,
            _ => QUIET,
        };
        let until = (Instant::now() + quiet).min(end);
        match tokio::time::timeout_at(until, io.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 && Instant::now() < end => {}
            _ => return,
        }
    }
}

/// A connection's I/O lent to hyper: it goes back through its channel when hyper drops it,
/// so that the server closes it ([`close`]).
#[derive(Debug)]
pub struct Lent<T> {
    io: Option<T>,
    back: Option<oneshot::Sender<T>>,
}

impl<T> Lent<T> {
    /// Lends `io`; the receiver gets it back once the `Lent` is dropped.
    pub fn new(io: T) -> (Self, oneshot::Receiver<T>) {
        let (back, returned) = oneshot::channel();
        let lent = Lent {
            io: Some(io),
            back: Some(back),
        };
        (lent, returned)
    }

    /// The I/O; it is only ever missing inside `drop`.
    fn io(&mut self) -> io::Result<&mut T> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl<T> Drop for Lent<T> {
    fn drop(&mut self) {
        if let (Some(io), Some(back)) = (self.io.take(), self.back.take()) {
            // Nobody waiting: the server's side of the connection is gone, and so is the I/O.
            let _ = back.send(io);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lent<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Lent<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io() {
            Ok(io) => Pin::new(io).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shuts_down_writing_then_reads_until_the_client_closes() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let closing = tokio::spawn(async move {
            close(&mut server, None).await;
            Instant::now()
        });
        // The client sees the end of our output while it still writes.
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty());
        let started = Instant::now();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            client.write_all(b"more of a body").await.unwrap();
        }
        drop(client);
        let closed = closing.await.unwrap();
        assert_eq!(
            closed - started,
            Duration::from_secs(6),
            "closed when the client did"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_closed_after_the_quiet_time() {
        let (_client, mut server) = tokio::io::duplex(1 << 16);
        let started = Instant::now();
        close(&mut server, None).await;
        assert_eq!(started.elapsed(), QUIET);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_closed_sooner_while_the_server_stops() {
        let (_client, mut server) = tokio::io::duplex(1 << 16);
        let stop = Stop::default();
        stop.cancel();
        let started = Instant::now();
        close(&mut server, Some(&stop)).await;
        assert_eq!(started.elapsed(), QUIET_STOPPING);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_keeps_sending_is_closed_after_at_most() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let started = Instant::now();
        let closing = tokio::spawn(async move { close(&mut server, None).await });
        let feeder = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if client.write_all(b"junk").await.is_err() {
                    return;
                }
            }
        });
        closing.await.unwrap();
        assert_eq!(started.elapsed(), AT_MOST);
        feeder.abort();
    }

    #[tokio::test]
    async fn a_lent_io_comes_back_when_dropped() {
        let (client, server) = tokio::io::duplex(64);
        let (mut lent, returned) = Lent::new(server);
        lent.write_all(b"hi").await.unwrap();
        drop(lent);
        let mut back = returned.await.expect("given back");
        back.shutdown().await.unwrap();
        drop(back);
        let mut client = client;
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hi");
    }
}
