//! Event loops: the threads that serve connections, one single-threaded tokio runtime each.
//!
//! The listener accepts on the main runtime and hands each connection to the loop with the
//! fewest open connections; from then on the connection lives on that one thread: its socket is
//! registered with that loop's reactor, its timers with that loop's timer, and the tasks it
//! spawns (HTTP/2 streams, store fetches) run there too. This is nginx's shape (one event loop
//! per worker), and on the load tests it cost less CPU per request than one work-stealing
//! runtime for everything, where an idle worker keeps waking up to steal and tasks move between
//! threads (benches/README.md has the figures). Tasks still cooperate across loops where they
//! must: a request waiting for another loop's store fetch is woken through the same `Waker`s.
//!
//! A blocking call on a loop stalls every connection of that loop, so file reads, hashing and
//! compression run on the loop's blocking pool (`spawn_blocking`), as they already did.
//!
//! The loops stop when [`EventLoops::stop`] is awaited, or when the `EventLoops` is dropped
//! (the server future was dropped): each runtime then drops the tasks it still holds.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// How long a stopping loop waits for its blocking tasks (a file read, a compression).
const BLOCKING_GRACE: Duration = Duration::from_secs(1);

/// One loop: where to spawn, and how many connections it serves now.
struct Loop {
    handle: Handle,
    open: Arc<AtomicUsize>,
}

/// The running loops. See the module docs.
pub struct EventLoops {
    loops: Vec<Loop>,
    stop: CancellationToken,
    threads: Vec<JoinHandle<()>>,
}

/// Counts a connection against its loop until dropped (also when its task is cancelled).
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EventLoops {
    /// Starts `n` loops (at least one), each on its own thread named `cdn-origin-loop-I`.
    pub fn start(n: usize) -> io::Result<EventLoops> {
        let stop = CancellationToken::new();
        let mut loops = EventLoops {
            loops: Vec::with_capacity(n),
            stop: stop.clone(),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("cdn-origin-blocking-{i}"))
                .build()?;
            let handle = runtime.handle().clone();
            let stop = stop.clone();
            // On error, `loops` is dropped, which cancels `stop` and ends the threads started.
            let thread = std::thread::Builder::new()
                .name(format!("cdn-origin-loop-{i}"))
                .spawn(move || {
                    runtime.block_on(stop.cancelled());
                    runtime.shutdown_timeout(BLOCKING_GRACE);
                })?;
            loops.loops.push(Loop {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
            });
            loops.threads.push(thread);
        }
        Ok(loops)
    }

    /// How many loops run.
    pub fn len(&self) -> usize {
        self.loops.len()
    }

    /// Always false: there is at least one loop.
    pub fn is_empty(&self) -> bool {
        self.loops.is_empty()
    }

    /// Runs a connection's future on the loop with the fewest open connections. The future is
    /// first polled on that loop, so sockets and timers it creates belong to it.
    pub fn spawn_connection<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(chosen) = self
            .loops
            .iter()
            .min_by_key(|l| l.open.load(Ordering::Relaxed))
        else {
            return;
        };
        chosen.open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(chosen.open.clone());
        chosen.handle.spawn(async move {
            let _guard = guard;
            connection.await;
        });
    }

    /// Stops every loop and waits for its thread to end. Tasks still on a loop are dropped, so
    /// call this after the connections have drained.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let threads = std::mem::take(&mut self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        if joined.await.is_err() {
            tracing::warn!("an event loop thread did not stop cleanly");
        }
    }
}

impl Drop for EventLoops {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_go_to_the_least_busy_loop_and_run_on_its_thread() {
        let loops = EventLoops::start(2).unwrap();
        assert_eq!(loops.len(), 2);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        for _ in 0..4 {
            let tx = tx.clone();
            let mut release = release_rx.clone();
            loops.spawn_connection(async move {
                let name = std::thread::current().name().map(str::to_owned);
                tx.send(name).unwrap();
                let _ = release.wait_for(|r| *r).await;
            });
        }
        let mut names = Vec::new();
        for _ in 0..4 {
            names.push(rx.recv().await.unwrap().unwrap());
        }
        names.sort();
        assert_eq!(
            names,
            [
                "cdn-origin-loop-0",
                "cdn-origin-loop-0",
                "cdn-origin-loop-1",
                "cdn-origin-loop-1"
            ]
        );
        let open: Vec<usize> = loops
            .loops
            .iter()
            .map(|l| l.open.load(Ordering::Relaxed))
            .collect();
        assert_eq!(open, [2, 2]);
        release_tx.send(true).unwrap();
        loops.stop().await;
    }

    #[tokio::test]
    async fn stop_ends_the_threads_and_drops_unfinished_tasks() {
        let loops = EventLoops::start(1).unwrap();
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        loops.spawn_connection(async move {
            let _dropped = dropped_tx;
            std::future::pending::<()>().await;
        });
        tokio::time::timeout(Duration::from_secs(5), loops.stop())
            .await
            .expect("the loops stop");
        assert!(dropped_rx.await.is_err(), "the pending task was dropped");
    }
}
