//! An I/O wrapper that puts the connection's two deadlines on its reads and writes:
//!
//! - **idle**: no progress in either direction for the idle timeout ends the connection. A
//!   keep-alive connection nobody uses, or a client that stops reading a large body, would
//!   otherwise hold a socket (and, for a stalled write, a body stream) forever. Progress on a
//!   read *or* a write resets the clock, so a long download to a client that reads steadily
//!   is never cut. The clock is checked when an operation waits on the client: hyper does not
//!   read while a request is answered (HTTP/1 connections allow half-close), so a response
//!   waiting on the store is bounded by the store timeouts, not by this one.
//! - **request head** (HTTP/1): once bytes of a request have arrived, the rest of its head
//!   must follow within the header-read timeout (slowloris), however steadily it trickles.
//!   The clock starts the first time the server waits for more of the head (a head that
//!   arrives in one read is never timed) and stops when the service receives the request.
//!   Only bytes read while no request is being answered count as a head: a keep-alive
//!   connection waiting for its next request is under the idle timeout alone, and neither a
//!   request being answered (a slow store, a long download) nor what arrives meanwhile (a
//!   pipelined request, a request body) starts the clock. The service reports each request
//!   and the end of its response through [`HeadSignal`] and the [`Answering`] guard carried
//!   by the response body ([`AnsweredBody`]). HTTP/2 connections (those that open with the
//!   connection preface) are left to HTTP/2's own limits: frames of every stream share the
//!   connection, so "a head in progress" means nothing there.
//!
//! **HTTP/2** differs in two ways:
//! - Idle means no use for the idle timeout: a new request, or request or response bytes
//!   moving (a read or write of [`USE_BYTES`] or more). A client's PINGs and window updates,
//!   and our answers to them, are traffic, but not use: counted, a client that PINGs (Firefox
//!   does, after 58 s without traffic) would keep an idle connection open for ever, and one
//!   that grants no window would hold its stream.
//! - It is not cut at its first deadline: the wrapper asks the server (through the
//!   [`HeadSignal`]) to send GOAWAY, which tells the client that no stream was dropped
//!   unanswered (RFC 9113 §6.8), and gives it [`GOAWAY_GRACE`] without use to end (a
//!   stream accepted meanwhile keeps the whole idle timeout); the next deadline cuts it. The
//!   first-request deadline does the same in `server::Connection::serve`.
//!
//! **The send queue** (both protocols): a write completes once its bytes are in the kernel's
//! buffers, so a client may still be receiving a response long after the last write. When
//! the idle deadline passes, the socket's unacknowledged bytes (`send_queue`) are looked at:
//! a queue that shrank since the last look by [`MIN_RECEIVE_RATE`] (or emptied) is the
//! client's progress, for another idle timeout. At the first look after progress of our own
//! there is nothing to compare with, so a queue that is not empty is looked at again
//! [`QUEUE_PROBE`] later: a client that stopped reading is cut that much after the idle
//! timeout, and an HTTP/2 one without GOAWAY, which would wait behind the bytes it does not
//! read. A queue that only grows (our answers to a client's PINGs) is no progress.
//!
//! This replaces hyper's own header-read timeout, which starts its clock as soon as a
//! keep-alive connection begins waiting (so it cut idle keep-alive connections at the header
//! timeout) and costs a boxed timer per request.
//!
//! Both deadlines are kept lazily on one timer: a completed read or write only sets a flag;
//! the clock is read when an operation next has to wait after progress, and the timer,
//! armed once, is moved only when it fires (early, or for a look at the send queue or a
//! GOAWAY) or a head has to finish sooner. A request
//! whose head arrives in one read adds no clock read and no timer update to that. HTTP/1
//! always waits for the next request's bytes after writing a response, so that wait dates
//! the progress; HTTP/2 may write a response (one answered from the store, after the
//! connection last waited to read) and wait for nothing after it, and the lazy date would
//! then be the timer's firing, up to one idle timeout late. So an HTTP/2 connection's
//! progress is dated when it happens.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::send_queue::SendQueue;

/// The HTTP/2 connection preface (RFC 9113 section 3.4), as hyper-util's protocol detection
/// reads it.
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `bytes` are the HTTP/2 connection preface, or as much of it as they hold.
pub fn may_be_h2_preface(bytes: &[u8]) -> bool {
    H2_PREFACE.starts_with(&bytes[..bytes.len().min(H2_PREFACE.len())])
}

/// What a connection's service tells its I/O wrapper: how many request heads it has
/// received, and how many of their responses are not finished (bodies included).
#[derive(Debug, Default)]
struct Exchange {
    heads: AtomicU64,
    answering: AtomicUsize,
    /// The deadline that ended the connection: 0 none, else [`Expired::code`]. Read by the
    /// server when the connection is over, since hyper closes an idle keep-alive connection
    /// whose read failed as if the client had closed it, without passing the error on.
    expired: AtomicU8,
    /// The connection opened with the HTTP/2 preface.
    h2: AtomicBool,
    /// A deadline passed on an HTTP/2 connection: the server is to end it with GOAWAY
    /// (RFC 9113 §6.8) rather than by closing the socket under the client.
    goaway: AtomicBool,
}

impl Exchange {
    /// A request head was received; its answer begins.
    fn begin(&self) {
        self.heads.fetch_add(1, Ordering::Relaxed);
        self.answering.fetch_add(1, Ordering::Relaxed);
    }

    /// An answer ended.
    fn end(&self) {
        self.answering.fetch_sub(1, Ordering::Relaxed);
    }

    /// HTTP/2: whether a request arrived since `seen` (brought up to date): use of the
    /// connection, however few its bytes.
    fn new_request(&self, seen: &mut u64) -> bool {
        let heads = self.heads.load(Ordering::Relaxed);
        let new = heads != *seen;
        *seen = heads;
        new
    }

    /// HTTP/2: the time without use after which the connection is ended: `idle`, or
    /// [`GOAWAY_GRACE`] once GOAWAY was sent and no request is being answered.
    fn idle_limit(&self, idle: Duration) -> Duration {
        if self.goaway.load(Ordering::Relaxed) && self.answering.load(Ordering::Relaxed) == 0 {
            idle.min(GOAWAY_GRACE)
        } else {
            idle
        }
    }
}

/// The service's side of the request-head deadline: call [`HeadSignal::head_complete`] for
/// every request, and keep the guard it returns with the response body.
#[derive(Clone, Debug, Default)]
pub struct HeadSignal(Arc<Exchange>);

impl HeadSignal {
    /// Called by the service for every request it receives (the head was complete); the
    /// request counts as being answered until the returned guard is dropped.
    pub fn head_complete(&self) -> Answering {
        self.0.begin();
        Answering(self.0.clone())
    }

    /// [`HeadSignal::head_complete`] for a caller that answers the request within its own
    /// scope (our HTTP/1 layer): the guard borrows the signal instead of holding a reference
    /// count of it, which saves two atomic operations per request.
    pub fn head_complete_here(&self) -> AnsweringHere<'_> {
        self.0.begin();
        AnsweringHere(&self.0)
    }

    /// Whether the connection has produced a request yet.
    pub fn served(&self) -> bool {
        self.0.heads.load(Ordering::Relaxed) > 0
    }

    /// The deadline that expired on this connection, if one did.
    pub fn expired(&self) -> Option<Expired> {
        Expired::from_code(self.0.expired.load(Ordering::Relaxed))
    }

    /// Records the deadline that ends the connection.
    fn expire(&self, expired: Expired) {
        self.0.expired.store(expired.code(), Ordering::Relaxed);
    }

    /// Whether the connection speaks HTTP/2 (its preface has arrived).
    pub fn is_h2(&self) -> bool {
        self.0.h2.load(Ordering::Relaxed)
    }

    /// Whether a deadline asks for this HTTP/2 connection to be ended with GOAWAY.
    pub fn goaway_requested(&self) -> bool {
        self.0.goaway.load(Ordering::Relaxed)
    }

    /// Asks for this HTTP/2 connection to be ended with GOAWAY (a deadline passed); `false`
    /// when that was asked already.
    pub fn request_goaway(&self, expired: Expired) -> bool {
        if self.0.goaway.swap(true, Ordering::Relaxed) {
            return false;
        }
        self.expire(expired);
        true
    }
}

/// How long an HTTP/2 connection that was sent GOAWAY for a deadline may go without use
/// while it ends (its client acknowledges the PING that goes with it) before it is closed
/// regardless; a request still being answered keeps the whole idle timeout.
pub const GOAWAY_GRACE: Duration = Duration::from_secs(2);

/// Held while a request is being answered; attach it to the response body
/// ([`AnsweredBody`]), so that a long download is not mistaken for a slow head.
#[derive(Debug)]
pub struct Answering(Arc<Exchange>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// [`Answering`], borrowed: see [`HeadSignal::head_complete_here`].
#[derive(Debug)]
pub struct AnsweringHere<'a>(&'a Exchange);

impl Drop for AnsweringHere<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

pin_project! {
    /// A response body that ends the request's [`Answering`] when hyper drops it (sent, or
    /// the connection gone).
    pub struct AnsweredBody<B> {
        #[pin]
        inner: B,
        answering: Answering,
    }
}

impl<B> AnsweredBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, answering: Answering) -> Self {
        AnsweredBody { inner, answering }
    }
}

impl<B: http_body::Body> http_body::Body for AnsweredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The head deadline of a connection: the service's signal, through which the clock sees
/// heads completed and where the deadline that ends the connection is recorded (on either
/// protocol), and the clock, gone once the connection turns out to be HTTP/2.
#[derive(Debug)]
struct Head {
    signal: HeadSignal,
    clock: Option<HeadClock>,
}

/// The request-head clock of an HTTP/1 connection.
#[derive(Debug)]
struct HeadClock {
    limit: Duration,
    /// The service's head count as last seen: a change means a head was completed since.
    seen: u64,
    /// Bytes were read, while no request was being answered, since the last complete head.
    begun: bool,
    /// When the head being read must be complete: set at the first wait for more of it.
    due: Option<Instant>,
    /// How many leading bytes matched the HTTP/2 preface; `None` once they did not (HTTP/1).
    preface: Option<usize>,
}

impl HeadClock {
    /// Forgets the head being timed once the service has received it.
    fn sync(&mut self, signal: &Exchange) {
        let heads = signal.heads.load(Ordering::Relaxed);
        if heads != self.seen {
            self.seen = heads;
            self.begun = false;
            self.due = None;
        }
    }

    /// After a read that returned `bytes`. `false` when they complete the HTTP/2 preface:
    /// the clock does not apply to this connection.
    fn read(&mut self, signal: &Exchange, bytes: &[u8]) -> bool {
        if let Some(matched) = self.preface {
            let want = &H2_PREFACE[matched..];
            let n = want.len().min(bytes.len());
            if bytes[..n] != want[..n] {
                self.preface = None;
            } else if matched + n == H2_PREFACE.len() {
                return false;
            } else {
                self.preface = Some(matched + n);
            }
        }
        self.sync(signal);
        // Bytes that arrive while a request is being answered (a pipelined request, a
        // request body) do not start the clock.
        if signal.answering.load(Ordering::Relaxed) == 0 {
            self.begun = true;
        }
        true
    }

    /// When a read waits: the instant the head being read must be complete by, if one is
    /// being read.
    fn due(&mut self, signal: &Exchange) -> Option<Instant> {
        self.sync(signal);
        if !self.begun {
            return None;
        }
        let limit = self.limit;
        Some(*self.due.get_or_insert_with(|| Instant::now() + limit))
    }
}

pin_project! {
    /// See the module docs.
    pub struct Deadlines<T> {
        #[pin]
        inner: T,
        timer: Pin<Box<Sleep>>,
        idle: Duration,
        last_progress: Instant,
        progressed: bool,
        // HTTP/2: progress is dated when it happens, not at the next wait, and is only the
        // I/O of requests (see the module docs).
        eager: bool,
        // HTTP/2: the service's head count as last seen (a change is a new request).
        heads_seen: u64,
        // HTTP/2: a GOAWAY was asked for and its grace dated from then (the first-request
        // deadline asks from outside, see `server::Connection::serve`).
        goaway_dated: bool,
        // The send queue as the idle deadline saw it since our last progress.
        queue: QueueWatch,
        head: Option<Head>,
    }
}

impl<T> Deadlines<T> {
    /// Wraps `inner`; it errors with `TimedOut` after `idle` without progress.
    pub fn new(inner: T, idle: Duration) -> Self {
        let now = Instant::now();
        Deadlines {
            inner,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            idle,
            last_progress: now,
            progressed: false,
            eager: false,
            heads_seen: 0,
            goaway_dated: false,
            queue: QueueWatch::default(),
            head: None,
        }
    }

    /// Adds the request-head deadline: `limit` from the first byte of a head to the service
    /// receiving it ([`HeadSignal::head_complete`]).
    pub fn with_head_timeout(mut self, limit: Duration, signal: HeadSignal) -> Self {
        self.head = Some(Head {
            signal,
            clock: Some(HeadClock {
                limit,
                seen: 0,
                begun: false,
                due: None,
                preface: Some(0),
            }),
        });
        self
    }

    /// The wrapped stream, deadlines dropped.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: SendQueue> Deadlines<T> {
    /// After a read or write of `moved` bytes on HTTP/2: use when it is [`USE_BYTES`] or more,
    /// or a request arrived (see there).
    fn moved(self: Pin<&mut Self>, moved: usize) {
        let this = self.project();
        if !*this.eager {
            return;
        }
        // Brought up to date whatever the bytes, so that a request is counted once.
        let new_request = this
            .head
            .as_ref()
            .is_some_and(|head| head.signal.0.new_request(this.heads_seen));
        if new_request || moved >= USE_BYTES {
            progress(this.last_progress, this.queue, Instant::now());
        }
    }

    /// Runs one I/O operation on the inner stream: a completed one counts as progress; a
    /// pending one fails once the idle deadline has passed, or, for a read, the head's.
    fn track<R>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        reading: bool,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let mut this = self.project();
        match op(this.inner.as_mut(), cx) {
            Poll::Ready(r) => {
                // HTTP/2's use is dated by `moved`, which knows the bytes.
                if !*this.eager {
                    *this.progressed = true;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if std::mem::take(this.progressed) {
                    progress(this.last_progress, this.queue, Instant::now());
                }
                let head_due = match this.head.as_mut() {
                    Some(Head {
                        signal,
                        clock: Some(clock),
                    }) if reading => clock.due(&signal.0),
                    _ => None,
                };
                let signal = this.head.as_ref().map(|head| &head.signal);
                if *this.eager
                    && !*this.goaway_dated
                    && signal.is_some_and(HeadSignal::goaway_requested)
                {
                    // Asked for from outside: the grace runs from now, not from the last use.
                    *this.goaway_dated = true;
                    progress(this.last_progress, this.queue, Instant::now());
                }
                let idle = match signal {
                    Some(signal) if *this.eager => signal.0.idle_limit(*this.idle),
                    _ => *this.idle,
                };
                let idle_due = this.queue.due.unwrap_or(*this.last_progress + idle);
                let expired = match check(this.timer.as_mut(), idle_due, head_due, cx) {
                    Poll::Ready(expired) => expired,
                    Poll::Pending => return Poll::Pending,
                };
                // Idle on our side, but the client may still be receiving what the kernel
                // holds for it (`send_queue`, `QueueWatch`).
                let mut stalled = false;
                if expired == Expired::Idle {
                    let queued = this.inner.as_ref().get_ref().unacknowledged();
                    match this.queue.look(queued, Instant::now(), idle) {
                        Look::Again(due) => return wait_until(this.timer.as_mut(), due, cx),
                        Look::Stalled => stalled = true,
                        Look::Empty => {}
                    }
                }
                // HTTP/2, the first time, unless bytes wait for a client that does not read
                // them (a GOAWAY would wait behind them): the server sends GOAWAY (it is woken
                // to see the request), and the connection has `GOAWAY_GRACE` more to end by
                // itself.
                if *this.eager
                    && !stalled
                    && let Some(signal) = signal
                    && signal.request_goaway(expired)
                {
                    let now = Instant::now();
                    *this.goaway_dated = true;
                    progress(this.last_progress, this.queue, now);
                    let due = now + signal.0.idle_limit(*this.idle);
                    return wait_until(this.timer.as_mut(), due, cx);
                }
                if let Some(head) = this.head.as_ref() {
                    head.signal.expire(expired);
                }
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, expired)))
            }
        }
    }
}

/// HTTP/2: a read or write of at least this many bytes is use of the connection: request or
/// response bytes. Control frames are smaller (a PING or its answer is 17 bytes, a window
/// update 13), so a client's PINGs do not keep a connection open, neither an idle one nor
/// one whose stream waits for a window the client never grants. Whether a request is being
/// answered does not tell: hyper is done with a response body once it has handed the last
/// bytes to the `h2` crate, which sends them as the client's window and the socket allow,
/// maybe long after.
pub const USE_BYTES: usize = 1024;

/// How long after the idle deadline a send queue that was not empty is looked at again,
/// when there was no earlier look to compare it with.
pub const QUEUE_PROBE: Duration = Duration::from_secs(1);

/// The least a client must take from the send queue between two looks, in bytes per second
/// of the time between them (or all that was queued), for it to count as receiving: a client
/// that takes a byte now and then does not hold a connection (Kestrel's minimum response data
/// rate is 240 bytes/s).
pub const MIN_RECEIVE_RATE: u64 = 1024;

/// The send-queue side of the idle deadline (see the module docs).
#[derive(Debug, Default)]
struct QueueWatch {
    /// The queue at the last look since our last progress, and when it was taken.
    seen: Option<(usize, Instant)>,
    /// When the queue is to be looked at again: the idle deadline until then.
    due: Option<Instant>,
}

/// What a look at the send queue found.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    /// The client is receiving, or may be: look again at this instant.
    Again(Instant),
    /// Bytes are queued and the client is not taking them.
    Stalled,
    /// Nothing is queued.
    Empty,
}

impl QueueWatch {
    /// Forgets the looks: the connection made progress of its own.
    fn forget(&mut self) {
        *self = QueueWatch::default();
    }

    /// At an idle deadline, `now`, with `queued` bytes in the send queue: a queue that shrank
    /// by enough since the last look is progress, for another `idle`; at the first look, a
    /// queue that is not empty is looked at again [`QUEUE_PROBE`] later.
    fn look(&mut self, queued: usize, now: Instant, idle: Duration) -> Look {
        let again = match self.seen.replace((queued, now)) {
            Some((before, at)) if received_enough(before, queued, now - at) => Some(idle),
            None if queued > 0 => Some(QUEUE_PROBE.min(idle)),
            _ => None,
        };
        self.due = again.map(|after| now + after);
        match self.due {
            Some(due) => Look::Again(due),
            None if queued > 0 => Look::Stalled,
            None => Look::Empty,
        }
    }
}

/// Whether a queue of `before` bytes that is `after` bytes a while `over` later was taken
/// from at [`MIN_RECEIVE_RATE`], or emptied.
fn received_enough(before: usize, after: usize, over: Duration) -> bool {
    let least = (MIN_RECEIVE_RATE as f64 * over.as_secs_f64()) as usize;
    after < before && before - after >= least.min(before)
}

/// Dates the connection's progress `now`: the idle clock restarts from it, and earlier looks
/// at the send queue no longer count.
fn progress(last_progress: &mut Instant, queue: &mut QueueWatch, now: Instant) {
    *last_progress = now;
    queue.forget();
}

/// Moves `timer` to `due` (in the future) and waits for it.
fn wait_until<R>(mut timer: Pin<&mut Sleep>, due: Instant, cx: &mut Context<'_>) -> Poll<R> {
    timer.as_mut().reset(due);
    if timer.poll(cx).is_ready() {
        cx.waker().wake_by_ref();
    }
    Poll::Pending
}

/// Called when an operation is pending: fails once `idle_due` or `head_due` has passed. The
/// timer's deadline is never later than the earlier of the two: it was set from an older
/// `last_progress`, and is brought forward when a head is due sooner. When it fires early, it
/// moves to the real deadline.
fn check(
    mut timer: Pin<&mut Sleep>,
    idle_due: Instant,
    head_due: Option<Instant>,
    cx: &mut Context<'_>,
) -> Poll<Expired> {
    let due = head_due.map_or(idle_due, |head| head.min(idle_due));
    if due < timer.deadline() {
        timer.as_mut().reset(due);
    }
    loop {
        match timer.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(()) => {
                let now = Instant::now();
                if head_due.is_some_and(|head| now >= head) {
                    return Poll::Ready(Expired::Head);
                }
                if now >= idle_due {
                    return Poll::Ready(Expired::Idle);
                }
                timer.as_mut().reset(due);
            }
        }
    }
}

impl<T: AsyncRead + SendQueue> AsyncRead for Deadlines<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = self
            .as_mut()
            .track(cx, true, |inner, cx| inner.poll_read(cx, buf));
        if let Poll::Ready(Ok(())) = r {
            let this = self.as_mut().project();
            let read = &buf.filled()[before..];
            if !read.is_empty()
                && let Some(Head { signal, clock }) = this.head
                && let Some(timing) = clock
                && !timing.read(&signal.0, read)
            {
                // The HTTP/2 preface: no head clock, and progress dated as it happens.
                *clock = None;
                *this.eager = true;
                signal.0.h2.store(true, Ordering::Relaxed);
            }
            let n = buf.filled().len() - before;
            self.moved(n);
        }
        r
    }
}

impl<T: AsyncWrite + SendQueue> AsyncWrite for Deadlines<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = self
            .as_mut()
            .track(cx, false, |inner, cx| inner.poll_write(cx, buf));
        if let Poll::Ready(Ok(n)) = r {
            self.moved(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = self
            .as_mut()
            .track(cx, false, |inner, cx| inner.poll_write_vectored(cx, bufs));
        if let Poll::Ready(Ok(n)) = r {
            self.moved(n);
        }
        r
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

/// Which deadline ended a connection: the inner error of the `TimedOut` errors that the
/// wrapper's reads and writes return, so that the server can count the two apart
/// ([`crate::metrics::ConnectionEnd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The request head was not complete within the header-read timeout.
    Head,
    /// No traffic for the idle timeout.
    Idle,
}

impl Expired {
    const fn code(self) -> u8 {
        match self {
            Expired::Head => 1,
            Expired::Idle => 2,
        }
    }

    const fn from_code(code: u8) -> Option<Expired> {
        match code {
            1 => Some(Expired::Head),
            2 => Some(Expired::Idle),
            _ => None,
        }
    }
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Expired::Head => "request head not complete within the header-read timeout",
            Expired::Idle => "connection idle timeout",
        })
    }
}

impl std::error::Error for Expired {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_after_the_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let mut io = Deadlines::new(server, TIMEOUT);
        let started = Instant::now();
        let err = io.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUT);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_moves_the_deadline_and_the_last_byte_starts_the_clock() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = Deadlines::new(server, TIMEOUT);
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

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_idle_after_a_late_write_is_asked_to_go_away_then_cut() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (io, signal) = after_preface(&mut client, server).await;
        let (mut read, mut write) = tokio::io::split(io);
        let started = Instant::now();
        // The connection waits to read; a request's response is written 5 s later (a store
        // load) and nothing waits after it.
        let reader = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            read.read(&mut byte).await
        });
        let answering = signal.head_complete();
        tokio::time::sleep(Duration::from_secs(5)).await;
        write.write_all(b"response").await.unwrap();
        drop(answering);
        assert!(signal.is_h2());
        // Idle from the write (15 s), not from when the timer first fired (10 s, then 10
        // more): then GOAWAY is asked for, and the close follows `GOAWAY_GRACE` later.
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!signal.goaway_requested(), "at 14 s");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(signal.goaway_requested(), "at 16 s");
        assert_eq!(signal.expired(), Some(Expired::Idle));
        let err = reader.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(5) + TIMEOUT + GOAWAY_GRACE
        );
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_traffic_without_requests_does_not_keep_a_connection_open() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, signal) = after_preface(&mut client, server).await;
        let started = Instant::now();
        // A PING answered every 3 s: traffic, but no request.
        let pinger = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if client.write_all(b"ping").await.is_err() {
                    return;
                }
            }
        });
        let err = read_until_error_any(&mut io).await;
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(signal.goaway_requested());
        assert_eq!(signal.expired(), Some(Expired::Idle));
        // GOAWAY at 10 s, cut 2 s later: the pings count for neither.
        assert_eq!(started.elapsed(), TIMEOUT + GOAWAY_GRACE);
        pinger.abort();
    }

    /// Reads until the wrapper fails.
    async fn read_until_error_any<T: AsyncRead + Unpin>(io: &mut T) -> io::Error {
        let mut buf = [0u8; 64];
        loop {
            if let Err(e) = io.read(&mut buf).await {
                return e;
            }
        }
    }

    /// Sets the send queue to each of `sizes` in turn, one every `every`: a client taking (or
    /// not taking) what the kernel holds for it.
    fn queue_every(
        queued: &Arc<AtomicUsize>,
        every: Duration,
        sizes: impl Iterator<Item = usize> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let queued = queued.clone();
        tokio::spawn(async move {
            for size in sizes {
                tokio::time::sleep(every).await;
                queued.store(size, Ordering::Relaxed);
            }
        })
    }

    const HALF_SECOND: Duration = Duration::from_millis(500);

    #[tokio::test(start_paused = true)]
    async fn a_client_still_receiving_what_the_kernel_holds_is_not_idle() {
        use crate::server::send_queue::testing::pair;
        let (_client, server, queued) = pair();
        let mut io = Deadlines::new(server, TIMEOUT);
        // Our last write left 8 MB queued; the client takes 250 KB of them every 0.5 s.
        queued.store(8_000_000, Ordering::Relaxed);
        let started = Instant::now();
        let feeder = queue_every(
            &queued,
            HALF_SECOND,
            (0..32).rev().map(|left| left * 250_000),
        );
        let mut buf = [0u8; 16];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // The deadline at 10 s saw a queue, looked again 1 s later and saw it move; the look
        // at 21 s saw it moved (it emptied at 16 s), and the one at 31 s saw it still empty.
        assert_eq!(started.elapsed(), Duration::from_secs(31));
        feeder.await.unwrap();

        // A client that reads nothing: the queue does not move between the two looks.
        let (_client, server, queued) = pair();
        let mut io = Deadlines::new(server, TIMEOUT);
        queued.store(8_000, Ordering::Relaxed);
        let started = Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUT + QUEUE_PROBE);

        // A client that takes a byte every half second: under `MIN_RECEIVE_RATE`.
        let (_client, server, queued) = pair();
        let mut io = Deadlines::new(server, TIMEOUT);
        queued.store(8_000, Ordering::Relaxed);
        let started = Instant::now();
        let feeder = queue_every(&queued, HALF_SECOND, (0..8_000).rev());
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), TIMEOUT + QUEUE_PROBE);
        feeder.abort();

        // Nothing queued: cut at the idle timeout, as ever.
        let (_client, server, _queued) = pair();
        let mut io = Deadlines::new(server, TIMEOUT);
        let started = Instant::now();
        io.read(&mut buf).await.unwrap_err();
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    /// `server` under both deadlines, with the HTTP/2 preface sent by `client` read.
    async fn after_preface<T>(
        client: &mut tokio::io::DuplexStream,
        server: T,
    ) -> (Deadlines<T>, HeadSignal)
    where
        T: AsyncRead + AsyncWrite + SendQueue + Unpin,
    {
        let signal = HeadSignal::default();
        let mut io = Deadlines::new(server, TIMEOUT).with_head_timeout(HEAD, signal.clone());
        client.write_all(H2_PREFACE).await.unwrap();
        let mut preface = [0u8; 24];
        io.read_exact(&mut preface).await.unwrap();
        (io, signal)
    }

    /// An HTTP/2 connection over a stream with a send queue the test sets: the preface read,
    /// one request answered.
    async fn http2_answered() -> (
        tokio::io::DuplexStream,
        Deadlines<crate::server::send_queue::testing::Queued>,
        HeadSignal,
        std::sync::Arc<AtomicUsize>,
    ) {
        let (mut client, server, queued) = crate::server::send_queue::testing::pair();
        let (io, signal) = after_preface(&mut client, server).await;
        drop(signal.head_complete());
        (client, io, signal, queued)
    }

    #[tokio::test(start_paused = true)]
    async fn http2_response_bytes_written_after_the_body_ended_are_use_and_pong_sized_writes_are_not()
     {
        let (mut client, io, signal, _queued) = http2_answered().await;
        let (mut read, mut write) = tokio::io::split(io);
        let drain = tokio::spawn(async move {
            let mut sink = vec![0u8; 4096];
            while client.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        let reader = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            read.read(&mut byte).await
        });
        let started = Instant::now();
        // The tail of a response, 2 KiB every 4 s for 20 s, then PING answers only.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            write.write_all(&[0u8; 2048]).await.unwrap();
        }
        let tail_end = started.elapsed();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if write.write_all(&[0u8; 17]).await.is_err() {
                break;
            }
        }
        let err = reader.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(signal.goaway_requested());
        // Idle from the last tail write: GOAWAY at 30 s, cut 2 s later.
        assert_eq!(tail_end, Duration::from_secs(20));
        assert_eq!(started.elapsed(), tail_end + TIMEOUT + GOAWAY_GRACE);
        drain.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn http2_a_goaway_asked_for_by_the_first_request_deadline_gets_its_grace_from_then() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, signal) = after_preface(&mut client, server).await;
        let started = Instant::now();
        // No request; the server's first-request deadline (3 s here) asks for GOAWAY, later
        // than `GOAWAY_GRACE` after the connection's last use, and polls the connection.
        let mut buf = [0u8; 16];
        assert!(tokio::time::timeout(HEAD, io.read(&mut buf)).await.is_err());
        assert!(signal.request_goaway(Expired::Head));
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), HEAD + GOAWAY_GRACE);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_a_stream_waiting_for_a_window_is_not_kept_open_by_pings() {
        let (mut client, io, signal, _queued) = http2_answered().await;
        // A request being answered, whose stream waits for a window the client never grants;
        // the client PINGs every 2 s and the server answers.
        let answering = signal.head_complete();
        let (mut read, mut write) = tokio::io::split(io);
        let server = tokio::spawn(async move {
            let mut ping = [0u8; 17];
            loop {
                read.read_exact(&mut ping).await?;
                write.write_all(&ping).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        });
        let started = Instant::now();
        let pinger = tokio::spawn(async move {
            let mut pong = [0u8; 17];
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if client.write_all(&[6u8; 17]).await.is_err()
                    || client.read_exact(&mut pong).await.is_err()
                {
                    return;
                }
            }
        });
        let err = server.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(signal.goaway_requested());
        // The request is counted at the first I/O after it (the first PING, at 2 s); GOAWAY
        // an idle timeout later, and a request still answered keeps a whole one more.
        assert_eq!(started.elapsed(), Duration::from_secs(2) + 2 * TIMEOUT);
        drop(answering);
        pinger.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn http2_goaway_after_the_client_received_the_last_bytes_keeps_its_grace() {
        let (_client, mut io, signal, queued) = http2_answered().await;
        let started = Instant::now();
        // The answer's last 8,000 bytes are still queued at the idle deadline (10 s), and
        // gone at the second look (11 s): not idle until 21 s, then GOAWAY and its grace.
        queued.store(8_000, Ordering::Relaxed);
        queue_every(&queued, Duration::from_millis(10_500), std::iter::once(0));
        let mut buf = [0u8; 16];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(signal.goaway_requested());
        assert_eq!(started.elapsed(), Duration::from_secs(21) + GOAWAY_GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_a_queue_that_only_grows_is_a_client_not_reading_and_gets_no_goaway() {
        let (_client, mut io, signal, queued) = http2_answered().await;
        let started = Instant::now();
        // The client reads nothing; our answers to its PINGs add to the queue.
        queued.store(8_000, Ordering::Relaxed);
        let growing = (8_017..).step_by(17);
        let feeder = queue_every(&queued, Duration::from_millis(300), growing);
        let mut buf = [0u8; 16];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            !signal.goaway_requested(),
            "a GOAWAY would queue behind unread bytes"
        );
        assert_eq!(started.elapsed(), TIMEOUT + QUEUE_PROBE);
        feeder.abort();
    }

    const HEAD: Duration = Duration::from_secs(3);

    fn with_head(
        server: tokio::io::DuplexStream,
    ) -> (Deadlines<tokio::io::DuplexStream>, HeadSignal) {
        let signal = HeadSignal::default();
        let io = Deadlines::new(server, TIMEOUT).with_head_timeout(HEAD, signal.clone());
        (io, signal)
    }

    /// Writes `bytes` one at a time, `every` apart, then keeps the stream open.
    fn trickle(
        mut client: tokio::io::DuplexStream,
        bytes: &'static [u8],
        every: Duration,
    ) -> tokio::task::JoinHandle<tokio::io::DuplexStream> {
        tokio::spawn(async move {
            for b in bytes {
                client.write_u8(*b).await.unwrap();
                tokio::time::sleep(every).await;
            }
            client
        })
    }

    /// Reads until the wrapper fails; every read before must have brought bytes.
    async fn read_until_error(io: &mut Deadlines<tokio::io::DuplexStream>) -> io::Error {
        let mut buf = [0u8; 64];
        loop {
            match io.read(&mut buf).await {
                Ok(n) => assert!(n > 0),
                Err(e) => return e,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_head_is_cut_at_the_head_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let (mut io, _signal) = with_head(server);
        // A byte a second: never idle for the 10 s idle timeout, but the head takes too long.
        let _client = trickle(
            client,
            b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa",
            Duration::from_secs(1),
        );
        let started = Instant::now();
        let err = read_until_error(&mut io).await;
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("header-read"), "{err}");
        // The clock started at the first wait after the first byte.
        assert_eq!(started.elapsed(), HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn only_heads_are_timed_not_answers_nor_keep_alive_waits() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, signal) = with_head(server);
        let mut buf = [0u8; 1024];
        for round in 0..3 {
            // A head in two parts, 2 s apart (within the 3 s head timeout).
            client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            assert!(io.read(&mut buf).await.unwrap() > 0);
            let rest = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                client.write_all(b"Host: x\r\n\r\n").await.unwrap();
                client
            });
            assert!(io.read(&mut buf).await.unwrap() > 0, "round {round}");
            client = rest.await.unwrap();
            // The service has it. Answering takes 5 s (a slow store), during which the client
            // pipelines the start of its next request: not a head being read yet.
            let answering = signal.head_complete();
            client.write_all(b"GET /next HTTP/1.1\r\n").await.unwrap();
            assert!(io.read(&mut buf).await.unwrap() > 0);
            let waited = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf)).await;
            assert!(waited.is_err(), "round {round}: the read ended: {waited:?}");
            io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            assert!(client.read(&mut buf).await.unwrap() > 0);
            // The pipelined head completes, is answered at once, and the connection then waits
            // 8 s for its next request: longer than the head timeout, shorter than the idle
            // timeout.
            drop(answering);
            client.write_all(b"Host: x\r\n\r\n").await.unwrap();
            assert!(io.read(&mut buf).await.unwrap() > 0);
            drop(signal.head_complete());
            io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            assert!(client.read(&mut buf).await.unwrap() > 0);
            let waited = tokio::time::timeout(Duration::from_secs(8), io.read(&mut buf)).await;
            assert!(
                waited.is_err(),
                "round {round}: keep-alive wait ended: {waited:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_head_timeout_restarts_for_the_next_request() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, signal) = with_head(server);
        let mut buf = [0u8; 1024];
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        drop(signal.head_complete());
        io.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        // The second request's head trickles: cut 3 s after the server first waits for more.
        let _client = trickle(
            client,
            b"GET /two HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaa",
            Duration::from_millis(500),
        );
        let started = Instant::now();
        let err = read_until_error(&mut io).await;
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_have_no_head_clock() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, signal) = with_head(server);
        let mut buf = [0u8; 1024];
        // The preface in two reads, then, while a request is answered, frames a byte every
        // 2 s: only the idle timeout applies, and it never fires.
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 5);
        client.write_all(&H2_PREFACE[5..]).await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), H2_PREFACE.len() - 5);
        let answering = signal.head_complete();
        let _client = trickle(client, &[0; 10], Duration::from_secs(2));
        let started = Instant::now();
        for _ in 0..10 {
            assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        }
        assert_eq!(started.elapsed(), Duration::from_secs(18));
        drop(answering);
        let err = io.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("idle"), "{err}");
        assert!(signal.goaway_requested());
    }
}
