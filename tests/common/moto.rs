//! A private moto S3-compatible server that a test may kill and restart (store outages).
//!
//! The shared moto of `scripts/test.sh` must stay up for the other tests, so a test that takes
//! the store away starts its own from `CDN_ORIGIN_TEST_MOTO_BIN` on a port it picked, and kills
//! it (SIGKILL: a crash, not a polite shutdown) mid-download. A restart binds the same port, so
//! the server under test finds the store again at the address it was configured with; moto
//! keeps its data in memory, so the caller seeds it again after a restart.
//!
//! Include it beside `common` with `#[path = "common/moto.rs"] mod moto;`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or killed) private moto.
pub struct Moto {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// The moto binary, or `None` (skip, with a printed reason) when absent; panics under CI.
/// The S3 client of the server reads credentials from `AWS_*` (as `scripts/test.sh` sets them),
/// so those must be present too.
pub fn moto_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("CDN_ORIGIN_TEST_MOTO_BIN").map(PathBuf::from);
    let creds = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
        && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some();
    match bin {
        Some(bin) if bin.exists() && creds => Some(bin),
        _ => {
            let why = "CDN_ORIGIN_TEST_MOTO_BIN (an existing moto_server) and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY must be set (scripts/test.sh sets them)";
            if std::env::var_os("CI").is_some() {
                panic!("{why}, and CI is set");
            }
            eprintln!("skipping: {why}");
            None
        }
    }
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers.
    pub async fn start(bin: PathBuf) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut moto = Moto {
            bin,
            port,
            child: None,
        };
        moto.spawn().await;
        moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let child = Command::new(&self.bin)
                .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn moto_server");
            self.child = Some(child);
            // Up when it answers anything; a child that exits (port still held by the old
            // process's sockets) is started again.
            while Instant::now() < deadline {
                if self.answers().await {
                    return;
                }
                if let Some(child) = self.child.as_mut()
                    && child.try_wait().ok().flatten().is_some()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {} within 30 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn answers(&self) -> bool {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        client.get(self.endpoint()).send().await.is_ok()
    }

    /// SIGKILL, then wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts moto again on the same port (empty: moto keeps its data in memory).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}
