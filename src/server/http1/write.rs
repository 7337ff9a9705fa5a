//! Writing a response: the head rendered into the connection's reused buffer, the body framed
//! by its length or in chunks, and both handed to the socket together.
//!
//! The framing rules are hyper's (RFC 9112 section 6), so that a response reads the same,
//! byte for byte, from either layer (tests/http1.rs compares them): a `Content-Length` the
//! pipeline set is kept and enforced (a body that ends short or runs long is an error, and the
//! connection closes, since the client could no longer find the next response); without one,
//! a body of known size gets a `content-length`, and a stream of unknown size is sent
//! `chunked`. An empty body gets `content-length: 0` after the other fields. `HEAD`, `204`,
//! `304` and `1xx` answers carry no body, and no length is added to them. A `date` field is
//! added last when the response has none. When the connection is to close after the answer,
//! `connection: close` says so.
//!
//! A body that is ready at once and small is copied behind the head and leaves in one write;
//! a larger one goes out beside the head in one vectored write, without a copy (the socket may
//! then send it with `sendfile`, `crate::sendfile`). A body that is not ready (a store read)
//! lets the head go first.

use std::future::poll_fn;
use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header;
use http::{Response, StatusCode};
use http_body::Body as _;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::date;
use super::head::has_token;
use crate::response::{Body, CACHE_STATUS, SharedFields, content_length, field_line};
use crate::server::ending::BodyFailed;

/// Bodies up to this size are copied behind the head; larger ones are written beside it
/// (copying an 8 KB page cost more instructions than the vectored write, callgrind).
const COPY_MAX: usize = 1024;

/// How the body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Writes `res` to `io`, with `buf` (cleared first) for the head; `shared`: prepared fields
/// that come before the response's own. `is_head`: the request was HEAD. `close`: the
/// connection closes after this answer. Returns whether it must close, which is also so when
/// the response itself says `Connection: close`.
pub async fn response<IO>(
    io: &mut IO,
    buf: &mut Vec<u8>,
    res: Response<Body>,
    shared: Option<SharedFields>,
    is_head: bool,
    close: bool,
) -> io::Result<bool>
where
    IO: AsyncWrite + Unpin,
{
    let (parts, mut body) = res.into_parts();
    buf.clear();
    let fields = Fields {
        shared: shared.as_ref(),
        own: &parts.headers,
    };
    let (framing, close) = head(buf, parts.status, fields, &body, is_head, close);
    drop(shared);
    drop(parts);
    match framing {
        Framing::None => {
            drop(body);
            io.write_all(buf).await?;
        }
        Framing::Length(len) => send_length(io, buf, &mut body, len).await?,
        Framing::Chunked => send_chunked(io, buf, &mut body).await?,
    }
    io.flush().await?;
    Ok(close)
}

/// A response's fields: a shared prepared set (which holds no `Date` or `Connection`, since
/// policies may not set those), then the response's own.
struct Fields<'a> {
    shared: Option<&'a SharedFields>,
    own: &'a http::HeaderMap,
}

/// Renders the status line and fields into `buf`; returns the framing and whether the
/// connection closes after this answer.
fn head(
    buf: &mut Vec<u8>,
    status: StatusCode,
    fields: Fields<'_>,
    body: &Body,
    is_head: bool,
    mut close: bool,
) -> (Framing, bool) {
    if status == StatusCode::OK {
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        buf.extend_from_slice(b"HTTP/1.1 ");
        buf.extend_from_slice(status.as_str().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    // An empty body's length is written below, as `0`, whatever the fields say (as hyper
    // does); a HEAD answer keeps the length of what a GET would get.
    let empty = body.is_end_stream();
    let mut declared = None;
    let mut has_date = false;
    let mut says_close = false;
    if let Some(shared) = fields.shared {
        // The pipeline shares the fields of no empty 200 (their length would have to move).
        debug_assert!(!empty || is_head || shared.content_length().is_none());
        buf.extend_from_slice(shared.wire());
        field_line(buf, &CACHE_STATUS, shared.cache_status());
        declared = shared.content_length();
    }
    for (name, value) in fields.own {
        if name == header::CONTENT_LENGTH {
            if empty && !is_head {
                continue;
            }
            declared = content_length(value);
        } else if name == header::DATE {
            has_date = true;
        } else if name == header::CONNECTION {
            says_close |= has_token(value.as_bytes(), b"close");
        }
        field_line(buf, name, value);
    }
    if close && !says_close {
        buf.extend_from_slice(b"connection: close\r\n");
    }
    close |= says_close;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (declared, body.size_hint().exact()) {
        _ if empty => {
            if !bodiless && !is_head {
                buf.extend_from_slice(b"content-length: 0\r\n");
            }
            Framing::Length(0)
        }
        (Some(len), _) => Framing::Length(len),
        (None, Some(len)) => {
            if !bodiless {
                buf.extend_from_slice(b"content-length: ");
                buf.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                buf.extend_from_slice(b"\r\n");
            }
            Framing::Length(len)
        }
        (None, None) if bodiless || is_head => Framing::None,
        (None, None) => {
            buf.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        }
    };
    if !has_date {
        buf.extend_from_slice(b"date: ");
        date::extend(buf);
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    let framing = if bodiless || is_head {
        Framing::None
    } else {
        framing
    };
    (framing, close)
}

/// The next data frame of `body`, or `None` at its end (trailers are skipped: the pipeline
/// sends none).
fn poll_data(body: &mut Body, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
    loop {
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(Ok(None)),
            // Marked as the body's, so that the connection's end is not mistaken for the
            // client's doing (a store read cut short is an `UnexpectedEof` too).
            Poll::Ready(Some(Err(e))) => {
                return Poll::Ready(Err(io::Error::new(e.kind(), BodyFailed(e))));
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Poll::Ready(Ok(Some(data)));
                }
            }
        }
    }
}

async fn next_data(body: &mut Body) -> io::Result<Option<Bytes>> {
    poll_fn(|cx| poll_data(body, cx)).await
}

/// The body's first data frame. When the body has to wait for it (a store read), the head in
/// `buf` is written first, so that the client has it meanwhile, and `buf` is left empty.
async fn first_data<IO>(
    io: &mut IO,
    buf: &mut Vec<u8>,
    body: &mut Body,
) -> io::Result<Option<Bytes>>
where
    IO: AsyncWrite + Unpin,
{
    match poll_fn(|cx| Poll::Ready(poll_data(body, cx))).await {
        Poll::Ready(first) => first,
        Poll::Pending => {
            io.write_all(buf).await?;
            buf.clear();
            next_data(body).await
        }
    }
}

fn length_error(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("response body {what} its content-length"),
    )
}

/// Sends the head in `buf` and exactly `len` body bytes.
async fn send_length<IO>(
    io: &mut IO,
    buf: &mut Vec<u8>,
    body: &mut Body,
    len: u64,
) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let mut sent = 0u64;
    let mut next = first_data(io, buf, body).await?;
    while let Some(data) = next.take() {
        sent += data.len() as u64;
        if sent > len {
            return Err(length_error("runs past"));
        }
        if buf.is_empty() {
            io.write_all(&data).await?;
        } else if data.len() <= COPY_MAX {
            buf.extend_from_slice(&data);
            io.write_all(buf).await?;
        } else {
            write_all_vectored(io, &mut [IoSlice::new(buf), IoSlice::new(&data)]).await?;
        }
        buf.clear();
        next = next_data(body).await?;
    }
    if !buf.is_empty() {
        io.write_all(buf).await?;
        buf.clear();
    }
    if sent < len {
        return Err(length_error("ends before"));
    }
    Ok(())
}

/// Sends the head in `buf` and the body in chunks, then the last chunk.
async fn send_chunked<IO>(io: &mut IO, buf: &mut Vec<u8>, body: &mut Body) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let mut size = Vec::with_capacity(20);
    let mut next = first_data(io, buf, body).await?;
    while let Some(data) = next {
        if !data.is_empty() {
            size.clear();
            write!(size, "{:X}\r\n", data.len())?;
            write_all_vectored(
                io,
                &mut [
                    IoSlice::new(buf),
                    IoSlice::new(&size),
                    IoSlice::new(&data),
                    IoSlice::new(b"\r\n"),
                ],
            )
            .await?;
            buf.clear();
        }
        next = next_data(body).await?;
    }
    buf.extend_from_slice(b"0\r\n\r\n");
    io.write_all(buf).await?;
    buf.clear();
    Ok(())
}

/// Writes every byte of `bufs`, in order.
async fn write_all_vectored<IO>(io: &mut IO, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = io.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}
