# cdn-origin container image.
#
#   docker build -t cdn-origin .
#   docker run --rm -p 8080:8080 -v "$PWD/public:/srv/public:ro" cdn-origin
#
# Two stages: a Rust builder that caches the compiled dependencies in their own layer, and a
# small Debian runtime with only the binary, CA certificates (TLS to S3/GCS/Azure, and to
# PostgreSQL with sslrootcert=system) and the
# shipped cache policies. The release profile in Cargo.toml (thin LTO, one codegen unit) is the
# one the benchmarks in benches/ measure.

# ---------------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# Dependency layer: rebuilt only when Cargo.toml or Cargo.lock change. It compiles every
# dependency against stub sources. Explicit bench/test/example/bin tables are dropped from this
# copy of the manifest, since their files are not here yet (their dependencies are dev-only or
# the same); `//!` lines keep a `missing_docs` lint quiet on the stubs. Then the stub crate's own
# artifacts are removed, so that the real sources below are always compiled, whatever their
# modification times.
COPY Cargo.toml Cargo.lock ./
RUN awk '/^\[\[(bench|test|example|bin)\]\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' \
        Cargo.toml > Cargo.deps.toml \
    && mv Cargo.deps.toml Cargo.toml \
    && mkdir -p src \
    && printf '//! Dependency-cache stub.\nfn main() {}\n' > src/main.rs \
    && printf '//! Dependency-cache stub.\n' > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/cdn-origin target/release/.fingerprint/cdn-origin-* \
        target/release/deps/cdn_origin-* target/release/deps/libcdn_origin-*

# The real sources (see .dockerignore) and the real manifest.
COPY . .
RUN cargo build --release --locked --bin cdn-origin \
    && install -m 0755 target/release/cdn-origin /usr/local/bin/cdn-origin

# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric non-root user, so that `runAsNonRoot` checks can verify it.
RUN groupadd --system --gid 10001 cdn \
    && useradd --system --uid 10001 --gid cdn --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cdn \
    && mkdir -p /srv/public

COPY --from=builder /usr/local/bin/cdn-origin /usr/local/bin/cdn-origin
# Shipped policies; WORKDIR makes the default relative `policies/` folder resolve to them.
COPY policies/ /etc/cdn-origin/policies/
WORKDIR /etc/cdn-origin

USER 10001:10001
EXPOSE 8080
# SIGTERM starts the graceful drain (in-flight responses finish, then exit 0). Give `docker stop
# --time` (default 10 s) a few seconds more than the drain timeout (default 10 s).
STOPSIGNAL SIGTERM
# slim has no curl: the binary checks itself and exits 0 (healthy) or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["cdn-origin", "healthcheck", "--url", "http://127.0.0.1:8080/health"]

ENTRYPOINT ["cdn-origin"]
CMD ["--listen", "0.0.0.0:8080", "/srv/public"]
