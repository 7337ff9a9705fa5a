//! The `cdn-origin` binary as a user runs it: start on a folder, stop on SIGTERM with exit 0,
//! refuse bad settings naming file, line and field, `check-config`, `policy explain`, `sign`,
//! and `healthcheck`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_cdn-origin");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The binary serving `dir` on `port` with JSON logs on its piped stderr (`RUST_LOG` and
/// `CDN_ORIGIN_ACCESS_LOG` unset, so only `args` decide), once it accepts connections.
async fn spawn_json_logging(
    dir: &std::path::Path,
    port: u16,
    args: &[&str],
) -> tokio::process::Child {
    let child = json_logging(dir, port, args).spawn().unwrap();
    wait_for(port).await;
    child
}

/// The command [`spawn_json_logging`] runs, for a test that adds to it first.
fn json_logging(dir: &std::path::Path, port: u16, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg(dir)
        .args(["--log-format", "json"])
        .args(args)
        .env("CDN_ORIGIN_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("RUST_LOG")
        .env_remove("CDN_ORIGIN_ACCESS_LOG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn wait_for(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not start on port {port}");
}

#[tokio::test]
async fn serves_a_folder_from_any_directory_and_exits_zero_on_sigterm() {
    let dir = local_fixtures();
    let elsewhere = tempfile::tempdir().unwrap(); // no policies/ here: embedded defaults apply
    let port = free_port();
    let child = tokio::process::Command::new(BIN)
        .arg(dir.path())
        .env("CDN_ORIGIN_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(elsewhere.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for(port).await;
    let res = client()
        .get(format!("http://127.0.0.1:{port}/hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Plain text falls to the shipped default rule.
    assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
    let (code, _, _) = run(&[
        "healthcheck",
        "--url",
        &format!("http://127.0.0.1:{port}/health"),
    ]);
    assert_eq!(code, 0);
    let pid = child.id().unwrap() as i32;
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let (code, _, err) = run(&[
        "healthcheck",
        "--url",
        &format!("http://127.0.0.1:{port}/health"),
    ]);
    assert_eq!(code, 1, "healthcheck fails once the server is gone");
    assert!(
        err.contains("healthcheck: http://127.0.0.1:"),
        "says why: {err}"
    );
    // The human log on a pipe (a file, journald, `docker logs`): plain text, no colour codes.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("listening"), "the log was read: {log}");
    assert!(
        !log.contains('\x1b'),
        "escape codes in a piped log: {log:?}"
    );
}

#[test]
fn bad_settings_stop_the_start_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("origin.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\n\ncache_size = \"a lot\"\n").unwrap();
    let (code, _, err) = run(&[
        "--config",
        cfg.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("origin.toml:3:"), "{err}");
    assert!(err.contains("a lot"), "{err}");

    let (code, _, err) = run(&[
        "check-config",
        "--max-connections",
        "0",
        "--signing-secret",
        "short",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("max_connections") && err.contains("signing_secret"),
        "every problem listed: {err}"
    );

    let (code, _, err) = run(&["/definitely/not/here"]);
    assert_ne!(code, 0);
    assert!(err.contains("/definitely/not/here"), "{err}");

    let (code, out, _) = run(&["check-config", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("OK"));
}

/// libpq's TLS parameters are accepted (tokio-postgres alone refuses them), and a bad one is
/// named.
#[test]
fn database_tls_parameters_are_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().to_str().unwrap();
    let url = "postgres://u@db.internal/x?sslmode=verify-full&sslrootcert=/no/such/ca.pem";
    let (code, _, err) = run(&["check-config", "--database-url", url, site]);
    assert_eq!(code, 2);
    assert!(
        err.contains("database_url") && err.contains("/no/such/ca.pem"),
        "{err}"
    );
    let url = "postgres://u@db.internal/x?sslmode=verify-full";
    let (code, _, err) = run(&["check-config", "--database-url", url, site]);
    assert_eq!(code, 2);
    assert!(err.contains("sslrootcert"), "{err}");
    let url = "postgres://u@db.internal/x?sslmode=sometimes";
    let (code, _, err) = run(&["check-config", "--database-url", url, site]);
    assert_eq!(code, 2);
    assert!(err.contains("sslmode"), "{err}");
    let url = "postgres://u@db.internal/x?sslmode=require&application_name=edge";
    let (code, out, err) = run(&["check-config", "--database-url", url, site]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK"));
}

#[test]
fn bad_policy_files_stop_the_start_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("pol");
    std::fs::create_dir(&pol).unwrap();
    std::fs::write(
        pol.join("broken.toml"),
        "[[rule]]\nname = \"x\"\nmax-agee = 3\n",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "check-config",
        "--policies",
        pol.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("broken.toml"), "{err}");
}

#[test]
fn policy_explain_names_the_rule_and_its_headers() {
    let (code, out, err) = run(&["policy", "explain", "/assets/app.3f9a1c2e.js"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("max-age=31536000"), "{out}");
    let (code, out, _) = run(&["policy", "explain", "/images/hero.png"]);
    assert_eq!(code, 0);
    assert!(out.contains("max-age=86400"), "{out}");
    // The path is mapped as the server maps a request: `/` serves `index.html` (the html
    // rule), the query goes, and the path is decoded once.
    let (_, out, _) = run(&["policy", "explain", "/"]);
    assert!(
        out.contains("\"index.html\"") && out.contains("no-cache"),
        "{out}"
    );
    for path in ["/assets/app.css?v=2", "/assets/app%2Ecss"] {
        let (_, out, _) = run(&["policy", "explain", path]);
        assert!(
            out.contains("\"text/css\"") && out.contains("css-js"),
            "{path}: {out}"
        );
    }
    let (_, out, _) = run(&["policy", "explain", "/a/../b.css"]);
    assert!(out.contains("400"), "{out}");
    // Streaming manifests change with every live segment: a second, not the media week.
    for path in ["/live/index.m3u8", "/vod/manifest.mpd"] {
        let (_, out, _) = run(&["policy", "explain", path]);
        assert!(
            out.contains("\"manifests\"") && out.contains("public, max-age=1\n"),
            "{path}: {out}"
        );
    }
}

/// An S3 source whose environment names no credentials passes `check-config` (on EC2 they
/// come from the instance metadata service) but is warned about, since anywhere else every
/// request would fail.
#[test]
fn check_config_warns_of_an_s3_source_without_credentials() {
    let check = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "check-config",
            "s3://assets/site",
            "--s3-region",
            "eu-west-1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
        for (name, _) in std::env::vars() {
            if name.starts_with("AWS_") {
                cmd.env_remove(name);
            }
        }
        let out = cmd.envs(env.iter().copied()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: s3://assets: no credentials") && err.contains("AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    for env in [
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ][..],
        &[("AWS_SKIP_SIGNATURE", "true")],
        &[("AWS_SKIP_SIGNATURE", "1")],
        &[(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/x",
        )],
    ] {
        let (code, err) = check(env);
        assert_eq!(code, Some(0), "{env:?}: {err}");
        assert!(!err.contains("no credentials"), "{env:?}: {err}");
    }
}

/// `policy explain` resolves the server's settings: the policies named in a `--config` file,
/// the private prefix (with and without a signing secret), and dotfiles.
#[test]
fn policy_explain_follows_the_servers_settings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cdn.toml");
    let strict = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/examples/strict-cdn.toml"
    );
    std::fs::write(
        &cfg,
        format!("policies = {strict:?}\nprivate_prefix = \"private/\"\n"),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    let (code, out, err) = run(&["policy", "explain", "/style.css", "--config", cfg]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("strict-cdn.toml") && out.contains("cdn-cache-control"),
        "{out}"
    );

    // No secret: the prefix is hidden, whatever the rules say.
    let (code, out, _) = run(&["policy", "explain", "/private/report.pdf", "--config", cfg]);
    assert_eq!(code, 0);
    assert!(
        out.contains("always 404") && !out.contains("gives:"),
        "{out}"
    );
    let (_, out, _) = run(&["policy", "explain", "/private", "--config", cfg]);
    assert!(out.contains("always 404"), "the prefix's folder too: {out}");
    let (_, out, _) = run(&["policy", "explain", "/privately.css", "--config", cfg]);
    assert!(!out.contains("private prefix"), "{out}");

    // With a secret: 403 unsigned, and the override of the rule's fields.
    let secret = "0123456789abcdef0123456789abcdef-secret";
    let (code, out, err) = run(&[
        "policy",
        "explain",
        "/private/report.pdf",
        "--config",
        cfg,
        "--signing-secret",
        secret,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("403") && out.contains("private, no-cache") && out.contains("gives:"),
        "{out}"
    );

    // Dotfiles follow the setting.
    let (_, out, _) = run(&["policy", "explain", "/.well-known/x.txt", "--config", cfg]);
    assert!(out.contains("gives:"), "{out}");
    let (_, out, _) = run(&["policy", "explain", "/.env", "--config", cfg]);
    assert!(out.contains("404"), "{out}");
    let (_, out, _) = run(&[
        "policy",
        "explain",
        "/.env",
        "--config",
        cfg,
        "--serve-dotfiles",
    ]);
    assert!(out.contains("gives:"), "{out}");

    // Sources do not matter: no `./public` where it runs, or one named in the file.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["policy", "explain", "/a.css", "--store", "/no/such/folder"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("gives:"));

    // A second path would be taken as a source: refused rather than ignored.
    let (code, _, err) = run(&["policy", "explain", "/a.css", "/b.css"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("one PATH"), "{err}");
}

#[tokio::test]
async fn signed_urls_open_private_objects_and_nothing_else() {
    let secret = "0123456789abcdef0123456789abcdef-secret";
    let (code, out, err) = run(&[
        "sign",
        "/private/report.txt",
        "--ttl",
        "1h",
        "--secret",
        secret,
    ]);
    assert_eq!(code, 0, "{err}");
    let signed = out.trim().to_string();
    assert!(
        signed.starts_with("/private/report.txt?expires="),
        "{signed}"
    );
    let dir = local_fixtures();
    let mut a = args(dir.path());
    a.private_prefix = Some("private/".into());
    a.signing_secret = Some(secret.into());
    let srv = start(a, None).await;
    let res = client().get(srv.url(&signed)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    assert_eq!(res.text().await.unwrap(), "private report\n");
    for bad in [
        "/private/report.txt".to_string(),
        signed.replace("sig=", "sig=00"),
        "/private/report.txt?expires=1&sig=00".to_string(),
    ] {
        let res = client().get(srv.url(&bad)).send().await.unwrap();
        assert_eq!(res.status(), 403, "{bad}");
    }
    srv.stop().await;
    let (code, _, err) = run(&["sign", "/x", "--secret", "short"]);
    assert_ne!(code, 0);
    assert!(err.contains("32"), "{err}");
}

/// The access log as an operator reads it: one JSON line per request, whose `bytes` are the
/// body the client got. A compression stream's length is known only when it ends, so its
/// line is written then (before, it said 0), also when the client leaves before the end;
/// every other line at the response head.
#[tokio::test]
async fn the_access_log_has_one_line_per_request_with_the_bytes_sent() {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let original = css_of(600_000);
    std::fs::write(dir.path().join("big.css"), &original).unwrap();
    std::fs::write(dir.path().join("small.txt"), b"hello, log\n").unwrap();
    // Hex digits compress to about half: a stream far longer than the sockets' buffers, so a
    // client that stops reading and leaves makes the server give the stream up midway.
    let mut x = 1u64;
    let noisy: String = (0..12_000_000)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if i % 64 == 63 {
                '\n'
            } else {
                char::from(b"0123456789abcdef"[(x >> 60) as usize])
            }
        })
        .collect();
    std::fs::write(dir.path().join("huge.css"), &noisy).unwrap();
    let port = free_port();
    let mut child = spawn_json_logging(
        dir.path(),
        port,
        &["--access-log", "--cache-max-object", "64KiB"],
    )
    .await;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let c = client();
    let get = |path: &'static str, encoding: Option<&'static str>, head: bool| {
        let c = c.clone();
        let url = url(path);
        async move {
            let mut req = if head { c.head(url) } else { c.get(url) };
            if let Some(e) = encoding {
                req = req.header("accept-encoding", e);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            let streamed = res.headers().get("content-length").is_none();
            (res.bytes().await.unwrap().len() as u64, streamed)
        }
    };
    // (path, bytes the log must show) in the order of the requests.
    let mut expected = Vec::new();
    let (gzip, streamed) = get("/big.css", Some("gzip"), false).await;
    assert!(
        streamed && gzip > 0 && gzip < original.len() as u64 / 2,
        "a compression stream"
    );
    expected.push(("/big.css", gzip));
    let (identity, streamed) = get("/big.css", None, false).await;
    assert!(!streamed && identity == original.len() as u64);
    expected.push(("/big.css", identity));
    let (head, _) = get("/big.css", Some("gzip"), true).await;
    assert_eq!(head, 0);
    expected.push(("/big.css", 0));
    let (small, _) = get("/small.txt", None, false).await;
    expected.push(("/small.txt", small));
    let (huge, streamed) = get("/huge.css", Some("gzip"), false).await;
    assert!(
        streamed && huge > 4 * 1024 * 1024,
        "a long compression stream: {huge}"
    );
    expected.push(("/huge.css", huge));
    // The same stream again, from a client that reads the head and a little, then leaves.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(b"GET /huge.css HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < 64 * 1024 {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
    }

    let mut seen: Vec<(String, u64)> = Vec::new();
    let total = expected.len() + 1; // and the abandoned stream's
    let mut next_access = async || -> Option<(String, u64)> {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["target"] == "access" {
                assert_eq!(v["status"], 200, "{line}");
                let path = v["path"].as_str().unwrap().to_string();
                return Some((path, v["bytes"].as_u64().unwrap()));
            }
        }
        None
    };
    while seen.len() < total {
        let line = tokio::time::timeout(Duration::from_secs(10), next_access()).await;
        let Ok(Some(line)) = line else {
            panic!("missing access-log lines: saw {seen:?}, want {expected:?} and one more");
        };
        seen.push(line);
    }
    let extra = tokio::time::timeout(Duration::from_millis(500), next_access()).await;
    assert!(
        !matches!(extra, Ok(Some(_))),
        "more than one line per request: {seen:?} then {extra:?}"
    );
    // The abandoned stream: a line of its own, with what it produced before it was given up.
    let abandoned = seen
        .iter()
        .position(|(p, b)| p == "/huge.css" && *b < huge)
        .unwrap_or_else(|| panic!("no line for the abandoned stream: {seen:?}"));
    let (_, produced) = seen.remove(abandoned);
    assert!(
        produced >= 60 * 1024,
        "it produced at least what the client read: {produced}"
    );
    // A stream's line is written when it ends, which may come after the next request's.
    let mut want: Vec<(String, u64)> = expected.iter().map(|(p, b)| (p.to_string(), *b)).collect();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
    child.kill().await.unwrap();
}

/// Without `--access-log` no request is logged: not an answered one, and not as unanswered
/// (the guard that logs requests dropped before their answer exists only with the log on).
#[tokio::test]
async fn without_the_access_log_no_request_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.txt"), b"hello\n").unwrap();
    let port = free_port();
    let mut child = spawn_json_logging(dir.path(), port, &[]).await;
    let c = client();
    for path in ["/small.txt", "/missing.txt"] {
        let res = c
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        res.bytes().await.unwrap();
    }
    child.kill().await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listening"), "the log was read: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(r#""target":"access""#))
        .collect();
    assert!(lines.is_empty(), "access lines with the log off: {lines:?}");
}

/// SIGTERM drains (up to the drain timeout); a second SIGTERM, or Ctrl-C twice, ends the drain
/// at once, as whoever sends it means, and the log says how many connections it cut. An
/// unknown `CDN_ORIGIN_*` variable is named in the log instead of being ignored silently.
#[tokio::test]
async fn a_second_sigterm_ends_the_drain_at_once() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), vec![7u8; 64 * 1024 * 1024]).unwrap();
    let port = free_port();
    let mut child = json_logging(dir.path(), port, &["--drain-timeout", "60s"])
        .env("CDN_ORIGIN_CACHESIZE", "1MiB")
        .spawn()
        .unwrap();
    wait_for(port).await;
    // A download its client does not read: in flight until the drain gives up on it.
    let mut stuck = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stuck
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap().to_string();
    let term = || Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    term();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still draining after one SIGTERM"
    );
    let asked = std::time::Instant::now();
    term();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the second SIGTERM ends the drain")
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("closing the remaining connections now") && log.contains(r#""connections":1"#),
        "{log}"
    );
    assert!(log.contains("CDN_ORIGIN_CACHESIZE"), "{log}");
    drop(stuck);
}
