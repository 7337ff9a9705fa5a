#!/usr/bin/env python3
"""Load driver of benches/load: runs every scenario with wrk against one or more servers that are
already running (run.sh starts and stops them), then prints a table and writes JSON.

Only the Python standard library is used. For each scenario and server:

1. a preflight request per request kind checks the status (200, 206, 304 or 404) and records the
   Content-Encoding served, so a server that answers the wrong thing fails loudly instead of
   looking fast;
2. a short warm-up run (not measured) fills the hot cache and nginx's open_file_cache;
3. `/metrics` of cdn-origin is read, wrk runs for the measured duration while the resident
   memory of the server (with its child processes, for nginx's workers) is sampled, and
   `/metrics` is read again: the difference gives the hit rate and the bytes as the server
   counted them.

With --rounds N each scenario is measured N times per server, in rounds that alternate the order
of the servers (ours first, then nginx first, ...) so that slow drift of the machine cancels out.
Each server's row is its round with the median req/s (the lower middle one for even N), so all
numbers of a row come from one run; the ratios are the medians of the ratios within each round;
the thresholds are checked on every round; every round is kept in the JSON.

Errors are socket errors (connect, read, write, timeout) plus unexpected statuses: for scenarios
that expect 2xx/3xx, wrk's count of statuses >= 400; for 304 and 404 scenarios, every status
other than the expected one (counted in Lua, see wrk.lua).
"""

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
BROWSER_AE = "gzip, deflate, br, zstd"
MIB = 1024 * 1024


@dataclass
class Target:
    """One server under test: `name`, base URL (scheme://host:port) and a path prefix."""

    name: str
    url: str
    prefix: str = ""
    metrics: str | None = None
    pid: int | None = None


@dataclass
class Kind:
    """One kind of request of a scenario (a line of the wrk spec file)."""

    weight: float
    path: str
    headers: dict = field(default_factory=dict)
    range_len: int = 0
    size: int = 0
    expect: int = 200


@dataclass
class Scenario:
    name: str
    what: str
    kinds: callable  # (target, etags) -> [Kind]
    expect: int | None = None  # BENCH_EXPECT: checked per response in Lua
    cold: bool = False
    connections: int | None = None
    ratio_target: float | None = None  # issue 6 point 4: ours/nginx req/s at least this
    encoding: str | None = None  # Content-Encoding the preflight must see from cdn-origin


def parse_kv(values, cast=str):
    out = {}
    for v in values or []:
        k, _, rest = v.partition("=")
        if not rest:
            raise SystemExit(f"drive.py: expected NAME=VALUE, got {v!r}")
        out[k] = cast(rest)
    return out


def scenarios(manifest, args):
    files = {f["path"]: f for f in manifest["files"]}
    video = files["/video/clip.mp4"]["size"]
    gallery = sorted(p for p in files if p.startswith("/images/gallery/"))

    def one(path, **kw):
        return lambda t, e: [Kind(1, t.prefix + path, **kw)]

    def mixed(t, etags):
        ae = {"Accept-Encoding": BROWSER_AE}
        kinds = [Kind(6, "/index.html", dict(ae)), Kind(2, "/about/index.html", dict(ae)),
                 Kind(2, "/docs/index.html", dict(ae))]
        kinds += [Kind(1, f"/blog/post-{i}.html", dict(ae)) for i in (1, 4, 7, 11, 16)]
        kinds += [Kind(6, "/assets/css/site.css", dict(ae)), Kind(4, "/assets/css/vendor.min.css", dict(ae)),
                  Kind(5, "/assets/js/app.js", dict(ae)), Kind(4, "/assets/js/vendor.4f2a9c1e.js", dict(ae)),
                  Kind(4, "/assets/js/widgets.js", dict(ae)),
                  Kind(5, "/assets/fonts/inter.woff2", dict(ae)), Kind(1, "/assets/fonts/inter.woff", dict(ae)),
                  Kind(4, "/images/hero.jpg", dict(ae)), Kind(3, "/images/banner.webp", dict(ae)),
                  Kind(3, "/images/favicon.png", dict(ae)), Kind(4, "/images/logo.svg", dict(ae)),
                  Kind(3, "/data/catalog.json", dict(ae))]
        kinds += [Kind(2, p, dict(ae)) for p in gallery[:10]]
        kinds += [Kind(8, "/index.html", {**ae, "If-None-Match": etags["html_ae"]}, expect=304),
                  Kind(5, "/assets/css/site.css", {**ae, "If-None-Match": etags["css_ae"]}, expect=304),
                  Kind(4, "/video/clip.mp4", dict(ae), range_len=MIB, size=video, expect=206),
                  Kind(2, "/data/blob.bin", dict(ae))]
        for k in kinds:
            k.path = t.prefix + k.path
        return kinds

    hc = args.high_connections
    return [
        Scenario("small-html", "8 KB HTML page, identity, hot", one("/index.html"), ratio_target=1.0),
        Scenario("css-precompressed", "180 KB CSS, browser Accept-Encoding: precompressed sidecar",
                 one("/assets/css/site.css", headers={"Accept-Encoding": BROWSER_AE}),
                 ratio_target=1.0, encoding="br"),
        Scenario("js-600k-identity", "600 KB JS, no Accept-Encoding", one("/assets/js/app.js")),
        Scenario("binary-1m", "1 MiB application/octet-stream", one("/data/blob.bin"), ratio_target=0.9),
        Scenario("video-range-1m", "1 MiB Range at a random offset of a 6 MiB video (206)",
                 one("/video/clip.mp4", range_len=MIB, size=video, expect=206), ratio_target=0.9),
        Scenario("revalidate-304", "If-None-Match with the current ETag of index.html",
                 lambda t, e: [Kind(1, t.prefix + "/index.html", {"If-None-Match": e["html"]}, expect=304)],
                 expect=304, ratio_target=1.0),
        Scenario("not-found-404", "the same missing .js path over and over",
                 one("/assets/js/missing.0d1e2f3a.js", expect=404), expect=404, ratio_target=1.0),
        Scenario("cold-s3", "40 gallery photos (15-80 KB) from the S3-compatible server, cache off",
                 lambda t, e: [Kind(1, t.prefix + p) for p in gallery],
                 cold=True, connections=args.cold_connections),
        Scenario("mixed", "page-view mix: HTML, CSS/JS, fonts, images, 304s, video ranges", mixed),
        Scenario(f"small-html-c{hc}", f"small-html with {hc} connections (memory)", one("/index.html"),
                 connections=hc, ratio_target=1.0),
    ]


# ---------------------------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def fetch(url, headers=None, timeout=10):
    """(status, headers, body) without raising for HTTP error statuses."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with _opener.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def metrics_snapshot(url):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    if not url:
        return None
    try:
        _, _, body = fetch(url)
    except OSError:
        return None
    out = {}
    line_re = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")
    for line in body.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


def metric_sum(snap, name, **match):
    return sum(v for (n, labels), v in snap.items()
               if n == name and all((k, val) in labels for k, val in match.items()))


def metrics_delta(before, after):
    """Hit rate and bytes between two snapshots (metric names from src/metrics/mod.rs)."""
    if before is None or after is None:
        return None

    def d(name, **match):
        return metric_sum(after, name, **match) - metric_sum(before, name, **match)

    by_cache = {c: d("cdn_origin_requests_total", cache=c) for c in ("hit", "miss", "stale", "bypass")}
    decided = by_cache["hit"] + by_cache["miss"] + by_cache["stale"]
    return {
        "requests": by_cache,
        # Same definition as the server's: hits / (hits + misses + stale); bypass excluded.
        "hit_rate": by_cache["hit"] / decided if decided else None,
        "body_bytes": d("cdn_origin_response_body_bytes_total"),
        "saved_bytes_not_modified": d("cdn_origin_saved_bytes_total", reason="not_modified"),
        "saved_bytes_compression": d("cdn_origin_saved_bytes_total", reason="compression"),
        "store_read_bytes": d("cdn_origin_store_read_bytes_total"),
        "store_requests": d("cdn_origin_store_requests_total"),
        "cache_bytes": metric_sum(after, "cdn_origin_cache_bytes"),
        "cache_entries": metric_sum(after, "cdn_origin_cache_entries"),
    }


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------
def process_tree(pid):
    pids, children = [pid], {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    i = 0
    while i < len(pids):
        pids += children.get(pids[i], [])
        i += 1
    return pids


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


def cpu_seconds(pids):
    """User + system CPU time of these processes (all their threads), in seconds."""
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except (OSError, ValueError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Samples the summed VmRSS of a process tree every 200 ms; `peak` in KiB."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pids = process_tree(pid) if pid else []
        self.peak = rss_kib(self.pids) if pid else 0
        self.stop = threading.Event()

    def run(self):
        while self.pids and not self.stop.wait(0.2):
            self.peak = max(self.peak, rss_kib(self.pids))


# ---------------------------------------------------------------------------------------------
# Running one scenario on one target
# ---------------------------------------------------------------------------------------------
def write_spec(kinds, path):
    with open(path, "w") as f:
        for k in kinds:
            cols = [f"{k.weight:g}", k.path, str(k.range_len), str(k.size)]
            cols += [f"{h}: {v}" for h, v in k.headers.items()]
            f.write("\t".join(cols) + "\n")


def preflight(target, kinds):
    """One request per kind: [problems], and the Content-Encodings seen."""
    problems, encodings = [], set()
    for k in kinds:
        headers = dict(k.headers)
        if k.range_len:
            headers["Range"] = f"bytes=0-{k.range_len - 1}"
        try:
            status, h, body = fetch(target.url + k.path, headers)
        except OSError as e:
            problems.append(f"{k.path}: {e}")
            continue
        if status != k.expect:
            problems.append(f"{k.path}: status {status}, expected {k.expect}")
        if k.range_len and status == 206 and len(body) != k.range_len:
            problems.append(f"{k.path}: 206 with {len(body)} bytes, expected {k.range_len}")
        encodings.add(h.get("Content-Encoding") or "identity")
    return problems, sorted(encodings)


def run_wrk(target, spec_path, expect, connections, duration, threads, out_path):
    env = dict(os.environ, BENCH_SPEC=str(spec_path), BENCH_OUT=str(out_path))
    if expect:
        env["BENCH_EXPECT"] = str(expect)
    else:
        env.pop("BENCH_EXPECT", None)
    cmd = ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
           "--timeout", "5s", "-s", str(HERE / "wrk.lua"), target.url]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=duration + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {output.strip()[-500:]}")
    return json.loads(Path(out_path).read_text())


def measure(sc, target, etags, args, tmp):
    kinds = sc.kinds(target, etags)
    problems, encodings = preflight(target, kinds)
    spec = Path(tmp) / f"{sc.name}-{target.name}.spec"
    out = Path(tmp) / f"{sc.name}-{target.name}.json"
    write_spec(kinds, spec)
    connections = sc.connections or args.connections
    if args.warmup > 0 and not sc.cold:
        run_wrk(target, spec, sc.expect, min(connections, args.connections), args.warmup, args.threads, out)
    before = metrics_snapshot(target.metrics)
    sampler = RssSampler(target.pid)
    cpu_before = cpu_seconds(sampler.pids)
    sampler.start()
    raw = run_wrk(target, spec, sc.expect, connections, args.duration, args.threads, out)
    sampler.stop.set()
    sampler.join()
    cpu = cpu_seconds(sampler.pids) - cpu_before
    after = metrics_snapshot(target.metrics)

    secs = raw["duration_us"] / 1e6 or 1e-9
    e = raw["errors"]
    socket_errors = e["connect"] + e["read"] + e["write"] + e["timeout"]
    status_errors = raw["unexpected"] if raw["checked"] else e["status"]
    requests = raw["requests"]
    errors = socket_errors + status_errors
    lat = raw["latency_us"]
    return {
        "connections": connections,
        "requests": requests,
        "rps": requests / secs,
        "mb_per_s": raw["bytes"] / secs / 1e6,
        "latency_ms": {k: v / 1000 for k, v in lat.items()},
        "errors": {"socket": socket_errors, "status": status_errors, **e},
        "error_rate": errors / requests if requests else 1.0,
        "rss_peak_mib": sampler.peak / 1024,
        # CPU time the server spent per request: the figure least disturbed by other load on
        # the machine (throughput and latency are not, on a shared 2-core box).
        "cpu_us_per_req": cpu * 1e6 / requests if requests and target.pid else None,
        "encodings": encodings,
        "preflight_problems": problems,
        "metrics": metrics_delta(before, after),
    }


def etags_for(target, manifest):
    def etag(path, headers):
        status, h, _ = fetch(target.url + target.prefix + path, headers)
        if status != 200 or not h.get("ETag"):
            raise SystemExit(f"drive.py: {target.name}: GET {path} gave {status} without an ETag")
        return h["ETag"]

    ae = {"Accept-Encoding": BROWSER_AE}
    return {"html": etag("/index.html", {}), "html_ae": etag("/index.html", ae),
            "css_ae": etag("/assets/css/site.css", ae)}


def paired_ratios(a, b):
    """Ratios a/b of one round (None where b's figure is 0 or missing)."""
    return {"rps_ratio": a["rps"] / b["rps"] if b["rps"] else None,
            "mb_ratio": a["mb_per_s"] / b["mb_per_s"] if b["mb_per_s"] else None,
            "p99_ratio": (a["latency_ms"]["p99"] / b["latency_ms"]["p99"]
                          if b["latency_ms"]["p99"] else None),
            "cpu_ratio": (a["cpu_us_per_req"] / b["cpu_us_per_req"]
                          if a.get("cpu_us_per_req") and b.get("cpu_us_per_req") else None)}


def median_ratios(rounds, ours, theirs):
    """Each ratio as the median over the rounds of ours/theirs within the same round (rounds of
    one server are never paired with another round of the other). With one round: that round's
    ratios. Rounds where a ratio is None are left out of its median."""
    per_round = [paired_ratios(r[ours], r[theirs]) for r in rounds]
    out = {}
    for key in per_round[0]:
        vals = [pr[key] for pr in per_round if pr[key] is not None]
        out[key] = statistics.median(vals) if vals else None
    return out


def threshold_failures(where, sc, r, args, ours):
    """The thresholds one run breaks (preflight, encoding, p95, error rate), as messages."""
    out = []
    problems = r["preflight_problems"]
    out += [f"{where}: preflight: {problem}" for problem in problems[:3]]
    if len(problems) > 3:
        out.append(f"{where}: preflight: {len(problems) - 3} more (see the JSON)")
    if sc.encoding and ours and sc.encoding not in r["encodings"]:
        out.append(f"{where}: expected Content-Encoding {sc.encoding}, got {r['encodings']}")
    limit = args.cold_p95_ms if sc.cold else args.p95_ms
    if r["latency_ms"]["p95"] > limit:
        out.append(f"{where}: p95 {r['latency_ms']['p95']:.1f} ms > {limit:g} ms")
    if r["error_rate"] >= args.max_error_rate:
        out.append(f"{where}: error rate {r['error_rate'] * 100:.3f} % "
                   f"({r['errors']}) >= {args.max_error_rate * 100:g} %")
    return out


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def fmt(v, spec="{:.0f}", none="-"):
    return none if v is None else spec.format(v)


def print_tables(report, names, out=sys.stdout):
    rows = []
    for sc in report["scenarios"]:
        for name in names:
            r = sc["results"].get(name)
            if r is None:
                continue
            m = r.get("metrics") or {}
            rows.append([sc["name"], name, fmt(r["rps"]), fmt(r["mb_per_s"], "{:.1f}"),
                         fmt(r["latency_ms"]["p50"], "{:.2f}"), fmt(r["latency_ms"]["p95"], "{:.2f}"),
                         fmt(r["latency_ms"]["p99"], "{:.2f}"), fmt(r["error_rate"] * 100, "{:.3f}"),
                         fmt(m.get("hit_rate") and m["hit_rate"] * 100, "{:.1f}"),
                         fmt(m.get("body_bytes") and m["body_bytes"] / 1e6, "{:.0f}"),
                         fmt(r["rss_peak_mib"], "{:.1f}"), fmt(r.get("cpu_us_per_req"), "{:.1f}"),
                         ",".join(r["encodings"])])
    head = ["scenario", "server", "req/s", "MB/s", "p50 ms", "p95 ms", "p99 ms", "err %",
            "hit %", "body MB", "RSS MiB", "CPU µs/req", "encoding"]
    table(head, rows, out)
    if len(names) > 1:
        print(file=out)
        rows = []
        for sc in report["scenarios"]:
            c = sc.get("comparison")
            if not c:
                continue
            rows.append([sc["name"], fmt(c["rps_ratio"], "{:.2f}"), fmt(c["mb_ratio"], "{:.2f}"),
                         fmt(c["p99_ratio"], "{:.2f}"), fmt(c.get("cpu_ratio"), "{:.2f}"),
                         fmt(c["rps_target"], "≥{:.1f}"), c["verdict"]])
        table(["scenario", f"req/s {names[0]}/{names[1]}", "MB/s ratio", "p99 ratio",
               "CPU/req ratio", "target", "issue 6 targets"], rows, out)


def table(head, rows, out):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(head), file=out)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)
    for r in rows:
        print(line(r), file=out)


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None

    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "memory_mib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MIB,
            "nginx": out(["nginx", "-v"]), "wrk": out(["wrk", "--version"]),
            "commit": out(["git", "-C", str(HERE), "describe", "--always", "--dirty"])}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", required=True)
    p.add_argument("--target", action="append", required=True, help="NAME=URL; the first is ours")
    p.add_argument("--cold-target", action="append", help="NAME=URL[/prefix] for cold-s3")
    p.add_argument("--metrics", action="append", help="NAME=URL of /metrics (hot targets)")
    p.add_argument("--cold-metrics", action="append", help="NAME=URL of /metrics (cold targets)")
    p.add_argument("--pid", action="append", help="NAME=PID (hot targets; children included)")
    p.add_argument("--cold-pid", action="append", help="NAME=PID (cold targets)")
    p.add_argument("--duration", type=float, default=6)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--cold-connections", type=int, default=8)
    p.add_argument("--high-connections", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1,
                   help="measure each scenario N times per server, alternating the order of the "
                        "servers between rounds; report the median round (default 1)")
    p.add_argument("--only", help="comma-separated scenario names")
    p.add_argument("--p95-ms", type=float, default=100.0)
    p.add_argument("--cold-p95-ms", type=float, default=300.0,
                   help="p95 limit of cold-s3, whose floor is the S3 server's latency (moto is a "
                        "single Python process), not ours")
    p.add_argument("--max-error-rate", type=float, default=0.001)
    p.add_argument("--cache-budget-mib", type=float, default=256)
    p.add_argument("--strict-targets", action="store_true",
                   help="also fail when an issue 6 point 4 target (ratios, p99, memory) is missed")
    p.add_argument("--json")
    p.add_argument("--settings", default="{}", help="JSON object of run.sh settings to record")
    args = p.parse_args()
    if args.rounds < 1:
        p.error("--rounds must be at least 1")

    manifest = json.loads(Path(args.manifest).read_text())

    def targets(spec, metrics, pids):
        out = []
        for name, url in parse_kv(spec).items():
            m = re.match(r"^(https?://[^/]+)(/.*)?$", url)
            if not m:
                raise SystemExit(f"drive.py: bad URL {url!r}")
            out.append(Target(name, m.group(1), (m.group(2) or "").rstrip("/"),
                              parse_kv(metrics).get(name), parse_kv(pids, int).get(name)))
        return out

    hot = targets(args.target, args.metrics, args.pid)
    cold = targets(args.cold_target, args.cold_metrics, args.cold_pid)
    names = [t.name for t in hot]
    etags = {t.name: etags_for(t, manifest) for t in hot}
    chosen = scenarios(manifest, args)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in chosen}
        if unknown:
            raise SystemExit(f"drive.py: unknown scenarios {sorted(unknown)}; "
                             f"known: {[s.name for s in chosen]}")
        chosen = [s for s in chosen if s.name in wanted]

    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "settings": {**json.loads(args.settings),
              "duration_s": args.duration, "warmup_s": args.warmup, "connections": args.connections,
              "cold_connections": args.cold_connections, "high_connections": args.high_connections,
              "wrk_threads": args.threads, "rounds": args.rounds},
              "thresholds": {"p95_ms": args.p95_ms, "cold_p95_ms": args.cold_p95_ms,
                             "max_error_rate": args.max_error_rate},
              "scenarios": [], "failures": [], "below_targets": []}
    failures, below = report["failures"], report["below_targets"]
    with tempfile.TemporaryDirectory(prefix="cdn-bench-") as tmp:
        for sc in chosen:
            pool = cold if sc.cold else hot
            if not pool:
                print(f"drive.py: {sc.name}: skipped (no target)", file=sys.stderr)
                continue
            entry = {"name": sc.name, "what": sc.what, "results": {}, "results_by_round": []}
            for rnd in range(args.rounds):
                # Alternate the order between rounds (ours first, then nginx first, ...): slow
                # drift of the machine then favours neither server.
                order = pool if rnd % 2 == 0 else pool[::-1]
                results = {}
                for t in order:
                    label = f" (round {rnd + 1}/{args.rounds})" if args.rounds > 1 else ""
                    print(f"drive.py: {sc.name} on {t.name}{label} ...", file=sys.stderr, flush=True)
                    r = measure(sc, t, etags.get(t.name, {}), args, tmp)
                    results[t.name] = r
                    # Thresholds hold for every round, not only the median one.
                    where = f"{sc.name}/{t.name}" + (f" round {rnd + 1}" if args.rounds > 1 else "")
                    failures += threshold_failures(where, sc, r, args, ours=t.name == names[0])
                # Keep the target order of the pool in the JSON, whatever order the round ran in.
                entry["results_by_round"].append({t.name: results[t.name] for t in pool})
            rounds = entry["results_by_round"]
            # Each server's row is its round with the median req/s (lower middle for even N), so
            # every number of the row comes from one real run.
            entry["median_round"] = {}
            for t in pool:
                by_rps = sorted(range(len(rounds)), key=lambda i: rounds[i][t.name]["rps"])
                pick = by_rps[(len(by_rps) - 1) // 2]
                entry["results"][t.name] = rounds[pick][t.name]
                entry["median_round"][t.name] = pick + 1
            if len(pool) > 1:
                c = {**median_ratios(rounds, pool[0].name, pool[1].name),
                     "rps_target": sc.ratio_target, "rounds": args.rounds}
                misses = []
                if sc.ratio_target and (c["rps_ratio"] or 0) < sc.ratio_target:
                    misses.append(f"req/s {c['rps_ratio']:.2f} < {sc.ratio_target}")
                if c["p99_ratio"] is not None and c["p99_ratio"] > 1.5 and not sc.cold:
                    misses.append(f"p99 {c['p99_ratio']:.2f}x > 1.5x")
                if sc.connections == args.high_connections:
                    # Memory is judged on the worst round, not the median one.
                    budget = 64 + args.cache_budget_mib
                    peak = max(r[pool[0].name]["rss_peak_mib"] for r in rounds)
                    c["rss_peak_mib_worst_round"] = peak
                    if peak > budget:
                        misses.append(f"RSS {peak:.0f} MiB > {budget:.0f} MiB")
                c["verdict"] = "; ".join(misses) if misses else ("meets" if not sc.cold else "n/a (cold)")
                entry["comparison"] = c
                below += [f"{sc.name}: {m}" for m in misses]
            report["scenarios"].append(entry)

    print()
    print(f"cdn-origin load run, {report['date']}, {report['machine']['cpu']} "
          f"({report['machine']['cores']} cores), {args.duration:g} s per run, "
          + (f"{args.rounds} rounds in alternating order (rows: median round by req/s; ratios: "
             f"median of the per-round ratios), " if args.rounds > 1 else "")
          + f"{args.connections} connections, wrk -t{args.threads}")
    print()
    print_tables(report, names)
    if args.strict_targets:
        failures += [f"target: {b}" for b in below]
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nJSON: {args.json}")
    if below:
        print("\nbelow the issue 6 targets:\n  " + "\n  ".join(below))
    if failures:
        print("\nFAILED thresholds:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nthresholds met: p95 <= {args.p95_ms:g} ms ({args.cold_p95_ms:g} ms for cold-s3), "
          f"error rate < {args.max_error_rate * 100:g} % in every scenario")
    return 0


if __name__ == "__main__":
    # run.sh stops us with SIGTERM: exit through the `finally` that kills a running wrk.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
