//! What answering one request takes: the request (its field map's memory), the list of the
//! head's fields and the buffer the response head is rendered into, and, lent separately for
//! each read, the read buffer. Each event loop keeps a few of these; a connection takes one
//! when a request has arrived (a read buffer when it reads) and gives it back once the answer
//! is written (a read buffer also when a read finds nothing). Between requests a connection holds none of it,
//! and whichever connection a loop answers next works in memory the loop has just used, still
//! in its caches, however many connections wait their turn (at 1,000 connections a
//! connection's own memory was cold by the time its next request came: benches/README.md).

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use http::Request;
use http_body_util::Empty;

use super::head::{self, FieldIndex};

/// The most kept per event loop: as many as its requests that wait at once (on the store, or
/// on a slow client), which are few; more are dropped when given back.
const KEEP: usize = 16;

/// A rendering buffer grown past this (a huge response head) is not kept.
const KEEP_OUT_MAX: usize = 16 * 1024;

thread_local! {
    /// This thread's (event loop's) spare scratch.
    /// Boxed, so that taking and giving back move a pointer, not the whole struct (the
    /// request alone is a few hundred bytes).
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<Scratch>>> = const { RefCell::new(Vec::new()) };

    /// This thread's spare read buffers (see [`take_read_buf`]).
    static SPARE_READ: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer for a connection that has none: one of this loop's spare, or a new one of
/// `size` bytes. A connection waiting for its next request holds no read buffer; it borrows
/// one for each read and gives it back when the read finds nothing (or once its request is
/// answered), so the loop's reads land in a few buffers still in its caches, as its scratch
/// does (nginx likewise frees a connection's header buffer between requests).
pub fn take_read_buf(size: usize) -> BytesMut {
    SPARE_READ
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| BytesMut::with_capacity(size))
}

/// Gives back an empty read buffer. Its memory is taken back from its start, which needs the
/// request's references to it gone (they are once its scratch was given back); one that cannot
/// be, or that grew for a large head past `size`, is dropped instead of kept.
pub fn give_back_read_buf(mut buf: BytesMut, size: usize) {
    debug_assert!(buf.is_empty(), "only an empty read buffer is given back");
    if !buf.is_empty() || !buf.try_reclaim(size) || buf.capacity() > 2 * size {
        return;
    }
    SPARE_READ.with_borrow_mut(|spare| {
        if spare.len() < KEEP {
            spare.push(buf);
        }
    });
}

/// See the module docs.
pub struct Scratch {
    /// The request, emptied between uses.
    pub req: Request<Empty<Bytes>>,
    /// The head's fields, as [`head::parse`] records them.
    pub fields: Vec<FieldIndex>,
    /// The response head, rendered.
    pub out: Vec<u8>,
}

impl Scratch {
    /// One of this loop's spare, or a new one, lent until the [`Lent`] is dropped.
    pub fn take() -> Lent {
        let scratch = SPARE.with_borrow_mut(Vec::pop).unwrap_or_else(|| {
            Box::new(Scratch {
                req: Request::new(Empty::new()),
                fields: Vec::new(),
                out: Vec::with_capacity(1024),
            })
        });
        Lent(Some(scratch))
    }
}

/// How many scratches this loop keeps now.
#[cfg(test)]
pub fn spare() -> usize {
    SPARE.with_borrow(Vec::len)
}

/// A [`Scratch`] lent to one request. Dropping it empties the scratch (dropping the request's
/// references to the read buffer) and keeps it for the loop's next request, on every way out
/// of the request: answered, handed off, or cancelled with its connection.
pub struct Lent(Option<Box<Scratch>>);

impl std::ops::Deref for Lent {
    type Target = Scratch;

    fn deref(&self) -> &Scratch {
        self.0
            .as_deref()
            .expect("a lent scratch is there until dropped")
    }
}

impl std::ops::DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut Scratch {
        self.0
            .as_deref_mut()
            .expect("a lent scratch is there until dropped")
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(mut scratch) = self.0.take() else {
            return;
        };
        head::clear(&mut scratch.req);
        scratch.fields.clear();
        scratch.out.clear();
        if scratch.out.capacity() > KEEP_OUT_MAX {
            return;
        }
        // `try_with`: a connection dropped while its thread ends finds no spare list.
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < KEEP {
                spare.push(scratch);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_back_scratch_is_taken_again_empty() {
        let mut s = Scratch::take();
        s.out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        s.req
            .headers_mut()
            .insert("x-a", http::HeaderValue::from_static("1"));
        let out_ptr = s.out.as_ptr();
        drop(s);
        let again = Scratch::take();
        assert_eq!(again.out.as_ptr(), out_ptr, "the same memory");
        assert!(again.out.is_empty() && again.fields.is_empty());
        assert!(again.req.headers().is_empty());
    }

    #[test]
    fn a_read_buffer_given_back_is_lent_again_from_its_start() {
        let mut buf = take_read_buf(4096);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = buf.split_to(buf.len()).freeze();
        // Still referenced by the request's bytes: not kept (reusing it would overwrite them).
        give_back_read_buf(std::mem::take(&mut buf), 4096);
        assert_eq!(SPARE_READ.with_borrow(Vec::len), 0);
        assert_eq!(&head[..], b"GET / HTTP/1.1\r\n\r\n");
        drop(head);

        let mut buf = take_read_buf(4096);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let start = buf.as_ptr();
        drop(buf.split_to(buf.len()).freeze());
        give_back_read_buf(buf, 4096);
        let again = take_read_buf(4096);
        assert_eq!(again.as_ptr(), start, "the same memory, from its start");
        assert!(again.is_empty() && again.capacity() >= 4096);

        // Grown for a large head: dropped.
        let mut big = again;
        big.reserve(64 * 1024);
        give_back_read_buf(big, 4096);
        assert_eq!(SPARE_READ.with_borrow(Vec::len), 0);
    }

    #[test]
    fn a_grown_buffer_and_more_than_the_spare_count_are_dropped() {
        let many: Vec<Lent> = (0..KEEP + 4).map(|_| Scratch::take()).collect();
        drop(many);
        assert_eq!(SPARE.with_borrow(Vec::len), KEEP);
        let mut big = Scratch::take();
        big.out.reserve(KEEP_OUT_MAX * 2);
        drop(big);
        assert_eq!(SPARE.with_borrow(Vec::len), KEEP - 1);
    }
}
