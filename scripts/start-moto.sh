#!/usr/bin/env bash
# Runs moto's S3-compatible server on loopback for the integration tests.
#
#   eval "$(scripts/start-moto.sh)"     # start (or reuse) and export the variables below
#   scripts/start-moto.sh env           # print the exports of the running server again
#   scripts/start-moto.sh status        # exit 0 when the server we started answers
#   scripts/start-moto.sh stop          # stop it
#
# `start` picks a free port on 127.0.0.1, launches `.venv/bin/moto_server -H 127.0.0.1 -p PORT`
# in the background (log: target/moto/moto.log), waits until it answers HTTP (at most
# MOTO_START_TIMEOUT seconds, default 30), records target/moto/pid and target/moto/port, and
# prints on stdout:
#
#   export CDN_ORIGIN_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
#   export CDN_ORIGIN_TEST_MOTO_BIN=/abs/path/.venv/bin/moto_server
#   export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
#
# Everything else goes to stderr, so `eval "$(...)"` only sees the exports. If a server started
# by this script is already answering, `start` reuses it.
#
# For tests:
# - The server is shared by the whole run and keeps its state until it stops: each test creates
#   its own bucket with a unique name (moto accepts any credentials; path-style requests and
#   plain HTTP, so an object_store client needs allow_http and virtual_hosted_style = false).
# - A test that must stop the S3 server mid-test (store outage, timeout) starts its own:
#   spawn `$CDN_ORIGIN_TEST_MOTO_BIN -H 127.0.0.1 -p PORT` on a port it chose (bind 127.0.0.1:0,
#   read the port, drop the listener), poll `http://127.0.0.1:PORT/` until it answers (under a
#   second here; bound the wait), and kill the child when done. It answers GET / with
#   ListAllMyBucketsResult XML.
# - `POST http://127.0.0.1:PORT/moto-api/reset` empties a moto server.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly REPO_ROOT="$PWD"
readonly MOTO_BIN="$REPO_ROOT/.venv/bin/moto_server"
readonly PYTHON="$REPO_ROOT/.venv/bin/python"
readonly STATE_DIR="$REPO_ROOT/target/moto"
readonly PID_FILE="$STATE_DIR/pid"
readonly PORT_FILE="$STATE_DIR/port"
readonly LOG_FILE="$STATE_DIR/moto.log"
readonly START_TIMEOUT="${MOTO_START_TIMEOUT:-30}"

log() { printf 'start-moto: %s\n' "$*" >&2; }
die() { printf 'start-moto: error: %s\n' "$*" >&2; exit 1; }

# Exit 0 when an HTTP server answers on 127.0.0.1:$1 (any status counts: it is up).
answers() {
    "$PYTHON" - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1)
except urllib.error.HTTPError:
    pass
PY
}

free_port() {
    "$PYTHON" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

running_pid() {
    # Prints the PID of the server this script started, if it is still alive.
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    # A recycled PID belongs to someone else: only ever signal our moto_server.
    grep -q moto_server "/proc/$pid/cmdline" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

print_env() {
    local port="$1"
    printf 'export CDN_ORIGIN_TEST_S3_ENDPOINT=http://127.0.0.1:%s\n' "$port"
    printf 'export CDN_ORIGIN_TEST_MOTO_BIN=%q\n' "$MOTO_BIN"
    printf 'export AWS_ACCESS_KEY_ID=testing\n'
    printf 'export AWS_SECRET_ACCESS_KEY=testing\n'
    printf 'export AWS_REGION=us-east-1\n'
}

status() {
    local port
    running_pid >/dev/null || return 1
    port="$(cat "$PORT_FILE" 2>/dev/null)" || return 1
    [[ "$port" =~ ^[0-9]+$ ]] && answers "$port"
}

stop() {
    local pid
    if pid="$(running_pid)"; then
        kill "$pid" 2>/dev/null || true
        # Werkzeug exits promptly on SIGTERM; give it 5 s, then insist.
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped moto_server (pid $pid)"
    fi
    rm -f "$PID_FILE" "$PORT_FILE"
}

start() {
    [[ -x "$MOTO_BIN" ]] || die "$MOTO_BIN not found; run scripts/setup.sh first"
    if status; then
        local port
        port="$(cat "$PORT_FILE")"
        log "reusing moto_server on 127.0.0.1:$port (pid $(cat "$PID_FILE"))"
        print_env "$port"
        return 0
    fi
    stop 2>/dev/null # clear stale state from a server that died
    mkdir -p "$STATE_DIR"

    # Another process may take the port between our probe and moto's bind; try a few ports.
    local attempt port pid deadline
    for attempt in 1 2 3; do
        port="$(free_port)"
        # No inherited stdout: `eval "$(...)"` waits until every writer of the pipe is gone.
        # (A background job of a non-interactive shell ignores SIGINT, so a Ctrl-C in the
        # terminal leaves it to the caller's EXIT trap to stop.)
        "$MOTO_BIN" -H 127.0.0.1 -p "$port" </dev/null >"$LOG_FILE" 2>&1 &
        pid=$!
        printf '%s\n' "$pid" >"$PID_FILE"
        printf '%s\n' "$port" >"$PORT_FILE"
        deadline=$((SECONDS + START_TIMEOUT))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            if answers "$port"; then
                log "moto_server on 127.0.0.1:$port (pid $pid, log $LOG_FILE)"
                print_env "$port"
                return 0
            fi
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            stop
            die "moto_server did not answer on 127.0.0.1:$port within ${START_TIMEOUT}s; see $LOG_FILE"
        fi
        log "moto_server exited during start (attempt $attempt); log:"
        tail -n 5 "$LOG_FILE" >&2 || true
        rm -f "$PID_FILE" "$PORT_FILE"
    done
    die "moto_server failed to start; see $LOG_FILE"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env)
        status || die "no moto_server started by this script is running"
        print_env "$(cat "$PORT_FILE")"
        ;;
    *)
        printf 'usage: %s [start|stop|status|env]\n' "$0" >&2
        exit 2
        ;;
esac
