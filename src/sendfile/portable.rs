//! Other systems than Linux: no memory file and no `sendfile` path. [`BodyArena`] cannot be
//! made, so a `ZeroCopyStream` never has one and writes as the socket does.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

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
