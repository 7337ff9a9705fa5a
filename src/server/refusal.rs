//! Connections over `max_connections` get a 503 with `Retry-After: 1` that the client can
//! read, in the protocol it speaks, and are closed.
//!
//! - An HTTP/1 client gets `HTTP/1.1 503` with `Connection: close`, and the connection
//!   lingers ([`REFUSAL_LINGER`] at most) so that its unread request does not reset the
//!   answer away.
//! - An HTTP/2 client (its first bytes are the connection preface) gets SETTINGS, the 503 on
//!   its first stream, and GOAWAY naming that stream, written here frame by frame
//!   ([`H2Refusal`]). An HTTP/1 answer would be a protocol error to it (curl: "empty reply
//!   from server").
//!   - hyper's graceful shutdown is not used: it sends GOAWAY and a PING before the answer,
//!     and Python's h2 (httpx) fails on a PING after GOAWAY and loses the 503.
//!   - The request is read to its end (trailers too) before the answer, its body with
//!     WINDOW_UPDATEs up to [`crate::unused_body::LIMIT`], so that the stream is never
//!     reset under a client still sending (curl drops an answer for that reset).
//!   - The body of the 503 is sent only where the client's flow-control windows take it;
//!     otherwise an empty DATA ends the stream (`content-length: 0`). A stream the client
//!     reset gets nothing but the GOAWAY.
//!   - Everything happens within [`H2_REFUSAL`]; a client that opens no stream in that time
//!     gets GOAWAY alone. A connection error (a frame over 16 KiB, HEADERS or DATA on stream
//!     0, an even stream) gets GOAWAY with its code (RFC 9113 §5.4.1) and no answer.
//!
//! A refusal reads the client's first bytes for at most [`REFUSAL_LINGER`], until they are the
//! whole preface or cannot be (an HTTP/1 `POST` starts as the preface does); one that sends
//! nothing is answered in HTTP/1. At most [`REFUSALS_LINGERING`] refusals wait or linger at
//! once; past that, in a flood, a refused connection is answered in HTTP/1 and closed at
//! once, so that the flood cannot hold more descriptors than this on top of the cap.
//!
//! Refusals are counted (`cdn_origin_connections_refused_total`) and warned about at most
//! once every [`LOG_EVERY`], with how many there were since the last warning: a flood over
//! the cap wrote one line per connection (8,000 lines in seconds, in the black-box review).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::{deadlines, linger};

/// How many refused connections may wait or linger at once.
pub const REFUSALS_LINGERING: usize = 64;

/// How long a refused connection waits for its first bytes, and lingers after its answer, at
/// most: enough for a request that was on its way.
pub const REFUSAL_LINGER: Duration = Duration::from_millis(250);

/// How long a refused HTTP/2 connection is read at most, from its first bytes, before its
/// answer (or its GOAWAY) is written.
pub const H2_REFUSAL: Duration = Duration::from_secs(1);

/// The refusal's body (on HTTP/2, only where the client's flow-control window takes it).
const BODY: &str = "too many connections\n";

/// The warning for refused connections comes at most this often, with how many there were.
pub const LOG_EVERY: Duration = Duration::from_secs(1);

/// Refuses connections over the cap.
pub struct Refusals {
    lingering: Arc<Semaphore>,
    log: Mutex<RefusalLog>,
}

/// Refusals not yet in a warning, and when the last warning was written.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals {
            lingering: Arc::new(Semaphore::new(REFUSALS_LINGERING)),
            log: Mutex::default(),
        }
    }
}

impl Refusals {
    /// Writes the warning for a connection from `peer` refused now, unless one was written
    /// within [`LOG_EVERY`]: a flood over the cap must not flood the log too.
    pub fn log(&self, peer: SocketAddr) {
        let mut log = self.log.lock();
        log.unlogged += 1;
        let now = Instant::now();
        if log
            .last
            .is_none_or(|last| now.duration_since(last) >= LOG_EVERY)
        {
            tracing::warn!(
                %peer,
                refused = log.unlogged,
                "connection cap reached; refusing (refused: since the last such warning)"
            );
            log.last = Some(now);
            log.unlogged = 0;
        }
    }

    /// Answers `stream` with a 503 and closes it.
    pub async fn refuse(&self, mut stream: TcpStream) {
        let Ok(_lingering) = self.lingering.try_acquire() else {
            if write_http1(&mut stream).await {
                let _ = stream.shutdown().await;
            }
            return;
        };
        let mut first = Vec::with_capacity(deadlines::H2_PREFACE.len());
        let h2 = tokio::time::timeout(REFUSAL_LINGER, read_preface(&mut stream, &mut first));
        let answered = if matches!(h2.await, Ok(Ok(true))) {
            H2Refusal::new(&mut stream, first).run().await
        } else {
            write_http1(&mut stream).await
        };
        if answered {
            let _ = tokio::time::timeout(REFUSAL_LINGER, linger::close(&mut stream, None)).await;
        }
    }
}

/// Reads the connection's first bytes into `first` until they are the HTTP/2 preface (true)
/// or cannot be (false): an HTTP/1 `PUT` or `POST` starts as the preface does.
async fn read_preface(stream: &mut TcpStream, first: &mut Vec<u8>) -> std::io::Result<bool> {
    while first.len() < deadlines::H2_PREFACE.len() {
        read_more(stream, first).await?;
        if !deadlines::may_be_h2_preface(first) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads what the client sent next onto `read`; an error at its end.
async fn read_more(stream: &mut TcpStream, read: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    read.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Writes the HTTP/1 refusal; false if the client did not take it (see [`write_within`]).
async fn write_http1(stream: &mut TcpStream) -> bool {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    write_within(stream, response.as_bytes()).await
}

/// Writes `bytes`; false if the client did not take them within [`WRITE_WAIT`].
async fn write_within(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    let written = tokio::time::timeout(WRITE_WAIT, stream.write_all(bytes));
    matches!(written.await, Ok(Ok(())))
}

/// How long a refusal waits for the client to take what it writes.
const WRITE_WAIT: Duration = Duration::from_secs(1);

/// HTTP/2 frame types and flags (RFC 9113 §6) that the refusal reads or writes.
mod frame {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;

    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;

    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;

    /// The largest frame payload a client may send us: the default
    /// SETTINGS_MAX_FRAME_SIZE, which the refusal does not raise.
    pub const MAX_PAYLOAD: usize = 16_384;

    /// A flow-control window's size until the client says otherwise (RFC 9113 §6.9.2).
    pub const DEFAULT_WINDOW: i64 = 65_535;

    /// A frame header and `payload`, appended to `out`.
    pub fn put(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes();
        out.extend_from_slice(&len[1..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
    }
}

/// One refused HTTP/2 connection, read frame by frame until its first stream's request has
/// ended (the body read and thrown away), then answered.
struct H2Refusal<'a> {
    stream: &'a mut TcpStream,
    /// Bytes read and not yet taken as frames (the preface first).
    read: Vec<u8>,
    /// The client's first stream.
    request: Option<Request>,
    /// Body bytes read so far.
    body: usize,
    /// What the client lets us send (RFC 9113 §6.9): the connection's window, and the
    /// stream's, as its SETTINGS_INITIAL_WINDOW_SIZE and the WINDOW_UPDATEs for it say.
    connection_window: i64,
    initial_window: i64,
    stream_window_updates: i64,
}

/// The client's first stream: its id, and whether its fields and its body have ended.
#[derive(Debug, Clone, Copy)]
struct Request {
    id: u32,
    fields_ended: bool,
    body_ended: bool,
    /// The client reset it: nothing more may be sent on it.
    reset: bool,
}

/// Why reading the client's frames stopped.
enum Stop {
    /// The first request has ended (or its body passed the limit): answer it.
    Answer,
    /// The client closed.
    Gone,
    /// A connection error (RFC 9113 §5.4.1), with its code: GOAWAY says it, and the close.
    Error(u32),
}

impl<'a> H2Refusal<'a> {
    /// `first`: the bytes read so far, the preface first.
    fn new(stream: &'a mut TcpStream, first: Vec<u8>) -> Self {
        H2Refusal {
            stream,
            read: first,
            request: None,
            body: 0,
            connection_window: frame::DEFAULT_WINDOW,
            initial_window: frame::DEFAULT_WINDOW,
            stream_window_updates: 0,
        }
    }

    /// Whether the client's windows take the refusal's body.
    fn window_takes_body(&self) -> bool {
        let body = BODY.len() as i64;
        self.connection_window >= body && self.initial_window + self.stream_window_updates >= body
    }

    /// Reads until the first request has ended or [`H2_REFUSAL`] has passed, then writes the
    /// 503 (if a request came and was not reset) and GOAWAY. False if the client is gone.
    async fn run(mut self) -> bool {
        let mut out = Vec::new();
        // SETTINGS first (RFC 9113 §3.4): one stream at a time.
        frame::put(&mut out, frame::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 1]);
        if !self.write(&out).await {
            return false;
        }
        let read = tokio::time::timeout(H2_REFUSAL, self.read_request()).await;
        let code = match read {
            Ok(Ok(Stop::Gone)) | Ok(Err(_)) => return false,
            Ok(Ok(Stop::Error(code))) => code,
            Ok(Ok(Stop::Answer)) | Err(_) => 0,
        };
        out.clear();
        let mut last = 0;
        if let Some(request) = self.request.filter(|r| r.fields_ended && code == 0) {
            if !request.reset {
                put_refusal(&mut out, request.id, self.window_takes_body());
            }
            last = request.id;
        }
        // GOAWAY: the last stream processed, and the error code.
        let mut goaway = last.to_be_bytes().to_vec();
        goaway.extend_from_slice(&code.to_be_bytes());
        frame::put(&mut out, frame::GOAWAY, 0, 0, &goaway);
        self.write(&out).await
    }

    async fn write(&mut self, bytes: &[u8]) -> bool {
        write_within(self.stream, bytes).await
    }

    /// Reads frames, answering what the protocol requires of a peer (SETTINGS and PING
    /// acknowledgements, WINDOW_UPDATEs for the body), until the first request has ended.
    async fn read_request(&mut self) -> std::io::Result<Stop> {
        self.read.drain(..deadlines::H2_PREFACE.len());
        loop {
            self.fill(9).await?;
            let len = usize::from(self.read[0]) << 16
                | usize::from(self.read[1]) << 8
                | usize::from(self.read[2]);
            if len > frame::MAX_PAYLOAD {
                return Ok(Stop::Error(frame::FRAME_SIZE_ERROR));
            }
            self.fill(9 + len).await?;
            let (kind, flags) = (self.read[3], self.read[4]);
            let id = u32::from_be_bytes([self.read[5], self.read[6], self.read[7], self.read[8]])
                & 0x7fff_ffff;
            let payload: Vec<u8> = self.read.drain(..9 + len).skip(9).collect();
            let (ours, first) = (self.ours(id).is_some(), self.request.is_none());
            let mut reply = Vec::new();
            match kind {
                frame::SETTINGS if flags & frame::ACK == 0 => {
                    for setting in payload.chunks_exact(6) {
                        if setting[..2] == [0, 4] {
                            let value = u32::from_be_bytes([
                                setting[2], setting[3], setting[4], setting[5],
                            ]);
                            self.initial_window = i64::from(value);
                        }
                    }
                    frame::put(&mut reply, frame::SETTINGS, frame::ACK, 0, &[]);
                }
                frame::WINDOW_UPDATE if payload.len() == 4 => {
                    let increment =
                        u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                            & 0x7fff_ffff;
                    if id == 0 {
                        self.connection_window += i64::from(increment);
                    } else if ours {
                        self.stream_window_updates += i64::from(increment);
                    }
                }
                frame::PING if flags & frame::ACK == 0 => {
                    frame::put(&mut reply, frame::PING, frame::ACK, 0, &payload);
                }
                // Trailers: END_STREAM ends the request.
                frame::HEADERS if ours => {
                    if let Some(request) = self.ours(id) {
                        request.body_ended |= flags & frame::END_STREAM != 0;
                    }
                }
                // A client's stream has an odd id (RFC 9113 §5.1.1).
                frame::HEADERS | frame::DATA if id == 0 => {
                    return Ok(Stop::Error(frame::PROTOCOL_ERROR));
                }
                frame::HEADERS if first => {
                    if id.is_multiple_of(2) {
                        return Ok(Stop::Error(frame::PROTOCOL_ERROR));
                    }
                    self.request = Some(Request {
                        id,
                        fields_ended: flags & frame::END_HEADERS != 0,
                        body_ended: flags & frame::END_STREAM != 0,
                        reset: false,
                    });
                }
                frame::CONTINUATION => {
                    if let Some(request) = self.ours(id) {
                        request.fields_ended |= flags & frame::END_HEADERS != 0;
                    }
                }
                frame::DATA => {
                    // Flow control counts the whole frame, padding included. The connection's
                    // window is given back for any stream's DATA, the stream's only for ours.
                    let increment = u32::try_from(len).unwrap_or(0).to_be_bytes();
                    let open =
                        len > 0 && self.body.saturating_add(len) <= crate::unused_body::LIMIT;
                    if open {
                        frame::put(&mut reply, frame::WINDOW_UPDATE, 0, 0, &increment);
                    }
                    let body = self.body.saturating_add(len);
                    if let Some(request) = self.ours(id) {
                        request.body_ended |= flags & frame::END_STREAM != 0;
                        let ended = request.body_ended;
                        self.body = body;
                        if open && !ended {
                            frame::put(&mut reply, frame::WINDOW_UPDATE, 0, id, &increment);
                        }
                    }
                }
                frame::RST_STREAM => {
                    if let Some(request) = self.ours(id) {
                        request.body_ended = true;
                        request.reset = true;
                    }
                }
                // A client's GOAWAY leaves its open stream to be answered (RFC 9113 §6.8).
                _ => {}
            }
            if !reply.is_empty() && !self.write(&reply).await {
                return Ok(Stop::Gone);
            }
            if let Some(request) = self.request
                && request.fields_ended
                && (request.body_ended || self.body > crate::unused_body::LIMIT)
            {
                return Ok(Stop::Answer);
            }
        }
    }

    /// The first request, if stream `id` is its stream.
    fn ours(&mut self, id: u32) -> Option<&mut Request> {
        self.request.as_mut().filter(|r| r.id == id)
    }

    /// Reads until at least `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> std::io::Result<()> {
        while self.read.len() < n {
            read_more(self.stream, &mut self.read).await?;
        }
        Ok(())
    }
}

/// The 503 on stream `id`: HEADERS (HPACK literals without indexing, names from the static
/// table, RFC 7541 Appendix A), then DATA that ends the stream: the body, or nothing where
/// the client's window would not take it (an empty DATA needs no window). curl 7.88 reports
/// an upload it could not finish as a failure when the answer has no body.
fn put_refusal(out: &mut Vec<u8>, id: u32, with_body: bool) {
    let body = if with_body { BODY.as_bytes() } else { b"" };
    let length = body.len().to_string();
    let fields: [(u8, &str); 5] = [
        (8, "503"),                        // :status
        (53, "1"),                         // retry-after
        (24, "no-store"),                  // cache-control
        (31, "text/plain; charset=utf-8"), // content-type
        (28, &length),                     // content-length
    ];
    let mut block = Vec::new();
    for (index, value) in fields {
        // A 4-bit prefix; indexes of 15 and more continue in the next byte (all < 143).
        if index < 15 {
            block.push(index);
        } else {
            block.extend_from_slice(&[15, index - 15]);
        }
        // String lengths under 127 fit the 7-bit prefix (no Huffman coding).
        block.push(u8::try_from(value.len()).unwrap_or(0));
        block.extend_from_slice(value.as_bytes());
    }
    frame::put(out, frame::HEADERS, frame::END_HEADERS, id, &block);
    frame::put(out, frame::DATA, frame::END_STREAM, id, body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames in `out`: type, flags, stream, payload.
    fn frames(mut out: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut frames = Vec::new();
        while out.len() >= 9 {
            let len = usize::from(out[1]) << 8 | usize::from(out[2]);
            let stream = u32::from_be_bytes([out[5], out[6], out[7], out[8]]);
            frames.push((out[3], out[4], stream, out[9..9 + len].to_vec()));
            out = &out[9 + len..];
        }
        frames
    }

    #[test]
    fn the_refusal_is_headers_hpack_reads_then_data_that_ends_the_stream() {
        let mut out = Vec::new();
        put_refusal(&mut out, 1, true);
        let frames = frames(&out);
        assert_eq!(frames.len(), 2);
        let (kind, flags, stream, block) = &frames[0];
        assert_eq!(
            (*kind, *flags, *stream),
            (1, 4, 1),
            "HEADERS, END_HEADERS, stream 1"
        );
        assert_eq!(&block[..5], &[0x08, 3, b'5', b'0', b'3']);
        assert_eq!(&block[5..9], &[0x0f, 38, 1, b'1']);
        assert_eq!(&block[block.len() - 5..], &[0x0f, 13, 2, b'2', b'1']);
        let (kind, flags, stream, body) = &frames[1];
        assert_eq!(
            (*kind, *flags, *stream),
            (0, 1, 1),
            "DATA, END_STREAM, stream 1"
        );
        assert_eq!(body, BODY.as_bytes());
    }

    #[test]
    fn without_window_for_the_body_the_data_is_empty_and_the_length_0() {
        let mut out = Vec::new();
        put_refusal(&mut out, 3, false);
        let frames = frames(&out);
        let (_, _, _, block) = &frames[0];
        assert_eq!(&block[block.len() - 4..], &[0x0f, 13, 1, b'0']);
        assert_eq!(frames[1], (0, 1, 3, Vec::new()));
    }
}
