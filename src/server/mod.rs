//! The listener: accepts connections and serves them, HTTP/1.1 (keep-alive, pipelining)
//! through our own layer ([`http1`]) for plain `GET`/`HEAD` and through hyper for the rest,
//! HTTP/2 (h2c) through hyper-util's auto builder; and it shuts down gracefully.
//!
//! Limits that protect the process from clients: a header-read timeout (slowloris) and an
//! idle timeout in both directions ([`deadlines::Deadlines`]), a maximum request-head size
//! (hyper answers 431 past it), and a cap on open connections: past the cap a connection gets a
//! `503` with `Retry-After` in its own protocol and is closed, rather than waiting in the
//! backlog (`refusal.rs`).
//!
//! Shutdown (SIGTERM/SIGINT, or the future given to [`Server::run`]): stop accepting, ask every
//! connection to finish its in-flight responses (a long video download too) and close, wait up
//! to the drain timeout (or until a second signal), then return so the process exits 0.

pub mod deadlines;
mod ending;
pub mod http1;
mod linger;
pub mod loops;
mod refusal;
mod send_queue;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

use crate::app::App;
use crate::sendfile::ZeroCopyStream;
use send_queue::SendQueue;

/// The server's shutdown as its connections see it: a token to wait on, and a flag to read for
/// every request (the token's own `is_cancelled` takes a lock, one that every connection of
/// every event loop would share).
#[derive(Clone, Debug, Default)]
pub struct Stop {
    token: CancellationToken,
    flag: Arc<AtomicBool>,
}

impl Stop {
    /// Starts the shutdown: the flag first, so that whoever is woken by the token sees it.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// Whether the shutdown has started.
    pub fn is_stopping(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Completes once the shutdown has started.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
}

/// A bound, not yet running, server.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
}

impl Server {
    /// Binds the listen address from the settings, with the longest accept queue the kernel
    /// allows ([`BACKLOG`]).
    pub async fn bind(app: Arc<App>) -> std::io::Result<Server> {
        let addr = app.settings.listen;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restarted server can bind while old connections of
        // the previous one linger in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(BACKLOG)?;
        Ok(Server { listener, app })
    }

    /// The bound address (tests bind port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_with(shutdown, std::future::pending()).await;
    }

    /// [`Server::run`], and `hurry`, first polled once the drain has begun, ends the drain at
    /// once: the process's second SIGTERM or Ctrl-C ([`shutdown_signal`] again), for whoever
    /// will not wait out the drain timeout.
    pub async fn run_with(
        self,
        shutdown: impl Future<Output = ()>,
        hurry: impl Future<Output = ()>,
    ) {
        let Server { listener, app } = self;
        let settings = &app.settings;
        let loops = match loops::EventLoops::start(settings.event_loops) {
            Ok(loops) => loops,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the event loops");
                return;
            }
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // The header-read timeout is ours (`deadlines`): hyper's would also cut keep-alive
            // connections waiting for their next request.
            .header_read_timeout(None)
            .max_buf_size(settings.max_header_size)
            // A client may half-close after its request (TCP allows it) and still gets the
            // answer, as from nginx. It also keeps hyper from probing the socket for EOF while
            // a request is answered: that probe reserved a fresh 8 KiB read buffer per
            // request, because the request still held the old one (benches/README.md). A
            // client gone meanwhile is noticed when the answer is written; a slow store is
            // bounded by the store timeouts, not by the idle timeout (docs/operations.md).
            .half_close(true)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(settings.max_header_size as u32)
            .max_concurrent_streams(256)
            // No keep-alive PINGs (hyper's are off unless an interval is set): the idle
            // deadline (`deadlines`) finds dead peers, by the send queue too. A PING waits
            // behind every byte already queued for the client, so a slow client with a large
            // window could not answer it within any fixed timeout, and hyper would cut its
            // download (measured: a 3 MB/s reader with 8 MiB in flight, cut at 8.5 of 12 MB).
            .keep_alive_interval(None);
        // A connection that our HTTP/1 layer hands over after answering on it stays HTTP/1
        // (as it would with hyper from the start): its builder does not look for the HTTP/2
        // preface, and its graceful shutdown answers a request already begun.
        let builders = Arc::new(Builders {
            http1: builder.clone().http1_only(),
            auto: builder,
        });
        // Every connection watches `stop` (ours between requests, hyper's through its graceful
        // shutdown) and holds a token of `tracker`, whose drain waits for them all.
        let tracker = TaskTracker::new();
        let stop = Stop::default();
        let permits = Arc::new(Semaphore::new(settings.max_connections));
        let refusals = Arc::new(refusal::Refusals::default());
        tracing::info!(
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            event_loops = loops.len(),
            "listening"
        );
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // EMFILE and friends: back off briefly instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        app.metrics.connection_refused();
                        refusals.log(peer);
                        let refusals = refusals.clone();
                        tokio::spawn(async move { refusals.refuse(stream).await });
                        continue;
                    };
                    // Deregistered from this runtime's reactor; the loop registers it with its
                    // own when it first polls the connection.
                    let stream = match stream.into_std() {
                        Ok(stream) => stream,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "cannot hand the connection over");
                            continue;
                        }
                    };
                    let connection = Connection {
                        app: app.clone(),
                        builders: builders.clone(),
                        _tracked: tracker.token(),
                        stop: stop.clone(),
                        peer,
                        _permit: permit,
                    };
                    loops.spawn_connection(connection.serve(stream));
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!(
            drain_timeout_s = settings.drain_timeout.as_secs_f64(),
            "shutting down: draining connections"
        );
        stop.cancel();
        tracker.close();
        tokio::select! {
            () = tracker.wait() => tracing::info!("all connections drained"),
            () = hurry => tracing::warn!(
                connections = tracker.len(),
                "asked again to stop: closing the remaining connections now"
            ),
            () = tokio::time::sleep(settings.drain_timeout) => {
                tracing::warn!(
                    connections = tracker.len(),
                    "drain timeout passed; closing the remaining connections"
                );
            }
        }
        loops.stop().await;
    }
}

/// The accept queue's length: as long as the kernel allows (it caps the value at
/// `net.core.somaxconn`, 4096 by default since Linux 5.4; raise that sysctl for longer). The
/// queue only absorbs bursts, since the accept loop takes every connection at once and
/// refuses those over the cap with a 503. `TcpListener::bind` asks for 128 (the standard
/// library's value): 1,000 clients connecting at once, as a CDN's edge does after a restart,
/// overflowed it by 600-950 connections, whose handshakes the kernel then dropped and the
/// clients retried up to a second later (p99 of 75-317 ms in the 1,000-connection benchmark,
/// benches/README.md).
pub const BACKLOG: u32 = u32::MAX;

/// hyper's connection builders: `auto` serves HTTP/1.1 or HTTP/2 (h2c, prior knowledge) as
/// the connection's first bytes say; `http1` only HTTP/1.1.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
}

/// One accepted connection, on its way to an event loop.
struct Connection {
    app: Arc<App>,
    builders: Arc<Builders>,
    /// Held for the life of the connection: the drain waits for it.
    _tracked: TaskTrackerToken,
    /// Cancelled when the server shuts down.
    stop: Stop,
    peer: SocketAddr,
    /// Held for the life of the connection (the connection cap).
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves the connection to its end, on the event loop that polls this future: with our
    /// HTTP/1 layer ([`http1`]) first, and with hyper from the first request that layer hands
    /// over (or from the start, with `fast_http1` off).
    async fn serve(self, stream: std::net::TcpStream) {
        let Connection {
            app,
            builders,
            _tracked,
            stop,
            peer,
            _permit,
        } = self;
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot register the connection");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let settings = &app.settings;
        // The head deadline of `deadlines` covers HTTP/1 requests once the protocol is known:
        // a connection must also have produced its first request within that time on either
        // protocol, or it is dropped (h2c slowloris: a dribbled preface or request head).
        let head = deadlines::HeadSignal::default();
        let stream = ZeroCopyStream::new(stream, app.arena.clone(), Some(app.metrics.clone()));
        // Boxed: hyper takes an owned, `Unpin` I/O when the connection is handed over.
        let mut io = Box::pin(
            deadlines::Deadlines::new(stream, settings.idle_timeout)
                .with_head_timeout(settings.header_read_timeout, head.clone()),
        );
        // Serves the connection, and gives back its I/O when it is to be closed here (see
        // `linger`): always, unless the first-request deadline cut it.
        let conn = async {
            let (rest, builder) = if settings.fast_http1 {
                let serving = http1::Serving {
                    app: &app,
                    signal: &head,
                    stop: &stop,
                };
                match http1::serve(&mut io, serving).await {
                    Ok(http1::Ended::Closed) => return (Ok(()), Some(io)),
                    // HTTP/2 only from the connection's first bytes, as hyper would.
                    Ok(http1::Ended::HandOff { rest, answered }) => {
                        let h2 = !answered && deadlines::may_be_h2_preface(&rest);
                        (rest, if h2 { &builders.auto } else { &builders.http1 })
                    }
                    Err(e) => return (Err(e.into()), Some(io)),
                }
            } else {
                (bytes::Bytes::new(), &builders.auto)
            };
            let (lent, mut returned) = linger::Lent::new(io);
            let served = serve_with_hyper(lent, rest, builder, &app, &head, &stop).await;
            // hyper has dropped the connection, and with it the `Lent`.
            (served, returned.try_recv().ok())
        };
        tokio::pin!(conn);
        let deadline = tokio::time::sleep(settings.header_read_timeout);
        tokio::pin!(deadline);
        let metrics = &app.metrics;
        metrics.connection_opened();
        // The deadline is polled only until a request has been served; after that it no longer
        // matters, and later wake-ups do not touch its timer. An HTTP/2 connection is first
        // sent GOAWAY and given `GOAWAY_GRACE` to end.
        let ended = std::future::poll_fn(|cx| {
            loop {
                if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                    return Poll::Ready(Some(r));
                }
                if head.served() || deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if !(head.is_h2() && head.request_goaway(deadlines::Expired::Head)) {
                    return Poll::Ready(None);
                }
                let grace = tokio::time::Instant::now() + deadlines::GOAWAY_GRACE;
                deadline.as_mut().reset(grace);
            }
        })
        .await;
        let (result, io) = match ended {
            Some((served, io)) => (Some(served), io),
            None => (None, None),
        };
        match &result {
            Some(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
            None => tracing::debug!(%peer, "no request within the header timeout; closed"),
            Some(Ok(())) => {}
        }
        // A connection cut by a deadline is closed at once (nginx does not linger after a
        // timeout either); an HTTP/2 one that was sent GOAWAY for it lingers, since its
        // client answers the GOAWAY. Cut with bytes still queued, the client stopped reading
        // them: a reset frees them at once, where a FIN would wait behind them and the kernel
        // would keep them for minutes of retries (nginx's `reset_timedout_connection`).
        if let Some(io) = io {
            let mut stream = Pin::into_inner(io).into_inner();
            let cut = head.expired().is_some() && !head.goaway_requested();
            if !cut {
                linger::close(&mut stream, Some(&stop)).await;
            } else if stream.unacknowledged() > 0 {
                let _ = stream.tcp().set_zero_linger();
            }
        }
        metrics.connection_closed(ending::reason(&result, head.expired()));
    }
}

/// A connection's I/O: the socket under the connection's deadlines.
type ConnectionIo = deadlines::Deadlines<ZeroCopyStream>;

/// Serves the rest of a connection with hyper, `rest` (bytes read and not answered by our
/// HTTP/1 layer) first.
async fn serve_with_hyper(
    io: linger::Lent<Pin<Box<ConnectionIo>>>,
    rest: bytes::Bytes,
    builder: &auto::Builder<TokioExecutor>,
    app: &Arc<App>,
    head: &deadlines::HeadSignal,
    stop: &Stop,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let app = app.clone();
    let signal = head.clone();
    let service = service_fn(move |req| {
        let answering = signal.head_complete();
        let app = app.clone();
        async move {
            let res = crate::router::route(&app, req).await;
            Ok::<_, Infallible>(res.map(|body| deadlines::AnsweredBody::new(body, answering)))
        }
    });
    let io = TokioIo::new(http1::Prefixed::new(rest, io));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // On shutdown hyper finishes the request in progress and closes, or closes at once if it
    // has read nothing yet. So the shutdown is passed on only after hyper has been polled
    // once, and has taken the bytes handed over with the connection.
    // A deadline that passes on an HTTP/2 connection asks for the same (GOAWAY, then the
    // close), see `deadlines::GOAWAY_GRACE`.
    let mut stopping = std::pin::pin!(stop.cancelled());
    let mut told = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if !told && (head.goaway_requested() || stopping.as_mut().poll(cx).is_ready()) {
            told = true;
            conn.as_mut().graceful_shutdown();
            return conn.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        () = term => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}
