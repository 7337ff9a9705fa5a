#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for a bounded time (issue 7, point 1).
#
#   scripts/fuzz.sh                 # 15 s per target (seven targets: about 2 min plus the build)
#   scripts/fuzz.sh 600             # 10 min per target, for a long run by hand
#   FUZZ_TARGETS="range policy" scripts/fuzz.sh 60
#
# - Needs cargo-fuzz. Without it the script skips (exit 0) with a message, unless CI is set:
#   then it installs it (`cargo install cargo-fuzz --locked`, well under a minute here).
# - Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only
#   flags to a stable rustc.
# - No sanitizer (`--sanitizer none`): the code under test is safe Rust, where a bug shows as a
#   panic, which libFuzzer catches without AddressSanitizer; without it the build is quicker and
#   the targets run about twice as fast. Set FUZZ_SANITIZER=address for a run with it.
# - Each target starts from its checked-in seed corpus fuzz/corpus/<target>/ (read, never
#   written) plus the inputs earlier runs found in target/fuzz-corpus/<target>/ (kept between
#   runs, never committed), so the repository stays small and local runs build on each other.
# - A crash, leak or timeout: libFuzzer writes fuzz/artifacts/<target>/<kind>-<hash>; the script
#   finishes the other targets, prints how to reproduce each failure and exits 1. Turn every
#   finding into a regression unit test beside the parser before fixing it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'fuzz.sh: %s\n' "$*" >&2; }
die() { printf 'fuzz.sh: error: %s\n' "$*" >&2; exit 1; }
ci() { [[ -n "${CI:-}" && "${CI}" != false && "${CI}" != 0 ]]; }

seconds="${1:-15}"
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || die "SECONDS_PER_TARGET must be a positive number, got '$seconds'"
targets="${FUZZ_TARGETS:-range etag_list conditions accept_encoding map_path policy http1_head}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    if ci; then
        log "cargo-fuzz not installed; installing it (CI is set)"
        t=$SECONDS
        cargo install cargo-fuzz --locked
        log "installed cargo-fuzz in $((SECONDS - t)) s"
    else
        log "skipping: cargo-fuzz is not installed (cargo install cargo-fuzz; CI installs it itself)"
        exit 0
    fi
fi

export RUSTC_BOOTSTRAP=1

# One build for every target: the instrumented dependency tree is the slow part (several
# minutes the first time; seconds once fuzz/target is warm).
t=$SECONDS
log "building fuzz targets (cargo fuzz build)"
(cd fuzz && cargo fuzz build --sanitizer "$sanitizer") || die "cargo fuzz build failed"
log "built in $((SECONDS - t)) s"

# Per-target libFuzzer options: a dictionary where one helps, and input sizes that fit the
# input (a Range header or path is short; a policy file may be a few KiB).
options_for() {
    case "$1" in
        range) echo "-dict=dict/range.dict -max_len=512" ;;
        policy) echo "-dict=dict/policy.dict -max_len=8192" ;;
        map_path) echo "-dict=dict/http.dict -max_len=4096" ;;
        http1_head) echo "-dict=dict/http1.dict -max_len=4096" ;;
        *) echo "-dict=dict/http.dict -max_len=1024" ;;
    esac
}

failed=()
for target in $targets; do
    [[ -d "fuzz/corpus/$target" ]] || die "no seed corpus fuzz/corpus/$target"
    work="target/fuzz-corpus/$target"
    mkdir -p "$work"
    log "running $target for ${seconds}s"
    # shellcheck disable=SC2046  # the options are words on purpose
    if (cd fuzz && cargo fuzz run --sanitizer "$sanitizer" "$target" "../$work" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        $(options_for "$target")) >"target/fuzz-$target.log" 2>&1; then
        summary="$(grep -E '^(Done|#[0-9]+[[:space:]]+DONE)' "target/fuzz-$target.log" | tail -n 2 | tr '\n' ' ')"
        log "$target: ok ($summary)"
    else
        failed+=("$target")
        log "$target: FAILED; last lines of target/fuzz-$target.log:"
        grep -vE '^(#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)|[[:space:]]+[0-9]+:)' "target/fuzz-$target.log" | tail -n 25 >&2 || true
    fi
done

if ((${#failed[@]})); then
    log "failures in: ${failed[*]}"
    for target in "${failed[@]}"; do
        for artifact in fuzz/artifacts/"$target"/*; do
            [[ -e "$artifact" ]] || continue
            log "reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $target ${artifact#fuzz/})"
        done
    done
    exit 1
fi
log "all targets ran ${seconds}s each without a finding"
