//! The memory file that cached bodies live in, so that a socket can `sendfile` them.
//!
//! One `memfd` of twice the cache budget (sparse: only the pages of live bodies take memory),
//! sealed against shrinking and growing, and mapped once, shared and writable, with base
//! pages only (`MADV_NOHUGEPAGE`). A body over [`MIN_BODY`] and up to [`MAX_BODY`] gets a
//! page-aligned range from a best-fit range allocator (`range-alloc`), is copied in through
//! the mapping (so its pages count in the process's resident memory, like the heap copy they
//! replace), and becomes a [`Bytes`] owned by a `Slot`. The last clone's drop punches the
//! range's pages out of the file (`fallocate(PUNCH_HOLE)`, which returns the memory and
//! unmaps it) and then frees the range. Twice the budget leaves room for bodies that outlive
//! their cache entry in a response still being sent, and for fragmentation; a body that finds
//! no range stays on the heap and is simply copied when sent.
//!
//! Why this is sound (the module's two `unsafe` blocks): a range belongs to exactly one
//! `Slot` from its allocation to its release. The copy writes a range no slot owns yet; a
//! slot's bytes are never written while it lives (the only writes are copies into newly
//! allocated ranges, the punch happens in the slot's own drop, after the last reader is gone,
//! and the file is not reachable from outside this module); and the mapping outlives every
//! slot, which holds the arena.
//!
//! Why bytes in flight never change: `sendfile` hands the socket references to the file's
//! pages, and a punch removes pages from the file without touching a page someone else still
//! references, so a range reused after its punch gets new pages. Two conditions, both kept
//! here: the punch must succeed (it is tried once when the arena is made, and a range whose
//! punch fails later is never reused), and the pages must be base pages (punching part of a
//! huge page zeroes that part in place when the page cannot be split; the mapping asks for no
//! huge pages, and the arena is refused where shared memory is forced to them).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use memmap2::{Advice, MmapOptions, MmapRaw};
use parking_lot::Mutex;
use range_alloc::RangeAllocator;
use rustix::fs::{FallocateFlags, MemfdFlags, SealFlags};

/// Bodies larger than this are kept in the arena, and slices larger than this are sent with
/// `sendfile`. Below it a copy costs less than the extra system call. It also keeps HTTP/2's
/// default 16 KiB DATA frames on the ordinary path, where one vectored write sends many (a
/// client that allows larger frames gets them through `sendfile` too).
pub const MIN_BODY: usize = 16 * 1024;

/// Bodies larger than this stay on the heap and are copied into the socket. Measured over
/// loopback (benches/README.md, "Zero-copy bodies"): `sendfile` from the memory file beat the
/// copy by 10-20 % from 24 to 96 KiB, and lost by up to 1.7x at 128 KiB, 600 KB and 1 MiB
/// (nginx, which sends those with `sendfile` too, measured the same as we did with it). The
/// memory file's pages are base pages (4 KiB on x86-64), each a separate reference for the
/// socket.
pub const MAX_BODY: usize = 96 * 1024;

/// The memory file and its mapping. Share as `Arc<BodyArena>`.
pub struct BodyArena {
    file: File,
    map: MmapRaw,
    page: u64,
    ranges: Mutex<RangeAllocator<u64>>,
    held: AtomicU64,
    /// Bytes of ranges whose punch failed, never reused.
    lost: AtomicU64,
}

/// The memory file's name, as `/proc/PID/maps` shows it (`/memfd:cdn-origin-bodies`).
const NAME: &str = "cdn-origin-bodies";

impl std::fmt::Debug for BodyArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyArena")
            .field("capacity", &self.map.len())
            .field("held", &self.held())
            .field("lost", &self.lost.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl BodyArena {
    /// A memory file of `capacity` bytes (rounded up to whole pages), mapped.
    pub fn new(capacity: u64) -> io::Result<Arc<BodyArena>> {
        let page = rustix::param::page_size() as u64;
        let capacity = capacity.div_ceil(page).saturating_mul(page);
        let len = usize::try_from(capacity)
            .ok()
            .filter(|&len| len > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "arena size"))?;
        // NOEXEC_SEAL where the kernel has it (6.3+): with `vm.memfd_noexec = 2` a memory file
        // without it is refused.
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let fd = match rustix::fs::memfd_create(NAME, flags | MemfdFlags::NOEXEC_SEAL) {
            Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create(NAME, flags)?,
            other => other?,
        };
        rustix::fs::ftruncate(&fd, capacity)?;
        // Nothing may change the file's size while it is mapped (a shrink would turn reads of
        // the mapping into SIGBUS).
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        // A freed range must leave the file (module docs); a system that cannot punch holes
        // gets no arena, rather than one that would rewrite pages a socket still sends.
        punch(&fd, 0, page)?;
        refuse_forced_huge_pages()?;
        let file = File::from(fd);
        let map = MmapOptions::new().len(len).map_raw(&file)?;
        // Base pages only: punching part of a huge page zeroes that part in place when the
        // page cannot be split, and a socket's reference keeps it from being split.
        map.advise(Advice::NoHugePage)?;
        Ok(Arc::new(BodyArena {
            file,
            map,
            page,
            ranges: Mutex::new(RangeAllocator::new(0..capacity)),
            held: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }))
    }

    /// Bytes of the ranges that live bodies hold (whole pages).
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The memory file, to `sendfile` from. Not public: a write through it would change the
    /// bytes of live bodies.
    pub(super) fn file(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Where `slice` lies in the memory file, if it lies wholly inside the mapping.
    pub fn locate(&self, slice: &[u8]) -> Option<u64> {
        let base = self.map.as_ptr() as usize;
        let offset = (slice.as_ptr() as usize).checked_sub(base)?;
        let end = offset.checked_add(slice.len())?;
        (end <= self.map.len()).then_some(offset as u64)
    }

    /// `body` as arena bytes when its size is over [`MIN_BODY`] and up to [`MAX_BODY`] and a
    /// range is free; else `body` itself (already in the arena, small, large, or no room). The
    /// copy is at most [`MAX_BODY`] bytes, like any other copy of a body on the event loop.
    pub fn adopt(self: &Arc<Self>, body: Bytes) -> Bytes {
        if !(MIN_BODY + 1..=MAX_BODY).contains(&body.len()) || self.locate(&body).is_some() {
            return body;
        }
        let size = (body.len() as u64).div_ceil(self.page) * self.page;
        let Ok(range) = self.ranges.lock().allocate_range(size) else {
            return body;
        };
        // SAFETY: `range` was just allocated, so no slot owns it and nothing reads it; it lies
        // inside the mapping (the allocator's space is the mapping's length), and `body` is
        // at most `size` bytes. The source is our own heap memory, distinct from the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                body.as_ptr(),
                self.map.as_mut_ptr().add(range.start as usize),
                body.len(),
            );
        }
        self.held.fetch_add(size, Ordering::Relaxed);
        Bytes::from_owner(Slot {
            arena: self.clone(),
            range,
            len: body.len(),
        })
    }
}

/// A live body's range: the owner behind its [`Bytes`].
struct Slot {
    arena: Arc<BodyArena>,
    range: Range<u64>,
    len: usize,
}

impl AsRef<[u8]> for Slot {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see the module docs: the range is inside the mapping, which lives as long as
        // `self.arena`; its first `len` bytes were written before the slot was made and are
        // not written again until the slot is dropped.
        unsafe {
            std::slice::from_raw_parts(
                self.arena.map.as_ptr().add(self.range.start as usize),
                self.len,
            )
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Range { start, end } = self.range;
        let arena = &self.arena;
        arena.held.fetch_sub(end - start, Ordering::Relaxed);
        // The pages go back to the system, and the range is freed only after that, so that no
        // new body is written into pages a socket may still be sending (module docs). If the
        // punch fails (it worked when the arena was made), the range is never reused.
        match punch(&arena.file, start, end - start) {
            Ok(()) => arena.ranges.lock().free_range(start..end),
            Err(e) => {
                arena.lost.fetch_add(end - start, Ordering::Relaxed);
                tracing::warn!(error = %e, bytes = end - start,
                    "sendfile: cannot punch a body's pages out of the memory file; its range is not reused");
            }
        }
    }
}

/// Removes `len` bytes at `offset` from the memory file (their pages go back to the system).
fn punch(file: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    rustix::fs::fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    )?;
    Ok(())
}

/// Shared memory forced to huge pages (`shmem_enabled` = `force`, a testing setting) would
/// ignore the mapping's `MADV_NOHUGEPAGE`.
fn refuse_forced_huge_pages() -> io::Result<()> {
    let setting = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
        .unwrap_or_default();
    if setting.contains("[force]") {
        return Err(io::Error::other(
            "shared memory is forced to huge pages (transparent_hugepage/shmem_enabled)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn a_body_over_16_kib_moves_into_the_arena_with_its_bytes() {
        let arena = BodyArena::new(1 << 20).unwrap();
        let original = body(90_000, 7);
        let adopted = arena.adopt(original.clone());
        assert_eq!(adopted, original);
        assert_eq!(arena.locate(&adopted), Some(0));
        assert_eq!(arena.held(), 90_000u64.div_ceil(arena.page) * arena.page);
        // A slice of it is still in the arena, at its offset.
        assert_eq!(arena.locate(&adopted.slice(5000..9000)), Some(5000));
        // Adopting it again keeps it where it is.
        let again = arena.adopt(adopted.clone());
        assert_eq!(again.as_ptr(), adopted.as_ptr());
        assert_eq!(arena.locate(&original), None);
    }

    #[test]
    fn small_and_large_bodies_stay_on_the_heap() {
        let arena = BodyArena::new(1 << 20).unwrap();
        for len in [MIN_BODY, MAX_BODY + 1] {
            let other = body(len, 1);
            let kept = arena.adopt(other.clone());
            assert_eq!(kept.as_ptr(), other.as_ptr());
        }
        assert_eq!(arena.held(), 0);
        for len in [MIN_BODY + 1, MAX_BODY] {
            let adopted = arena.adopt(body(len, 2));
            assert!(arena.locate(&adopted).is_some(), "{len}");
        }
    }

    #[test]
    fn a_dropped_body_frees_its_range_for_the_next_and_others_keep_their_bytes() {
        let arena = BodyArena::new(192 * 1024).unwrap();
        let a = arena.adopt(body(90_000, 1));
        let b = arena.adopt(body(90_000, 2));
        assert!(arena.locate(&a).is_some() && arena.locate(&b).is_some());
        // No room for a third: it stays on the heap, and is still right.
        let c = arena.adopt(body(90_000, 3));
        assert_eq!(arena.locate(&c), None);
        assert_eq!(c, body(90_000, 3));
        // The last clone of `a` gone, its range (punched) takes the next body.
        let a_clone = a.clone();
        drop(a);
        assert!(arena.held() > 180_000);
        let a_offset = arena.locate(&a_clone);
        drop(a_clone);
        assert!(arena.held() < 180_000);
        let d = arena.adopt(body(90_000, 4));
        assert_eq!(arena.locate(&d), a_offset, "the freed range is reused");
        assert_eq!(d, body(90_000, 4));
        assert_eq!(b, body(90_000, 2));
    }

    #[test]
    fn bytes_sent_from_a_range_survive_its_reuse() {
        // What the socket path relies on: pages given to a socket keep their bytes when their
        // range is freed and the next body is written to the same offset.
        use std::io::Read;
        let arena = BodyArena::new(1 << 20).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut reader = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (writer, _) = listener.accept().unwrap();
        let first = arena.adopt(body(40_000, 1));
        let offset = arena.locate(&first).unwrap();
        let mut from = offset;
        let sent = rustix::fs::sendfile(&writer, arena.file(), Some(&mut from), first.len());
        assert_eq!(
            sent.unwrap(),
            first.len(),
            "40 KB fit in the loopback buffers"
        );
        drop(first);
        let second = arena.adopt(body(40_000, 2));
        assert_eq!(arena.locate(&second), Some(offset));
        let mut got = vec![0u8; 40_000];
        reader.read_exact(&mut got).unwrap();
        assert!(got == body(40_000, 1), "bytes in flight changed");
    }

    #[test]
    fn punched_pages_read_back_as_zeros_through_the_file() {
        // The punch really returns the pages: reading the freed range from the file gives
        // zeros (a hole), not the old body.
        use std::os::unix::fs::FileExt;
        let arena = BodyArena::new(256 * 1024).unwrap();
        let a = arena.adopt(body(40_000, 9));
        let mut read = vec![0u8; 40_000];
        arena.file.read_exact_at(&mut read, 0).unwrap();
        assert_eq!(read, body(40_000, 9));
        drop(a);
        arena.file.read_exact_at(&mut read, 0).unwrap();
        assert!(read.iter().all(|&b| b == 0));
    }
}
