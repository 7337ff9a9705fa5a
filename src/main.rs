//! The `cdn-origin` command: parse settings, set up logging, run the server or a subcommand.

use std::io::IsTerminal;
use std::process::ExitCode;

use cdn_origin::app::{App, load_policies};
use cdn_origin::config::{Cli, Command, LogFormat, PolicyCommand, ServeArgs, Settings};
use cdn_origin::server::{Server, shutdown_signal};
use clap::Parser;

/// mimalloc instead of glibc's malloc: a response makes a few dozen small, short-lived
/// allocations (hyper's buffers, header maps), and on the load tests glibc's `_int_malloc`,
/// `_int_free` and `malloc_consolidate` were 6 % of the server's samples. mimalloc's
/// per-thread free lists make them cheaper and keep memory from piling up in per-thread
/// arenas. See benches/README.md for the measurement.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::CheckConfig(args)) => check_config(args),
            Some(Command::Policy {
                action: PolicyCommand::Explain { path, settings },
            }) => explain(&path, &settings),
            Some(Command::Report {
                since,
                database_url,
            }) => match cdn_origin::report::report(&database_url, since.0).await {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("report: {e:#}")),
            },
            Some(Command::Sign {
                path,
                ttl,
                secret,
                base,
            }) => match cdn_origin::signing::sign(secret.as_bytes(), &path, ttl.0) {
                Ok(url) => {
                    println!("{}{url}", base.trim_end_matches('/'));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            },
            Some(Command::Healthcheck { url }) => healthcheck(&url).await,
        }
    })
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file, journald or `docker logs` would
    // keep the escape codes as text. NO_COLOR (no-color.org) turns them off there too.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

async fn serve(args: ServeArgs) -> ExitCode {
    let settings = match Settings::resolve(&args) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    init_tracing(settings.log_format);
    for name in cdn_origin::config::unknown_env_vars() {
        tracing::warn!(variable = %name, "not a setting's variable (misspelt?); ignored");
    }
    for warning in settings
        .sources
        .iter()
        .filter_map(cdn_origin::store::credentials_warning)
    {
        tracing::warn!("{warning}");
    }
    let app = match App::build(settings, None) {
        Ok(app) => app,
        Err(e) => return fail(&e),
    };
    let server = match Server::bind(app.clone()).await {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", app.settings.listen)),
    };
    let writer = app.spawn_background().await;
    cdn_origin::policy::spawn_reload_on_sighup(app.policies.clone());
    tracing::info!(
        sources = %app.settings.sources.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
        version = env!("CARGO_PKG_VERSION"),
        "cdn-origin starting"
    );
    // The second signal's listener starts with the drain (a future does nothing until polled),
    // so the first signal does not count for it.
    server.run_with(shutdown_signal(), shutdown_signal()).await;
    app.shutdown_background(writer).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn check_config(args: ServeArgs) -> ExitCode {
    let settings = match Settings::resolve(&args) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    for name in cdn_origin::config::unknown_env_vars() {
        eprintln!("warning: {name} is not a setting's variable (misspelt?); ignored");
    }
    if let Err(e) = load_policies(&settings.policies, settings.policies_explicit) {
        return fail(&e);
    }
    for spec in &settings.sources {
        if let Err(e) = cdn_origin::store::Source::build(spec, &settings) {
            return fail(&format!("source {spec}: {e}"));
        }
        if let Some(warning) = cdn_origin::store::credentials_warning(spec) {
            eprintln!("warning: {warning}");
        }
    }
    println!(
        "configuration OK: {} source(s), listening on {}",
        settings.sources.len(),
        settings.listen
    );
    ExitCode::SUCCESS
}

/// `policy explain PATH`: the rule the server would choose for PATH, which is mapped as the
/// server maps a request's target (query dropped, percent-decoded once, `/dir/` to
/// `dir/index.html`), so the content type is that of the object it would serve; under the
/// settings `args` resolve to, as for `serve`.
fn explain(path: &str, args: &ServeArgs) -> ExitCode {
    if let Some(extra) = args.sources.first() {
        return fail(&format!(
            "policy explain: one PATH at a time (sources do not change the answer): {extra}"
        ));
    }
    // Sources do not change the answer, so a missing `./public` (or an unreachable store)
    // must not stop it: they are set aside for one that needs nothing.
    let args = ServeArgs {
        sources: vec![cdn_origin::config::StoreSpec::Memory],
        stores: Vec::new(),
        ..args.clone()
    };
    let settings = match Settings::resolve(&args) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let handle = match load_policies(&settings.policies, settings.policies_explicit) {
        Ok(handle) => handle,
        Err(e) => return fail(&e),
    };
    let target = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    use cdn_origin::request::PathError;
    let mapped = match target.parse::<http::Uri>() {
        Ok(uri) => cdn_origin::request::map_path(&uri, settings.serve_dotfiles),
        Err(_) => Err(PathError::Bad("not a request target")),
    };
    let mapped = match mapped {
        Ok(m) => m,
        Err(e) => {
            let answer = match e {
                PathError::Bad(_) => "400, no-store",
                PathError::Hidden(_) => "404, with [errors] (dotfiles: unless serve_dotfiles)",
                PathError::TooLong => "414, no-store",
            };
            println!("path {target:?}: {e}; the server answers {answer}");
            return ExitCode::SUCCESS;
        }
    };
    let mime = cdn_origin::content_type::essence_for(mapped.key());
    if mapped.key() != mapped.path().trim_start_matches('/') {
        println!("serves the key {:?}", mapped.key());
    }
    let access = cdn_origin::signing::AccessRules::new(
        settings.private_prefix.clone(),
        settings.signing_secret.clone(),
    );
    if access.is_private(mapped.key()) {
        let prefix = settings.private_prefix.as_deref().unwrap_or_default();
        if settings.signing_secret.is_some() {
            println!(
                "under the private prefix {prefix:?}: 403 without a valid signature; a signed \
                 URL gets `Cache-Control: private, no-cache` in place of the rule's caching \
                 fields (no CDN-Cache-Control, no Surrogate-Key)"
            );
        } else {
            println!(
                "under the private prefix {prefix:?}, with no signing secret set: always 404, \
                 with [errors]"
            );
            return ExitCode::SUCCESS;
        }
    }
    print!("{}", handle.current().explain(mapped.path(), &mime));
    if !mapped.is_index && !mapped.key().rsplit('/').next().unwrap_or("").contains('.') {
        println!(
            "(if {:?} is no object but {:?} is, the answer is a 308 to {:?}, with [errors])",
            mapped.key(),
            format!("{}/index.html", mapped.key()),
            format!("{}/", mapped.path())
        );
    }
    ExitCode::SUCCESS
}

/// A minimal HTTP/1.0 GET so the container image needs no curl. Exit 0 on a 200; else 1, with
/// the reason on stderr (what a `docker inspect` of a failing health check shows).
async fn healthcheck(url: &str) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(parsed) = url::Url::parse(url) else {
        return fail("healthcheck: bad URL");
    };
    // The address to connect to (an IPv6 literal without its brackets) and the Host field.
    let connect_host = match parsed.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Domain(d)) => d.to_string(),
        None => "127.0.0.1".to_string(),
    };
    let host_field = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => connect_host.clone(),
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((connect_host.as_str(), port)).await?;
        let req = format!(
            "GET {} HTTP/1.0\r\nHost: {host_field}\r\n\r\n",
            parsed.path()
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await?;
        let line = String::from_utf8_lossy(&buf[..n]);
        Ok::<String, std::io::Error>(line.lines().next().unwrap_or("").to_string())
    };
    let why = match tokio::time::timeout(std::time::Duration::from_secs(3), attempt).await {
        Ok(Ok(status))
            if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") =>
        {
            return ExitCode::SUCCESS;
        }
        Ok(Ok(status)) if status.is_empty() => "closed without an answer".to_string(),
        Ok(Ok(status)) => format!("answered `{status}`"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 3 s".to_string(),
    };
    eprintln!("healthcheck: {url}: {why}");
    ExitCode::from(1)
}
