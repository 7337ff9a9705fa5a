#!/usr/bin/env bash
# Checks the Prometheus side of cdn-origin with promtool (Debian package `prometheus`):
#   1. `promtool check rules` on deploy/*.yml (the alert rules),
#   2. `promtool test rules` on deploy/tests/*.yml (the alerts fire when they should),
#   3. every PromQL query of deploy/grafana-dashboard.json parses (needs python3),
#   4. `promtool check metrics` on a /metrics exposition:
#        scripts/check-prometheus.sh              # from `cargo run --example metrics_sample`
#        scripts/check-prometheus.sh FILE         # from a file
#        curl -s http://127.0.0.1:8080/metrics | scripts/check-prometheus.sh -   # from stdin
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found: apt-get install -y prometheus" >&2
    exit 1
fi

echo "== promtool check rules deploy/*.yml"
promtool check rules deploy/*.yml

echo "== promtool test rules deploy/tests/*.yml"
promtool test rules deploy/tests/*.yml

if command -v python3 >/dev/null 2>&1; then
    echo "== dashboard queries parse"
    tmp_rules="$(mktemp --suffix=.yml)"
    trap 'rm -f "$tmp_rules"' EXIT
    python3 - "$tmp_rules" <<'PY'
import json, sys
dash = json.load(open("deploy/grafana-dashboard.json"))
exprs = []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            exprs.append(t["expr"])
        walk(p.get("panels", []))
walk(dash["panels"])
with open(sys.argv[1], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        # Grafana variables become plain values so promtool can parse the query.
        e = e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
        out.write(f"      - record: dashboard:query{i}\n        expr: {json.dumps(e)}\n")
print(f"{len(exprs)} queries")
PY
    promtool check rules "$tmp_rules"
else
    echo "== python3 not found: dashboard queries not checked" >&2
fi

echo "== promtool check metrics"
if [ "${1:-}" = "-" ]; then
    metrics="$(cat)"
elif [ -n "${1:-}" ]; then
    metrics="$(cat "$1")"
else
    metrics="$(cargo run --quiet --example metrics_sample)"
fi
if [ -z "$metrics" ]; then
    echo "empty metrics exposition" >&2
    exit 1
fi
printf '%s\n' "$metrics" | promtool check metrics
echo "prometheus checks passed"
