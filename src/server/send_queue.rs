//! What a connection has sent that its client has not received yet: the bytes in the socket's
//! send queue (written and not yet acknowledged by the client's TCP), `ioctl(TIOCOUTQ)` on
//! Linux.
//!
//! A write completes once its bytes are in the kernel's buffers, which hold megabytes on a
//! fast path, so a client reading a large response slowly can still be receiving it long
//! after the server's last write, with nothing to read from it meanwhile (HTTP/1), or only
//! flow-control frames (HTTP/2). The idle deadline ([`super::deadlines`]) reads the queue so
//! as not to take such a client for idle.

use tokio::net::TcpStream;

use crate::sendfile::ZeroCopyStream;

/// A stream whose unacknowledged output can be counted.
pub trait SendQueue {
    /// Bytes written to the stream that the peer has not acknowledged; 0 when unknown.
    fn unacknowledged(&self) -> usize;
}

impl SendQueue for TcpStream {
    #[cfg(target_os = "linux")]
    fn unacknowledged(&self) -> usize {
        use std::os::fd::AsRawFd;
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one `int` through the pointer, which points to
        // a live `c_int`; the descriptor is this stream's own open socket for the call.
        let r = unsafe { libc::ioctl(self.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        if r == 0 {
            usize::try_from(queued).unwrap_or(0)
        } else {
            0
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn unacknowledged(&self) -> usize {
        0
    }
}

impl SendQueue for ZeroCopyStream {
    fn unacknowledged(&self) -> usize {
        self.tcp().unacknowledged()
    }
}

/// A test stream whose send queue the test sets, and duplex streams with none.
#[cfg(test)]
pub mod testing {
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

    use super::SendQueue;

    impl SendQueue for DuplexStream {
        fn unacknowledged(&self) -> usize {
            0
        }
    }

    /// A duplex stream's server side, with a send queue the test sets.
    pub struct Queued {
        io: DuplexStream,
        queued: Arc<AtomicUsize>,
    }

    /// A client stream, the server's side of it, and the server side's send queue.
    pub fn pair() -> (DuplexStream, Queued, Arc<AtomicUsize>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let queued = Arc::new(AtomicUsize::new(0));
        let server = Queued {
            io: server,
            queued: queued.clone(),
        };
        (client, server, queued)
    }

    impl SendQueue for Queued {
        fn unacknowledged(&self) -> usize {
            self.queued.load(Ordering::Relaxed)
        }
    }

    impl AsyncRead for Queued {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Queued {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().io).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_what_the_peer_has_not_read_once_its_window_is_full() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        // A small receive buffer on the peer, so that its window fills quickly.
        socket.set_recv_buffer_size(4096).unwrap();
        let mut peer = socket.connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        assert_eq!(server.unacknowledged(), 0, "nothing written yet");
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0;
        // Write until the socket would block: the peer reads nothing.
        while let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), server.write(&chunk)).await
        {
            written += n;
        }
        let queued = server.unacknowledged();
        assert!(queued > 0, "written {written}, none counted");
        assert!(queued <= written, "{queued} > {written}");
        // The peer reads everything: the queue empties.
        let mut buf = vec![0u8; written];
        peer.read_exact(&mut buf).await.unwrap();
        let mut left = server.unacknowledged();
        for _ in 0..50 {
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            left = server.unacknowledged();
        }
        assert_eq!(left, 0);
    }
}
