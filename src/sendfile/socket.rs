//! A connection's socket that sends arena slices with `sendfile(2)`.
//!
//! hyper writes a response as one vectored write of its buffers: the head it encoded, then
//! our body's `Bytes` as they are (hyper's queue strategy, which it picks because this stream
//! is vectored). When one of those slices is larger than [`MIN_BODY`] and lies inside the
//! [`BodyArena`]'s mapping, this stream sends the slices before it with `sendmsg(MSG_MORE)`
//! (so the head and the body's first bytes still leave in one segment) and that slice with
//! `sendfile` from the memory file at the slice's offset; it reports the bytes written as a
//! write would, and hyper goes on with the rest. Everything else is an ordinary write,
//! including the rest of a slice after a partial write once that rest is no longer over
//! [`MIN_BODY`] (`cdn_origin_sendfile_bytes_total` counts only what `sendfile` sent).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::{BodyArena, MIN_BODY};
use crate::metrics::Metrics;

/// A TCP stream whose writes send arena slices with `sendfile`.
#[derive(Debug)]
pub struct ZeroCopyStream {
    stream: TcpStream,
    arena: Option<Arc<BodyArena>>,
    metrics: Option<Arc<Metrics>>,
}

impl ZeroCopyStream {
    /// Wraps `stream`; without an arena every write is an ordinary one. `metrics` counts the
    /// bytes sent with `sendfile`.
    pub fn new(
        stream: TcpStream,
        arena: Option<Arc<BodyArena>>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        ZeroCopyStream {
            stream,
            arena,
            metrics,
        }
    }

    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.stream
    }
}

/// The first slice of `bufs` to send from the arena: its index and file offset.
fn arena_slice(arena: &BodyArena, bufs: &[IoSlice<'_>]) -> Option<(usize, u64)> {
    bufs.iter().enumerate().find_map(|(i, buf)| {
        if buf.len() > MIN_BODY {
            arena.locate(buf).map(|offset| (i, offset))
        } else {
            None
        }
    })
}

/// Sends `before` with `MSG_MORE`, then `len` bytes of the arena file from `offset`. Returns
/// the bytes written in all and those that `sendfile` wrote. A `WouldBlock` comes back only
/// when nothing was written.
#[cfg(target_os = "linux")]
fn send(
    stream: &TcpStream,
    arena: &BodyArena,
    before: &[IoSlice<'_>],
    offset: u64,
    len: usize,
) -> io::Result<(usize, usize)> {
    let head: usize = before.iter().map(|b| b.len()).sum();
    let mut written = 0;
    if head > 0 {
        written = rustix::net::sendmsg(
            stream,
            before,
            &mut rustix::net::SendAncillaryBuffer::default(),
            rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
        )?;
        if written < head {
            return Ok((written, 0));
        }
    }
    let mut offset = offset;
    match rustix::fs::sendfile(stream, arena.file(), Some(&mut offset), len) {
        Ok(n) => Ok((written + n, n)),
        // The head went out: report it; the error (a full buffer, a reset) comes back on
        // the next write, which starts with the body. (`sendfile` has no MSG_NOSIGNAL: on a
        // reset socket it raises SIGPIPE, which the Rust runtime ignores in our binary.)
        Err(_) if written > 0 => Ok((written, 0)),
        Err(rustix::io::Errno::AGAIN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e.into()),
    }
}

/// Elsewhere there is never an arena (`portable.rs`), so nothing is sent from one.
#[cfg(not(target_os = "linux"))]
fn send(
    _stream: &TcpStream,
    arena: &BodyArena,
    _before: &[IoSlice<'_>],
    _offset: u64,
    _len: usize,
) -> io::Result<(usize, usize)> {
    match *arena {}
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let found = this
            .arena
            .as_deref()
            .and_then(|arena| arena_slice(arena, bufs).map(|found| (arena, found)));
        let Some((arena, (index, offset))) = found else {
            return Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        };
        let stream = &this.stream;
        loop {
            ready!(stream.poll_write_ready(cx))?;
            // `try_io` clears the write readiness when `send` reports `WouldBlock`, so the
            // next `poll_write_ready` waits for the socket.
            match stream.try_io(Interest::WRITABLE, || {
                send(stream, arena, &bufs[..index], offset, bufs[index].len())
            }) {
                Ok((written, sent)) => {
                    if let Some(metrics) = &this.metrics {
                        metrics.add_sendfile_bytes(sent as u64);
                    }
                    return Poll::Ready(Ok(written));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
