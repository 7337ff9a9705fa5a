//! Zero-copy bodies: cached bodies live in a memory file, and a connection hands them to the
//! socket with `sendfile(2)` instead of copying them out of our memory (HTTP/1 responses, and
//! HTTP/2 DATA frames over 16 KiB, which a client may allow).
//!
//! A 32 KB precompressed stylesheet served from memory costs a copy of every byte into the
//! socket's buffers; nginx, with `sendfile on`, passes the page cache's pages instead. Measured
//! on the benchmark's CSS scenario (benches/README.md): nginx with `sendfile off` spends as
//! much system time per response as we did and serves 18 % fewer requests than with it on.
//!
//! Two parts, which meet only through the address of the bytes:
//!
//! - [`BodyArena`] (`arena.rs`): one sparse memory file (`memfd_create`) mapped once, from
//!   which cached bodies over [`MIN_BODY`] and up to [`MAX_BODY`] get page-aligned ranges
//!   (larger ones measured faster copied, see `MAX_BODY`). A body adopted by the arena
//!   is an ordinary [`bytes::Bytes`] whose owner frees its range (and punches the range's pages
//!   out of the file) when the last clone is dropped; the rest of the server does not know.
//! - [`ZeroCopyStream`] (`socket.rs`): the connection's socket. When hyper writes a slice that
//!   lies inside the arena's mapping, it sends what precedes it with `MSG_MORE` and the slice
//!   itself with `sendfile` from the memory file at the slice's offset: the same bytes, read
//!   by the kernel from the same pages. Anything else is written as before.
//!
//! The arena is used only with the hot cache on and the `sendfile` setting on (the default).
//! Where the memory file cannot be made (a sandbox that forbids `memfd_create`; any system
//! but Linux, where `portable.rs` stands in for the arena) the server logs it once and
//! copies, as it always did.

#[cfg(target_os = "linux")]
mod arena;
#[cfg(not(target_os = "linux"))]
mod portable;
mod socket;

#[cfg(target_os = "linux")]
pub use arena::{BodyArena, MAX_BODY, MIN_BODY};
#[cfg(not(target_os = "linux"))]
pub use portable::{BodyArena, MAX_BODY, MIN_BODY};
pub use socket::ZeroCopyStream;
