#!/usr/bin/env bash
# One-command setup for cdn-origin on a fresh Debian (bookworm) machine.
#
#   scripts/setup.sh            # install what is missing, create .venv/, pre-build the tests
#   SETUP_SKIP_BUILD=1 scripts/setup.sh   # everything but the cargo pre-build
#
# What it does, each step only when needed (so running it twice is cheap and safe):
#   1. Debian packages: prometheus (for promtool, used by scripts/check-prometheus.sh), nginx,
#      its brotli_static module, brotli and wrk (benchmarks, benches/load/), openssl (test
#      certificates for the database TLS test), iproute2 (ss, for the listen-backlog test),
#      python3-venv (only when python3 cannot make a venv).
#      `apt-get update` runs once, and only if something has to be installed.
#   2. .venv/ in the repository (gitignored) with moto[server], the S3-compatible server the
#      integration tests talk to (see scripts/start-moto.sh).
#   3. `cargo test --all-targets --no-run`, so the first `scripts/test.sh` does not start with a
#      full build. It builds the same artifacts that cargo-nextest and `cargo test` use.
#
# Works without stdin, as root (the machines here) or as a user with sudo, and with CI=true.
set -euo pipefail

# Pinned: moto's S3 behaviour (ETag format, range handling) is what the tests assert against.
readonly MOTO_SPEC='moto[server]==5.2.5'
readonly MOTO_VERSION='5.2.5'

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly REPO_ROOT="$PWD"

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------------------------
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    fi
fi

apt_updated=0
apt_install() {
    # Installs the given packages; `apt-get update` at most once per run.
    if ! command -v apt-get >/dev/null 2>&1; then
        log "apt-get not found; install these yourself: $*"
        return 1
    fi
    if [[ "$(id -u)" -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        log "not root and no sudo; install these yourself: $*"
        return 1
    fi
    if [[ "$apt_updated" -eq 0 ]]; then
        log "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || return 1
        apt_updated=1
    fi
    log "apt-get install $*"
    # Packages such as nginx and prometheus start their daemon on install; we only want the
    # binaries. Debian's images ship a policy-rc.d that forbids that; add one for this install
    # only when the machine has none.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "$@" </dev/null >/dev/null || rc=$?
    if [[ "$made_policy" -eq 1 ]]; then
        "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    fi
    return "$rc"
}

# command -> Debian package that provides it
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# tests/cdn.rs puts real CDN caches in front of the server: Varnish and nginx's proxy_cache.
command -v varnishd >/dev/null 2>&1 || [[ -x /usr/sbin/varnishd ]] || missing+=(varnish)
# Benchmarks: the brotli CLI makes the .br sidecars, and nginx's brotli_static module lets the
# nginx peer serve them too (an honest comparison for precompressed CSS).
command -v brotli >/dev/null 2>&1 || missing+=(brotli)
# The database TLS test makes its certificates with the openssl command line.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The listen-backlog test reads the listener's queue length with ss.
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
dpkg -s libnginx-mod-http-brotli-static >/dev/null 2>&1 || missing+=(libnginx-mod-http-brotli-static)

# The venv module needs ensurepip, which Debian splits into python3-venv. A python3 from
# elsewhere (pyenv here) has it built in.
PYTHON="$(command -v python3 || true)"
[[ -n "$PYTHON" ]] || die "python3 not found"
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        PYTHON=/usr/bin/python3
    else
        dpkg -s python3-venv >/dev/null 2>&1 || missing+=(python3-venv)
        PYTHON=/usr/bin/python3
    fi
fi

if [[ ${#missing[@]} -gt 0 ]]; then
    if ! apt_install "${missing[@]}"; then
        # wrk and brotli only serve the benchmarks; do not fail the test setup for them.
        log "installing ${missing[*]} together failed; retrying the ones the tests need"
        required=()
        for pkg in "${missing[@]}"; do
            case "$pkg" in prometheus | python3-venv | openssl | iproute2 | nginx | varnish) required+=("$pkg") ;; esac
        done
        if [[ ${#required[@]} -gt 0 ]]; then
            apt_install "${required[@]}" || die "could not install ${required[*]}"
        fi
        log "warning: benchmark tools may be missing (nginx, wrk, brotli)"
    fi
else
    log "system packages present (promtool, nginx, varnish, brotli, wrk, openssl, ss, python venv)"
fi

# ---------------------------------------------------------------------------------------------
# 2. Python virtualenv with moto
# ---------------------------------------------------------------------------------------------
VENV="$REPO_ROOT/.venv"
moto_ok() {
    [[ -x "$VENV/bin/moto_server" ]] &&
        "$VENV/bin/python" -c "import sys, moto; sys.exit(moto.__version__ != '$MOTO_VERSION')" \
            >/dev/null 2>&1
}
if moto_ok; then
    log "moto $MOTO_VERSION present in .venv"
else
    # A venv whose interpreter is gone (python upgraded or removed) cannot be repaired in place.
    if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c 'pass' >/dev/null 2>&1; then
        log "recreating broken .venv"
        "$PYTHON" -m venv --clear "$VENV"
    elif [[ ! -d "$VENV" ]]; then
        log "creating .venv with $PYTHON"
        "$PYTHON" -m venv "$VENV"
    fi
    log "installing $MOTO_SPEC into .venv"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q "$MOTO_SPEC" \
        </dev/null
    moto_ok || die "moto_server not usable in .venv after install"
fi

# ---------------------------------------------------------------------------------------------
# 3. Pre-build the test binaries
# ---------------------------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"
if [[ "${SETUP_SKIP_BUILD:-0}" == 1 ]]; then
    log "SETUP_SKIP_BUILD=1: skipping cargo pre-build"
else
    log "cargo test --all-targets --no-run"
    cargo test --all-targets --no-run --quiet
fi

log "done. Run the tests with: scripts/test.sh"
