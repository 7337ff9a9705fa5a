//! Our own HTTP/1.1 layer, for the requests an origin mostly gets: plain `GET` and `HEAD`.
//!
//! A connection starts here (unless the setting `fast_http1` is off). Each request head is
//! parsed from a read buffer the event loop lends for the read (kept by the connection only
//! while it holds unanswered bytes) into a request the loop lends too (`scratch.rs`), the
//! request goes to the router like any other, and the response head is
//! rendered into a buffer lent the same way and written with its body in one write where it
//! can be. The first request this layer does not take (see
//! [`head`]: a body, an upgrade, HTTP/1.0, another method, a malformed or oversized head, or
//! the HTTP/2 preface) hands the connection to hyper ([`Ended::HandOff`]) with the bytes read
//! and not yet answered, at a request boundary: hyper then serves the rest of the connection
//! with its own answers to bad input, as HTTP/1 once a request was answered here (the
//! HTTP/2 preface counts only as a connection's first bytes, as with hyper alone).
//!
//! Why: hyper's fixed cost per request (its parse, its head encoding and its buffering) was
//! about half of the user-space instructions of a small cached response, and its
//! per-connection state what missed the cache at 1,000 connections (benches/README.md). This
//! layer does the same work with less: the head's bytes become the request's fields without a
//! copy, and the response head is written straight from the pipeline's fields.
//!
//! What it keeps of the server's rules: requests of a connection are answered one at a time,
//! in order (pipelined requests wait in the read buffer); the socket is not read while a
//! request is answered, so a client may half-close after its request; the request-head and
//! idle deadlines are the I/O wrapper's (`deadlines`), told of each request through the
//! [`HeadSignal`]; on shutdown a connection waiting for a request closes at once, and one
//! being answered finishes that answer with `connection: close`.

mod date;
#[doc(hidden)] // public for the fuzz target (fuzz/fuzz_targets/http1_head.rs) only
pub mod head;
mod prefixed;
mod scratch;
mod write;

pub use prefixed::Prefixed;

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::WaitForCancellationFuture;

use super::Stop;
use super::deadlines::HeadSignal;
use super::ending::Refused;
use crate::app::App;
use head::Parsed;
use scratch::Scratch;

/// The read buffer's size (a browser's request head is 0.5-2 KiB; a larger head grows the
/// buffer, up to `max_header_size`). Between requests a connection holds none: each read
/// borrows one from the event loop (`scratch::take_read_buf`).
const READ_BUF: usize = 4096;

/// How a connection left this layer.
#[derive(Debug)]
pub enum Ended {
    /// Closed: by the client, after `Connection: close`, or on shutdown.
    Closed,
    /// A request this layer does not take: `rest` (that request and whatever followed it)
    /// and the rest of the connection are hyper's. `answered`: requests were answered on
    /// the connection before (so it is HTTP/1, and stays so).
    HandOff {
        /// The bytes read and not answered.
        rest: Bytes,
        /// Whether this layer answered requests on the connection.
        answered: bool,
    },
}

/// What a connection of this layer needs from the server.
pub struct Serving<'a> {
    /// The application.
    pub app: &'a Arc<App>,
    /// Told of every request and of the end of its answer.
    pub signal: &'a HeadSignal,
    /// Cancelled when the server shuts down.
    pub stop: &'a Stop,
}

/// Serves requests from `io` until the connection closes or is handed off. An error is an
/// I/O error, or a response body that failed or did not match its length: the connection is
/// then unusable and is dropped.
pub async fn serve<IO>(io: &mut IO, cx: Serving<'_>) -> io::Result<Ended>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let max_head = cx.app.settings.max_header_size;
    let mut read = BytesMut::new();
    let mut stopped = pin!(cx.stop.cancelled());
    let mut answered = false;
    loop {
        if read.is_empty() {
            // Between requests a failed read (a reset, a deadline) ends the connection as if
            // the client had closed it, as hyper does: no exchange was cut short. A deadline
            // records itself on the head signal for the metrics.
            match read_more(io, &mut read, stopped.as_mut()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return Ok(Ended::Closed),
            }
        }
        let mut scratch = Scratch::take();
        let head = match head::parse(&read, &mut scratch.fields, max_head) {
            Parsed::Ours(head) => head,
            Parsed::Foreign => {
                return Ok(Ended::HandOff {
                    rest: read.freeze(),
                    answered,
                });
            }
            Parsed::Refused(refusal) => {
                let res = crate::response::plain(refusal.status(), refusal.body(), None);
                write::response(io, &mut scratch.out, res, None, false, true).await?;
                let _ = io.shutdown().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, Refused));
            }
            Parsed::LaterMinor(at) => {
                read[at] = b'1';
                continue;
            }
            Parsed::Partial => {
                // Not held while the rest of the head is awaited.
                drop(scratch);
                if !read_more(io, &mut read, stopped.as_mut()).await? {
                    // The client closed in the middle of a head (hyper: an incomplete message).
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                continue;
            }
        };
        let bytes = read.split_to(head.len).freeze();
        let lent = &mut *scratch;
        if !head::fill(&mut lent.req, &bytes, &head, &lent.fields) {
            let mut rest = BytesMut::with_capacity(bytes.len() + read.len());
            rest.extend_from_slice(&bytes);
            rest.extend_from_slice(&read);
            return Ok(Ended::HandOff {
                rest: rest.freeze(),
                answered,
            });
        }
        drop(bytes);
        let answering = cx.signal.head_complete_here();
        let (res, shared) = crate::router::answer(cx.app, &scratch.req).await;
        let close = head.close || cx.stop.is_stopping();
        let close = write::response(io, &mut scratch.out, res, shared, head.is_head, close).await?;
        drop(answering);
        answered = true;
        // Given back before the read buffer: that drops the request's references to it.
        drop(scratch);
        if close {
            let _ = io.shutdown().await;
            return Ok(Ended::Closed);
        }
        // The request and its answer are gone, and with them the last references to the
        // head's bytes: an empty buffer goes back to the loop, and one that holds the start of
        // a pipelined request is taken back from its start instead of allocating another.
        if read.is_empty() {
            scratch::give_back_read_buf(std::mem::take(&mut read), READ_BUF);
        } else if read.capacity() < READ_BUF {
            read.reserve(READ_BUF - read.len().min(READ_BUF));
        }
    }
}

/// Reads more of the connection into `read`; `false` when there is no more: the client
/// closed, or, between requests (`read` empty), the server is shutting down (a head in
/// progress is finished and answered instead).
async fn read_more<IO>(
    io: &mut IO,
    read: &mut BytesMut,
    mut stopped: Pin<&mut WaitForCancellationFuture<'_>>,
) -> io::Result<bool>
where
    IO: AsyncRead + Unpin,
{
    // Between requests the buffer is the loop's, lent for each attempt only.
    let between_requests = read.is_empty();
    if !between_requests && read.capacity() - read.len() < READ_BUF / 8 {
        read.reserve(READ_BUF);
    }
    let got = poll_fn(|task| {
        if between_requests && read.capacity() == 0 {
            *read = scratch::take_read_buf(READ_BUF);
        }
        let polled = tokio_util::io::poll_read_buf(Pin::new(&mut *io), task, read);
        if between_requests && !matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            scratch::give_back_read_buf(std::mem::take(read), READ_BUF);
        }
        if let Poll::Ready(r) = polled {
            return Poll::Ready(Some(r));
        }
        if between_requests && stopped.as_mut().poll(task).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    match got {
        Some(Ok(0)) | None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ServeArgs, Settings, StoreSpec};
    use tokio::io::AsyncReadExt;

    fn app(dir: &std::path::Path) -> Arc<App> {
        std::fs::write(dir.join("a.txt"), "hello").unwrap();
        let args = ServeArgs {
            sources: vec![StoreSpec::Local(dir.to_path_buf())],
            policies: Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")),
            ..ServeArgs::default()
        };
        App::build(Settings::resolve(&args).unwrap(), None).unwrap()
    }

    /// Everything `client` has received so far, once the server side is done with it.
    async fn received(mut client: tokio::io::DuplexStream) -> String {
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn answers_gets_and_heads_then_hands_the_first_other_request_to_hyper() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let foreign = "POST /_admin/purge HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n";
        let sent = format!(
            "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nHEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n{foreign}"
        );
        client.write_all(sent.as_bytes()).await.unwrap();
        let signal = HeadSignal::default();
        let stop = Stop::default();
        let serving = Serving {
            app: &app,
            signal: &signal,
            stop: &stop,
        };
        let ended = serve(&mut server, serving).await.unwrap();
        let Ended::HandOff { rest, answered } = ended else {
            panic!("not handed off: {ended:?}");
        };
        assert_eq!(rest, foreign.as_bytes());
        assert!(answered);
        assert!(signal.served());
        drop(server);
        let got = received(client).await;
        assert_eq!(got.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{got}");
        assert_eq!(got.matches("content-length: 5\r\n").count(), 2, "{got}");
        assert!(
            got.ends_with("\r\n\r\n"),
            "the HEAD answer has no body: {got}"
        );
        assert_eq!(got.matches("hello").count(), 1, "{got}");
    }

    #[tokio::test]
    async fn the_scratch_goes_back_to_the_loop_when_the_answer_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let signal = HeadSignal::default();
        let stop = Stop::default();
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        // Gone before the answer: writing it fails.
        drop(client);
        let before = scratch::spare();
        let serving = Serving {
            app: &app,
            signal: &signal,
            stop: &stop,
        };
        assert!(serve(&mut server, serving).await.is_err());
        assert_eq!(scratch::spare(), before.max(1), "given back, not dropped");
    }

    #[tokio::test]
    async fn closes_after_connection_close_and_when_stopped_between_requests() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let signal = HeadSignal::default();
        let stop = Stop::default();

        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client
            .write_all(
                b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n",
            )
            .await
            .unwrap();
        let serving = Serving {
            app: &app,
            signal: &signal,
            stop: &stop,
        };
        let ended = serve(&mut server, serving).await.unwrap();
        assert!(matches!(ended, Ended::Closed), "{ended:?}");
        drop(server);
        let got = received(client).await;
        assert_eq!(
            got.matches("HTTP/1.1").count(),
            1,
            "one answer, then closed: {got}"
        );
        assert!(got.contains("\r\nconnection: close\r\n"), "{got}");

        let (client, mut server) = tokio::io::duplex(1 << 16);
        stop.cancel();
        let serving = Serving {
            app: &app,
            signal: &signal,
            stop: &stop,
        };
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            serve(&mut server, serving),
        )
        .await
        .expect("an idle connection closes at once on shutdown")
        .unwrap();
        assert!(matches!(ended, Ended::Closed));
        drop(client);
    }
}
