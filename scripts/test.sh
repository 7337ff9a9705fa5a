#!/usr/bin/env bash
# The test command: runs every test of cdn-origin against the real services they need.
#
#   scripts/test.sh                 # all tests (doc tests, then unit + integration tests)
#   scripts/test.sh -E 'test(range)'   # extra arguments go to the test runner
#
# 1. Starts moto's S3-compatible server (scripts/start-moto.sh; needs scripts/setup.sh once)
#    and exports CDN_ORIGIN_TEST_S3_ENDPOINT, CDN_ORIGIN_TEST_MOTO_BIN and AWS_* test
#    credentials; stops it again on exit if this script started it.
# 2. Checks PostgreSQL on 127.0.0.1:5432 (under CI it tries to start the local cluster) and
#    exports DATABASE_URL_TEST (kept if already set).
# 3. Runs the doc tests (`cargo test --doc`), then the unit and integration tests with
#    cargo-nextest when installed, else `cargo test --all-targets`. The main runner goes last so
#    that its summary closes the output.
#
# Without moto or PostgreSQL the tests that need them print why and skip; with CI set they fail,
# and so does this script, early and with the reason.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }
ci() { [[ -n "${CI:-}" && "${CI}" != false && "${CI}" != 0 ]]; }

# ---------------------------------------------------------------------------------------------
# S3-compatible server (moto)
# ---------------------------------------------------------------------------------------------
# Never let a developer's real AWS settings reach the tests: they talk to moto only.
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT AWS_ENDPOINT_URL AWS_DEFAULT_REGION \
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_WEB_IDENTITY_TOKEN_FILE

started_moto=0
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [[ "$started_moto" -eq 1 ]]; then
        scripts/start-moto.sh stop || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -x .venv/bin/moto_server ]]; then
    if ! scripts/start-moto.sh status; then
        started_moto=1
    fi
    moto_env="$(scripts/start-moto.sh start)" || die "could not start moto_server"
    eval "$moto_env"
elif ci; then
    die ".venv/bin/moto_server missing: run scripts/setup.sh first"
else
    log "moto not installed (run scripts/setup.sh); S3 tests will skip"
fi

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
pg_up() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p 5432 -t 2
    else
        (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
    fi
}

if ! pg_up && ci; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
        for version in /etc/postgresql/*/; do
            version="$(basename "$version")"
            log "PostgreSQL is down; starting cluster $version/main"
            pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        done
        for _ in $(seq 1 30); do
            pg_up && break
            sleep 1
        done
    fi
fi
export DATABASE_URL_TEST="${DATABASE_URL_TEST:-postgres://postgres@127.0.0.1:5432/test}"
if pg_up; then
    # The machines here have a `test` database; make it when a cluster lacks it.
    if command -v psql >/dev/null 2>&1 &&
        ! psql -h 127.0.0.1 -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1; then
        log "creating database test"
        createdb -h 127.0.0.1 -U postgres test || true
    fi
elif ci; then
    die "PostgreSQL is not reachable on 127.0.0.1:5432"
else
    log "PostgreSQL not reachable on 127.0.0.1:5432; database tests will skip"
fi

# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
status=0

log "doc tests: cargo test --doc"
cargo test --doc || status=$?

if cargo nextest --version >/dev/null 2>&1; then
    log "cargo nextest run --all-targets"
    cargo nextest run --all-targets --no-fail-fast "$@" || status=$?
else
    log "cargo-nextest not found; cargo test --all-targets"
    cargo test --all-targets --no-fail-fast "$@" || status=$?
fi

exit "$status"
