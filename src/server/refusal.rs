//! Connections over `max_connections` get a 503 with `Retry-After: 1` that the client can
//! read, in the protocol it speaks, and are closed.
//!
//! - An HTTP/1 client gets `HTTP/1.1 503` with `Connection: close`, and the connection
//!   lingers ([`REFUSAL_LINGER`] at most) so that its unread request does not reset the
//!   answer away.
//! - An HTTP/2 client (its first bytes are the connection preface) gets SETTINGS, the 503 on
//!   its first stream, and GOAWAY naming that stream, written here frame by frame
//!   ([`H2Refusal`]). An HTTP/1 answer would be a protocol error to it (curl: "empty reply
//!   from server"). hyper's graceful shutdown is not used: it sends GOAWAY and a PING before
//!   the answer, and Python's h2 (httpx) fails on a PING after GOAWAY and loses the 503. A
//!   request body is read (with WINDOW_UPDATEs) until it ends, up to
//!   [`crate::unused_body::LIMIT`], before the answer, so that the stream is never reset
//!   under a client still sending (curl drops an answer for that reset). Everything happens
//!   within [`H2_REFUSAL`]; a client that opens no stream in that time gets GOAWAY alone.
//!
//! A refusal waits at most [`REFUSAL_LINGER`] for the client's first bytes, to tell the
//! protocols apart; one that sends nothing is answered in HTTP/1. At most
//! [`REFUSALS_LINGERING`] refusals wait or linger at once; past that, in a flood, a refused
//! connection is answered in HTTP/1 and closed at once, so that the flood cannot hold more
//! descriptors than this on top of the cap.
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

/// The refusal's body.
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
        let mut first = [0u8; 24];
        let peeked = tokio::time::timeout(REFUSAL_LINGER, stream.peek(&mut first)).await;
        let answered = match peeked {
            Ok(Ok(n @ 1..)) if deadlines::may_be_h2_preface(&first[..n]) => {
                H2Refusal::new(&mut stream).run().await
            }
            _ => write_http1(&mut stream).await,
        };
        if answered {
            let _ = tokio::time::timeout(REFUSAL_LINGER, linger::close(&mut stream, None)).await;
        }
    }
}

/// Writes the HTTP/1 refusal; false if the client did not take it within a second.
async fn write_http1(stream: &mut TcpStream) -> bool {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let written = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    );
    matches!(written.await, Ok(Ok(())))
}

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

    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;

    /// The largest frame payload a client may send us: the default
    /// SETTINGS_MAX_FRAME_SIZE, which the refusal does not raise.
    pub const MAX_PAYLOAD: usize = 16_384;

    /// The HTTP/2 connection preface's length.
    pub const PREFACE_LEN: usize = 24;

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
    /// Bytes read and not yet taken as frames.
    read: Vec<u8>,
    /// The client's first stream: its id, and whether its fields and its body have ended.
    request: Option<Request>,
    /// Body bytes read so far.
    body: usize,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    id: u32,
    fields_ended: bool,
    body_ended: bool,
}

/// Why reading the client's frames stopped.
enum Stop {
    /// The first request has ended (or its body passed the limit): answer it.
    Answer,
    /// The client closed, sent GOAWAY or something this reader does not take.
    Gone,
}

impl<'a> H2Refusal<'a> {
    fn new(stream: &'a mut TcpStream) -> Self {
        H2Refusal {
            stream,
            read: Vec::with_capacity(frame::MAX_PAYLOAD),
            request: None,
            body: 0,
        }
    }

    /// Reads until the first request has ended or [`H2_REFUSAL`] has passed, then writes the
    /// 503 (if a request came) and GOAWAY. False if the client is gone or took nothing.
    async fn run(mut self) -> bool {
        let mut out = Vec::new();
        // SETTINGS first (RFC 9113 §3.4): one stream at a time.
        frame::put(&mut out, frame::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 1]);
        if !self.write(&out).await {
            return false;
        }
        let read = tokio::time::timeout(H2_REFUSAL, self.read_request()).await;
        if matches!(read, Ok(Ok(Stop::Gone)) | Ok(Err(_))) {
            return false;
        }
        out.clear();
        let last = match self.request {
            Some(request) if request.fields_ended => {
                put_refusal(&mut out, request.id);
                request.id
            }
            _ => 0,
        };
        // GOAWAY: the last stream processed, NO_ERROR.
        let mut goaway = last.to_be_bytes().to_vec();
        goaway.extend_from_slice(&[0, 0, 0, 0]);
        frame::put(&mut out, frame::GOAWAY, 0, 0, &goaway);
        self.write(&out).await
    }

    async fn write(&mut self, bytes: &[u8]) -> bool {
        let written = tokio::time::timeout(Duration::from_secs(1), self.stream.write_all(bytes));
        matches!(written.await, Ok(Ok(())))
    }

    /// Reads frames, answering what the protocol requires of a peer (SETTINGS and PING
    /// acknowledgements, WINDOW_UPDATEs for the body), until the first request has ended.
    async fn read_request(&mut self) -> std::io::Result<Stop> {
        self.fill(frame::PREFACE_LEN).await?;
        if !deadlines::may_be_h2_preface(&self.read[..frame::PREFACE_LEN]) {
            return Ok(Stop::Gone);
        }
        self.read.drain(..frame::PREFACE_LEN);
        loop {
            self.fill(9).await?;
            let len = usize::from(self.read[0]) << 16
                | usize::from(self.read[1]) << 8
                | usize::from(self.read[2]);
            if len > frame::MAX_PAYLOAD {
                return Ok(Stop::Gone);
            }
            self.fill(9 + len).await?;
            let (kind, flags) = (self.read[3], self.read[4]);
            let id = u32::from_be_bytes([self.read[5], self.read[6], self.read[7], self.read[8]])
                & 0x7fff_ffff;
            let payload: Vec<u8> = self.read.drain(..9 + len).skip(9).collect();
            let mut reply = Vec::new();
            match kind {
                frame::SETTINGS if flags & frame::ACK == 0 => {
                    frame::put(&mut reply, frame::SETTINGS, frame::ACK, 0, &[]);
                }
                frame::PING if flags & frame::ACK == 0 => {
                    frame::put(&mut reply, frame::PING, frame::ACK, 0, &payload);
                }
                frame::GOAWAY => return Ok(Stop::Gone),
                // A client's stream has an odd id (RFC 9113 §5.1.1); anything else is a
                // protocol error, answered by the close.
                frame::HEADERS if self.request.is_none() && id.is_multiple_of(2) => {
                    return Ok(Stop::Gone);
                }
                frame::HEADERS if self.request.is_none() => {
                    self.request = Some(Request {
                        id,
                        fields_ended: flags & frame::END_HEADERS != 0,
                        body_ended: flags & frame::END_STREAM != 0,
                    });
                }
                frame::CONTINUATION => {
                    if let Some(request) = self.request.as_mut().filter(|r| r.id == id) {
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
                    if let Some(request) = self.request.as_mut().filter(|r| r.id == id) {
                        request.body_ended |= flags & frame::END_STREAM != 0;
                        self.body = self.body.saturating_add(len);
                        if open && !request.body_ended {
                            frame::put(&mut reply, frame::WINDOW_UPDATE, 0, id, &increment);
                        }
                    }
                }
                frame::RST_STREAM => {
                    if let Some(request) = self.request.as_mut().filter(|r| r.id == id) {
                        request.body_ended = true;
                    }
                }
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

    /// Reads until at least `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        while self.read.len() < n {
            let got = self.stream.read(&mut chunk).await?;
            if got == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.read.extend_from_slice(&chunk[..got]);
        }
        Ok(())
    }
}

/// The 503 on stream `id`: HEADERS (HPACK literals without indexing, names from the static
/// table, RFC 7541 Appendix A) and the body in one DATA frame that ends the stream.
fn put_refusal(out: &mut Vec<u8>, id: u32) {
    let length = BODY.len().to_string();
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
    frame::put(out, frame::DATA, frame::END_STREAM, id, BODY.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_headers_and_a_data_frame_whose_fields_hpack_reads() {
        let mut out = Vec::new();
        put_refusal(&mut out, 1);
        // HEADERS: length, type 1, END_HEADERS, stream 1.
        let len = usize::from(out[1]) << 8 | usize::from(out[2]);
        assert_eq!(&out[3..9], &[1, 4, 0, 0, 0, 1]);
        let block = &out[9..9 + len];
        assert_eq!(&block[..5], &[0x08, 3, b'5', b'0', b'3']);
        assert_eq!(&block[5..9], &[0x0f, 38, 1, b'1']);
        let data = &out[9 + len..];
        assert_eq!(&data[3..9], &[0, 1, 0, 0, 0, 1]);
        assert_eq!(&data[9..], BODY.as_bytes());
        assert_eq!(usize::from(data[2]), BODY.len());
    }
}
