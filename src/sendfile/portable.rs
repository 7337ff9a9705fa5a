//! Other systems than Linux: no memory file and no `sendfile` path. [`BodyArena`] cannot be
//! made (so none is ever used), and [`ZeroCopyStream`] is the socket as it is.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::metrics::Metrics;

/// Bodies larger than this would be kept in the arena on Linux.
pub const MIN_BODY: usize = 16 * 1024;

/// Bodies up to this size would be kept in the arena on Linux.
pub const MAX_BODY: usize = 96 * 1024;

/// No arena on this system: the type has no values.
#[derive(Debug)]
pub enum BodyArena {}

impl BodyArena {
    /// Always fails here: zero-copy bodies need Linux's `memfd_create` and `sendfile`.
    pub fn new(_capacity: u64) -> io::Result<Arc<BodyArena>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "zero-copy bodies need Linux",
        ))
    }

    /// The arena's size in bytes.
    pub fn capacity(&self) -> u64 {
        match *self {}
    }

    /// Bytes of the ranges that live bodies hold.
    pub fn held(&self) -> u64 {
        match *self {}
    }

    /// Where `slice` lies in the memory file.
    pub fn locate(&self, _slice: &[u8]) -> Option<u64> {
        match *self {}
    }

    /// `body` in the arena.
    pub fn adopt(self: &Arc<Self>, _body: Bytes) -> Bytes {
        match **self {}
    }
}

/// The TCP stream, unchanged.
#[derive(Debug)]
pub struct ZeroCopyStream {
    stream: TcpStream,
}

impl ZeroCopyStream {
    /// Wraps `stream` (there is never an arena here).
    pub fn new(
        stream: TcpStream,
        _arena: Option<Arc<BodyArena>>,
        _metrics: Option<Arc<Metrics>>,
    ) -> Self {
        ZeroCopyStream { stream }
    }
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
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
