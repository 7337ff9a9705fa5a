#!/usr/bin/env bash
# Load test of cdn-origin, optionally side by side with nginx (issue 6). One command:
#
#   benches/load/run.sh                              # cdn-origin alone
#   benches/load/run.sh --compare nginx              # every scenario against both, with ratios
#   benches/load/run.sh --compare nginx --duration 10s --connections 64 --json out.json
#   benches/load/run.sh --compare nginx --rounds 3   # 3 rounds per scenario, median reported
#
# Options:
#   --compare nginx        also start Debian's nginx on the same files (tuned: sendfile,
#                          tcp_nopush, open_file_cache, gzip_static + brotli_static when the
#                          module is installed, keep-alive, 2 workers, access_log off)
#   --duration D           measured time per scenario and server (default 6s; `10s`, `1m`, `10`)
#   --rounds N             measure each scenario N times per server (default 1), alternating the
#                          order of the servers between rounds (ours first, then nginx first, ...)
#                          so slow drift of the machine cancels out; each server's row is its
#                          round with the median req/s (lower middle for even N), the ratios are
#                          the medians of the per-round ours/nginx ratios, the thresholds apply to
#                          every round, and the JSON keeps all rounds (results_by_round)
#   --connections N        connections of the hot scenarios (default 64)
#   --high-connections N   connections of the memory scenario (default 1000)
#   --cold-connections N   connections of the cold-miss scenario (default 8)
#   --cache-size SIZE      cdn-origin's --cache-size for the hot server (default 256MiB)
#   --only a,b             run only these scenarios (names as printed in the table)
#   --no-cold              skip the S3 scenario (no moto)
#   --no-build             use the existing target/release/cdn-origin
#   --strict-targets       also exit non-zero when an issue 6 point 4 target is missed
#   --json FILE            write the report as JSON (default benches/load/results/latest.json)
#   --p95-ms MS            threshold (default 100); --max-error-rate R (default 0.001 = 0.1 %)
#   --cold-p95-ms MS       p95 threshold of cold-s3 (default 300: its floor is moto's latency)
#
# Exit status: 0 when every scenario met the thresholds (p95 and error rate), 1 when one did
# not, 2 on a usage or setup error. Everything started here is stopped on exit (EXIT trap),
# including on Ctrl-C. With the defaults a --compare run takes about 2.5 minutes (10 scenarios x
# 2 servers x (6 s + 1 s warm-up) plus start-up); each round costs as much as that, so --rounds 3
# takes about 7 minutes. The first run also builds the release binary.
#
# What runs: benches/load/gen_assets.py generates the asset set into benches/load/results/assets
# (gitignored, reused while the generator is unchanged); cdn-origin serves it from the local
# folder on a free loopback port; for the cold scenario a second cdn-origin serves the same
# files from a bucket of the S3-compatible test server (moto, scripts/start-moto.sh) with the
# hot cache off, and nginx proxies the same bucket; benches/load/drive.py drives wrk
# (benches/load/wrk.lua) through the scenarios and reports. See benches/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
readonly REPO_ROOT="$PWD"
readonly LOAD_DIR="$REPO_ROOT/benches/load"
readonly RESULTS="$LOAD_DIR/results"

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 2; }

compare=""
duration=6
rounds=1
connections=64
high_connections=1000
cold_connections=8
cache_size=256MiB
only=""
cold=1
build=1
strict=()
json="$RESULTS/latest.json"
p95_ms=100
cold_p95_ms=300
max_error_rate=0.001

seconds() {
    # 10s, 1m, 10 -> seconds
    case "$1" in
        *ms) die "durations below a second are too short for a load run: $1" ;;
        *s) printf '%s' "${1%s}" ;;
        *m) printf '%s' "$(( ${1%m} * 60 ))" ;;
        *) printf '%s' "$1" ;;
    esac
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --compare) compare="${2:-}"; shift 2 ;;
        --compare=*) compare="${1#*=}"; shift ;;
        --duration) duration="$(seconds "${2:-}")"; shift 2 ;;
        --duration=*) duration="$(seconds "${1#*=}")"; shift ;;
        --rounds) rounds="${2:-}"; shift 2 ;;
        --rounds=*) rounds="${1#*=}"; shift ;;
        --connections) connections="${2:-}"; shift 2 ;;
        --high-connections) high_connections="${2:-}"; shift 2 ;;
        --cold-connections) cold_connections="${2:-}"; shift 2 ;;
        --cache-size) cache_size="${2:-}"; shift 2 ;;
        --only) only="${2:-}"; shift 2 ;;
        --no-cold) cold=0; shift ;;
        --no-build) build=0; shift ;;
        --strict-targets) strict=(--strict-targets); shift ;;
        --json) json="${2:-}"; shift 2 ;;
        --p95-ms) p95_ms="${2:-}"; shift 2 ;;
        --cold-p95-ms) cold_p95_ms="${2:-}"; shift 2 ;;
        --max-error-rate) max_error_rate="${2:-}"; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ -z "$compare" || "$compare" == nginx ]] || die "--compare supports only nginx"
[[ "$duration" =~ ^[0-9]+$ && "$duration" -ge 1 ]] || die "bad --duration"
[[ "$rounds" =~ ^[0-9]+$ && "$rounds" -ge 1 ]] || die "--rounds must be an integer >= 1"
for n in "$connections" "$high_connections" "$cold_connections"; do
    [[ "$n" =~ ^[0-9]+$ && "$n" -ge 2 ]] || die "connection counts must be integers >= 2"
done
[[ "$json" == /* ]] || json="$REPO_ROOT/$json"

command -v wrk >/dev/null || die "wrk not found: scripts/setup.sh, or apt-get install -y wrk"
command -v python3 >/dev/null || die "python3 not found"
NGINX="$(command -v nginx || true)"
[[ -n "$NGINX" || ! -x /usr/sbin/nginx ]] || NGINX=/usr/sbin/nginx
if [[ "$compare" == nginx && -z "$NGINX" ]]; then
    die "nginx not found: scripts/setup.sh, or apt-get install -y nginx"
fi
# wrk needs a descriptor per connection; so does each server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# Cleanup: stop exactly what this script started.
# ---------------------------------------------------------------------------------------------
WORK="$(mktemp -d -t cdn-origin-bench.XXXXXX)"
pids=()
started_moto=0
bucket=""
moto_endpoint=""
drive_pid=""

# shellcheck disable=SC2317  # called from the EXIT trap
stop_pid() {
    local pid="$1" _
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    set +e
    [[ -n "$drive_pid" ]] && stop_pid "$drive_pid"
    for pid in "${pids[@]}"; do
        stop_pid "$pid"
    done
    if [[ "$started_moto" -eq 1 ]]; then
        scripts/start-moto.sh stop
    elif [[ -n "$bucket" && -n "$moto_endpoint" ]]; then
        .venv/bin/python "$LOAD_DIR/s3_assets.py" delete "$moto_endpoint" "$bucket" 2>/dev/null
    fi
    if [[ "$rc" -ne 0 && -d "$WORK" ]]; then
        mkdir -p "$RESULTS/last-logs"
        cp "$WORK"/*.log "$WORK"/nginx/*.log "$RESULTS/last-logs/" 2>/dev/null
        log "server logs kept in $RESULTS/last-logs/"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until URL answers any HTTP status while PID lives (at most 30 s).
wait_http() {
    local url="$1" pid="$2" name="$3" _
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start; see its log below
$(tail -n 20 "$WORK/$name.log" "$WORK/nginx/error.log" 2>/dev/null)"
        if python3 - "$url" <<'PY' 2>/dev/null; then
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
PY
            return 0
        fi
        sleep 0.1
    done
    die "$name did not answer $url within 30 s"
}

# ---------------------------------------------------------------------------------------------
# Build and assets
# ---------------------------------------------------------------------------------------------
if [[ "$build" -eq 1 ]]; then
    log "cargo build --release (the profile in Cargo.toml: thin LTO, one codegen unit)"
    cargo build --release --quiet --bin cdn-origin || die "release build failed"
fi
BIN="$REPO_ROOT/target/release/cdn-origin"
[[ -x "$BIN" ]] || die "$BIN missing (drop --no-build)"

mkdir -p "$RESULTS"
python3 "$LOAD_DIR/gen_assets.py" "$RESULTS/assets" || die "asset generation failed"
SITE="$RESULTS/assets/site"

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
ours_port="$(free_port)"
"$BIN" --listen "127.0.0.1:$ours_port" --cache-size "$cache_size" "$SITE" \
    </dev/null >"$WORK/ours.log" 2>&1 &
ours_pid=$!
pids+=("$ours_pid")
wait_http "http://127.0.0.1:$ours_port/health" "$ours_pid" ours
log "cdn-origin on 127.0.0.1:$ours_port (pid $ours_pid, cache $cache_size)"
targets=(--target "ours=http://127.0.0.1:$ours_port")
extra=(--metrics "ours=http://127.0.0.1:$ours_port/metrics" --pid "ours=$ours_pid")

want_cold=0
if [[ "$cold" -eq 1 && ( -z "$only" || ",$only," == *,cold-s3,* ) ]]; then
    if [[ -x .venv/bin/moto_server ]]; then
        want_cold=1
    else
        log "warning: .venv/bin/moto_server missing (scripts/setup.sh): skipping cold-s3"
    fi
fi
if [[ "$want_cold" -eq 1 ]]; then
    scripts/start-moto.sh status || started_moto=1
    moto_env="$(scripts/start-moto.sh start)" || die "could not start moto"
    eval "$moto_env"
    moto_endpoint="$CDN_ORIGIN_TEST_S3_ENDPOINT"
    bucket="cdn-bench-$$"
    .venv/bin/python "$LOAD_DIR/s3_assets.py" upload "$moto_endpoint" "$bucket" "$SITE" ||
        die "upload to moto failed"
    cold_port="$(free_port)"
    # "Cold": the hot cache is off (--cache-size 0), so every request goes to the store.
    "$BIN" --listen "127.0.0.1:$cold_port" --cache-size 0 --store "s3://$bucket" \
        --s3-endpoint "$moto_endpoint" --s3-allow-http </dev/null >"$WORK/ours-cold.log" 2>&1 &
    cold_pid=$!
    pids+=("$cold_pid")
    wait_http "http://127.0.0.1:$cold_port/health" "$cold_pid" ours-cold
    log "cdn-origin (s3://$bucket, cache off) on 127.0.0.1:$cold_port (pid $cold_pid)"
    targets+=(--cold-target "ours=http://127.0.0.1:$cold_port")
    extra+=(--cold-metrics "ours=http://127.0.0.1:$cold_port/metrics" --cold-pid "ours=$cold_pid")
fi

if [[ "$compare" == nginx ]]; then
    nginx_port="$(free_port)"
    mkdir -p "$WORK/nginx/tmp"
    brotli_module=/usr/lib/nginx/modules/ngx_http_brotli_static_module.so
    {
        # Debian's nginx running as root would switch its workers to `nobody`; keep the user
        # that runs the benchmark so they can read the generated files.
        [[ "$(id -u)" -eq 0 ]] && echo "user root;"
        if [[ -f "$brotli_module" ]]; then
            echo "load_module $brotli_module;"
        else
            log "warning: libnginx-mod-http-brotli-static not installed: nginx serves gzip for the CSS scenario" >&2
        fi
        cat <<EOF
# One worker per core, as recommended (worker_processes auto on this machine).
worker_processes auto;
worker_rlimit_nofile 65536;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    log_not_found off;
    server_tokens off;
    sendfile on;
    sendfile_max_chunk 2m;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 100000;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_errors on;
    gzip_static on;
$([[ -f "$brotli_module" ]] && echo "    brotli_static on;")
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
$(if [[ "$want_cold" -eq 1 ]]; then
    cat <<UP
    upstream s3 { server ${moto_endpoint#http://}; keepalive 32; }
UP
fi)
    server {
        listen 127.0.0.1:$nginx_port;
        root $SITE;
$(if [[ "$want_cold" -eq 1 ]]; then
    cat <<LOC
        # The cold peer: every request goes to the bucket (no proxy cache).
        location /s3/ {
            proxy_pass http://s3/$bucket/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host ${moto_endpoint#http://};
        }
LOC
fi)
    }
}
EOF
    } >"$WORK/nginx/nginx.conf"
    "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
        </dev/null >"$WORK/nginx.log" 2>&1 &
    nginx_pid=$!
    pids+=("$nginx_pid")
    wait_http "http://127.0.0.1:$nginx_port/" "$nginx_pid" nginx
    log "nginx on 127.0.0.1:$nginx_port (master pid $nginx_pid)"
    targets+=(--target "nginx=http://127.0.0.1:$nginx_port")
    extra+=(--pid "nginx=$nginx_pid")
    if [[ "$want_cold" -eq 1 ]]; then
        targets+=(--cold-target "nginx=http://127.0.0.1:$nginx_port/s3")
        extra+=(--cold-pid "nginx=$nginx_pid")
    fi
fi

# ---------------------------------------------------------------------------------------------
# Drive
# ---------------------------------------------------------------------------------------------
mkdir -p "$(dirname "$json")"
settings="$(printf '{"cache_size": "%s", "compare": "%s", "cold_store": "%s"}' \
    "$cache_size" "${compare:-none}" "$([[ $want_cold -eq 1 ]] && echo "moto (S3-compatible), cache off" || echo none)")"
only_args=()
[[ -n "$only" ]] && only_args=(--only "$only")
python3 "$LOAD_DIR/drive.py" --manifest "$RESULTS/assets/manifest.json" "${targets[@]}" "${extra[@]}" \
    --duration "$duration" --rounds "$rounds" --connections "$connections" \
    --high-connections "$high_connections" --cold-connections "$cold_connections" --threads 2 \
    --p95-ms "$p95_ms" --cold-p95-ms "$cold_p95_ms" --max-error-rate "$max_error_rate" --cache-budget-mib "$(python3 -c "
import re, sys
m = re.fullmatch(r'(\d+)\s*([KMG]i?B?)?', sys.argv[1].strip(), re.I)
n, u = (int(m.group(1)), (m.group(2) or '').upper()) if m else (256 * 2**20, '')
mult = {'': 1, 'K': 1e3, 'KB': 1e3, 'KIB': 2**10, 'M': 1e6, 'MB': 1e6, 'MIB': 2**20,
        'G': 1e9, 'GB': 1e9, 'GIB': 2**30}.get(u, 1)
print(n * mult / 2**20)" "$cache_size")" \
    --settings "$settings" --json "$json" "${strict[@]}" "${only_args[@]}" &
drive_pid=$!
rc=0
wait "$drive_pid" || rc=$?
drive_pid=""
exit "$rc"
