#!/usr/bin/env python3
"""Generates the benchmark asset set: a small static site with the sizes and types of a real one.

    gen_assets.py DIR        # writes DIR/site/... and DIR/manifest.json (skips if up to date)

The set (deterministic: a fixed seed, fixed modification times, so every run and both servers
see identical bytes and validators):

- HTML pages of 3-30 KB (index.html, blog/, docs/), text that compresses like markup;
- style sheets and scripts of 50-600 KB with precompressed sidecars `.br` (brotli -q 11),
  `.gz` (gzip -9 -n) and `.zst` (zstd -19): generated CSS rules and JavaScript functions with
  a realistic vocabulary, compressing to 10-25 % like minified framework code;
- fonts (woff2, woff), images (jpg, webp, png; incompressible bytes behind the right magic
  numbers), an SVG logo with sidecars, a JSON catalog;
- a gallery of 40 photos of 15-80 KB (the keys of the cold-miss scenario);
- a 6 MiB video (video/clip.mp4: several MB, under the default 8 MiB `cache_max_object`, so
  ranges are served from memory once it is hot) and a 1 MiB binary (data/blob.bin).

Bodies of media files are random: their content does not matter to a server that does not
transcode, but it must not compress, as real media does not.

The manifest lists every file with its size and content type, for the load driver.
"""

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

# Bump when the generated set changes, so an old set on disk is regenerated.
VERSION = 3
SEED = 20260601
# 2026-01-01T00:00:00Z: every file gets this mtime, so Last-Modified and nginx's ETags are stable.
MTIME = 1767225600

CSS_PROPS = [
    ("display", ["block", "flex", "grid", "inline-block", "none", "inline-flex"]),
    ("position", ["relative", "absolute", "fixed", "sticky"]),
    ("margin", ["0", "0 auto", "{n}px", "{n}px {m}px", "-{n}px"]),
    ("padding", ["{n}px", "{n}px {m}px", ".{d}rem", "{d}rem {d}rem"]),
    ("color", ["#{h}", "rgba({c},{c},{c},.{d})", "var(--bs-{w}-color)", "inherit"]),
    ("background-color", ["#{h}", "transparent", "var(--bs-{w}-bg)", "rgba({c},{c},{c},.{d})"]),
    ("border", ["1px solid #{h}", "0", "var(--bs-border-width) solid var(--bs-border-color)"]),
    ("border-radius", ["{n}px", ".{d}rem", "50%", "var(--bs-border-radius)"]),
    ("font-size", ["{n}px", "{d}.{d}rem", "calc(1.{d}rem + .{d}vw)", "inherit"]),
    ("font-weight", ["400", "500", "600", "700", "bolder"]),
    ("line-height", ["1.{d}", "{n}px", "normal"]),
    ("width", ["100%", "{n}px", "{n}%", "auto", "calc(100% - {n}px)"]),
    ("height", ["100%", "{n}px", "auto", "{n}vh"]),
    ("transition", ["all .{d}s ease-in-out", "opacity .15s linear", "transform .{d}s ease"]),
    ("box-shadow", ["0 .{d}rem {d}rem rgba(0,0,0,.{d})", "none", "inset 0 1px 2px rgba(0,0,0,.075)"]),
    ("justify-content", ["center", "space-between", "flex-start", "flex-end"]),
    ("align-items", ["center", "stretch", "baseline", "flex-start"]),
    ("z-index", ["{n}", "1000", "1050", "-1"]),
    ("opacity", [".{d}", "0", "1"]),
    ("transform", ["translateY(-{n}px)", "rotate({n}deg)", "scale(1.0{d})", "none"]),
]
WORDS = (
    "btn card nav navbar modal dropdown alert badge list group item header footer body title "
    "text link active disabled primary secondary success danger warning info light dark sm md "
    "lg xl toggle collapse show fade container row col form control input label check select "
    "table striped hover border rounded shadow flex grid gap start end center wrap fill page "
    "pagination breadcrumb tooltip popover spinner progress toast carousel accordion offcanvas"
).split()
JS_KEYWORDS = (
    "const let return function if else for while new this typeof instanceof null undefined "
    "true false await async try catch throw switch case break continue default"
).split()
JS_IDENTS = (
    "element options config state props children render update dispatch listener handler "
    "callback value index length target event node parent context store reducer action type "
    "payload result error response request module exports require instance component hook "
    "effect memo ref key timeout interval promise resolve reject queue scheduler fiber root"
).split()
TEXT = (
    "the origin serves every object with exact validators so that a content delivery network "
    "can revalidate cheaply and keep its copies fresh while the storage behind it stays quiet "
    "caches honour the policy of each content type and ranges let players seek within a video "
    "without downloading all of it compression saves bandwidth for text while media is sent as "
    "stored because it is already compressed"
).split()


def fill(rng: random.Random, template: str) -> str:
    out = template
    while "{" in out:
        i = out.index("{")
        j = out.index("}", i)
        kind = out[i + 1 : j]
        if kind == "n":
            v = str(rng.choice([0, 1, 2, 4, 5, 8, 10, 12, 15, 16, 20, 24, 32, 40, 48, 64, 100]))
        elif kind == "m":
            v = str(rng.choice([0, 2, 4, 8, 12, 16, 24]))
        elif kind == "d":
            v = str(rng.randint(0, 9))
        elif kind == "c":
            v = str(rng.randint(0, 255))
        elif kind == "h":
            v = rng.choice(["fff", "000", "212529", "0d6efd", "6c757d", "dee2e6", "f8f9fa"]
                           + ["%06x" % rng.randrange(1 << 24)])
        else:  # w
            v = rng.choice(["primary", "secondary", "body", "emphasis", "tertiary"])
        out = out[:i] + v + out[j + 1 :]
    return out


def css(rng: random.Random, size: int) -> bytes:
    parts, total = [], 0
    while total < size:
        sel = ",".join(
            "." + "-".join(rng.sample(WORDS, rng.randint(1, 3)))
            + rng.choice(["", ":hover", ":focus", ">." + rng.choice(WORDS), " ." + rng.choice(WORDS)])
            for _ in range(rng.randint(1, 3))
        )
        decls = ";".join(
            f"{p}:{fill(rng, rng.choice(vals))}" for p, vals in rng.sample(CSS_PROPS, rng.randint(2, 7))
        )
        rule = f"{sel}{{{decls}}}"
        if rng.random() < 0.05:
            rule = f"@media (min-width:{rng.choice([576, 768, 992, 1200, 1400])}px){{{rule}}}"
        parts.append(rule)
        total += len(rule)
    return "\n".join(parts).encode()[:size]


def js(rng: random.Random, size: int) -> bytes:
    parts, total = ["\"use strict\";"], 0
    while total < size:
        name = rng.choice(JS_IDENTS) + rng.choice(JS_IDENTS).capitalize() + str(rng.randint(0, 99))
        args = ",".join(rng.sample(JS_IDENTS, rng.randint(0, 3)))
        body = []
        for _ in range(rng.randint(2, 9)):
            a, b = rng.sample(JS_IDENTS, 2)
            body.append(
                rng.choice(
                    [
                        f"{rng.choice(['const', 'let'])} {a}={b}.{rng.choice(JS_IDENTS)}({rng.randint(0, 999)})",
                        f"if({a}==={rng.choice(['null', 'undefined', str(rng.randint(0, 9))])})return {b}",
                        f"{a}.{rng.choice(JS_IDENTS)}=\"{' '.join(rng.sample(TEXT, 3))}\"",
                        f"for(let i=0;i<{a}.length;i++){{{b}+={a}[i]|0}}",
                        f"{rng.choice(JS_KEYWORDS)} {a}",
                    ]
                )
            )
        fn = f"function {name}({args}){{{';'.join(body)}}}"
        parts.append(fn)
        total += len(fn)
    return ";".join(parts).encode()[:size]


def html(rng: random.Random, size: int, title: str) -> bytes:
    head = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="stylesheet" href="/assets/css/site.css">'
        '<link rel="preload" href="/assets/fonts/inter.woff2" as="font" crossorigin>'
        '</head><body><header class="navbar"><img src="/images/logo.svg" alt="logo"></header><main>'
    )
    parts, total = [head], len(head)
    while total < size - 200:
        para = " ".join(rng.choice(TEXT) for _ in range(rng.randint(20, 80)))
        tag = rng.choice(
            [f"<p>{para}</p>", f"<h2>{para[:40]}</h2>",
             f'<a href="/blog/post-{rng.randint(1, 20)}.html">{para[:30]}</a>',
             f'<img src="/images/gallery/photo-{rng.randint(1, 40):02d}.jpg" alt="{para[:20]}" loading="lazy">']
        )
        parts.append(tag)
        total += len(tag)
    parts.append('</main><script src="/assets/js/app.js" defer></script></body></html>\n')
    return "".join(parts).encode()


def binary(rng: random.Random, size: int, magic: bytes = b"") -> bytes:
    return (magic + rng.randbytes(size))[:size]


def svg(rng: random.Random, size: int) -> bytes:
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 256 256">']
    while sum(map(len, parts)) < size - 10:
        parts.append(
            f'<path fill="#{rng.randrange(1 << 24):06x}" d="M{rng.randint(0, 256)} {rng.randint(0, 256)}'
            f"L{rng.randint(0, 256)} {rng.randint(0, 256)}L{rng.randint(0, 256)} {rng.randint(0, 256)}Z\"/>"
        )
    parts.append("</svg>")
    return "".join(parts).encode()


def json_catalog(rng: random.Random, size: int) -> bytes:
    items, total = [], 0
    while total < size:
        item = {"id": len(items), "name": " ".join(rng.sample(TEXT, 3)), "price": rng.randint(100, 99999),
                "tags": rng.sample(WORDS, 3), "image": f"/images/gallery/photo-{rng.randint(1, 40):02d}.jpg"}
        items.append(item)
        total += len(json.dumps(item))
    return json.dumps({"items": items}).encode()


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PNG = b"\x89PNG\r\n\x1a\n"
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 "
WOFF2 = b"wOF2"
WOFF = b"wOFF"
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"


def plan(rng: random.Random):
    """(path, bytes, precompress) for every file of the set."""
    files = [
        ("index.html", html(rng, 8 * 1024, "Home"), False),
        ("about/index.html", html(rng, 14 * 1024, "About"), False),
        ("docs/index.html", html(rng, 30 * 1024, "Docs"), False),
    ]
    files += [(f"blog/post-{i}.html", html(rng, rng.randint(3, 24) * 1024, f"Post {i}"), False) for i in range(1, 21)]
    files += [
        ("assets/css/site.css", css(rng, 180 * 1024), True),
        ("assets/css/vendor.min.css", css(rng, 60 * 1024), True),
        ("assets/js/app.js", js(rng, 600 * 1024), True),
        ("assets/js/vendor.4f2a9c1e.js", js(rng, 300 * 1024), True),
        ("assets/js/widgets.js", js(rng, 50 * 1024), True),
        ("assets/fonts/inter.woff2", binary(rng, 48 * 1024, WOFF2), False),
        ("assets/fonts/inter.woff", binary(rng, 64 * 1024, WOFF), False),
        ("images/hero.jpg", binary(rng, 220 * 1024, JPEG), False),
        ("images/banner.webp", binary(rng, 90 * 1024, WEBP), False),
        ("images/favicon.png", binary(rng, 2 * 1024, PNG), False),
        ("images/logo.svg", svg(rng, 6 * 1024), True),
        ("data/catalog.json", json_catalog(rng, 30 * 1024), True),
        ("data/blob.bin", binary(rng, 1024 * 1024), False),
        ("video/clip.mp4", binary(rng, 6 * 1024 * 1024, MP4), False),
    ]
    files += [
        (f"images/gallery/photo-{i:02d}.jpg", binary(rng, rng.randint(15, 80) * 1024, JPEG), False)
        for i in range(1, 41)
    ]
    return files


SIDECARS = [
    (".br", ["brotli", "-q", "11", "-f", "-k"]),
    (".gz", ["gzip", "-9", "-n", "-f", "-k"]),
    (".zst", ["zstd", "-19", "-q", "-f", "-k"]),
]


def content_type(path: str) -> str:
    import mimetypes

    extra = {".woff2": "font/woff2", ".woff": "font/woff", ".webp": "image/webp", ".mp4": "video/mp4",
             ".js": "text/javascript", ".svg": "image/svg+xml"}
    ext = os.path.splitext(path)[1]
    return extra.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    manifest_path = out / "manifest.json"
    stamp = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16] + f"-v{VERSION}"
    if manifest_path.exists():
        try:
            if json.loads(manifest_path.read_text()).get("stamp") == stamp:
                print(f"gen_assets: {out}/site is up to date", file=sys.stderr)
                return 0
        except (OSError, ValueError):
            pass
    for tool in ("brotli", "gzip", "zstd"):
        if shutil.which(tool) is None:
            print(f"gen_assets: `{tool}` not found (apt-get install -y {tool})", file=sys.stderr)
            return 2
    site = out / "site"
    if site.exists():
        shutil.rmtree(site)
    rng = random.Random(SEED)
    entries = []
    for rel, data, precompress in plan(rng):
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written = [(rel, len(data))]
        if precompress:
            for suffix, cmd in SIDECARS:
                subprocess.run(cmd + [str(path)], check=True)
                written.append((rel + suffix, (site / (rel + suffix)).stat().st_size))
        for name, _ in written:
            os.utime(site / name, (MTIME, MTIME))
        entries.append({
            "path": "/" + rel,
            "size": len(data),
            "content_type": content_type(rel),
            "sidecars": {name[len(rel):]: size for name, size in written[1:]},
        })
    for d, _, _ in os.walk(site):
        os.chmod(d, 0o755)
    total = sum(e["size"] + sum(e["sidecars"].values()) for e in entries)
    manifest_path.write_text(json.dumps({"stamp": stamp, "root": str(site.resolve()),
                                         "total_bytes": total, "files": entries}, indent=1))
    print(f"gen_assets: {len(entries)} objects, {total / 1048576:.1f} MiB in {site}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
