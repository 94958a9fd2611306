#!/usr/bin/env python3
"""Helper for .ci/redbot: build the test site and judge REDbot's HAR output.

    redbot_check.py site DIR
        Write the test site into DIR: hello.txt (~2 KiB of text), app.js (~50 KiB of
        JavaScript-like text) and big.bin (8 MiB of pseudo-random bytes). The content is the
        same on every run (fixed seed) and every file gets the same fixed mtime, so REDbot sees
        the same resources each time.

    redbot_check.py report BASE_URL NAME=HAR_FILE...
        Print every REDbot finding (note) per URL with its level, then a summary. Exits 1 if
        any finding is rated BAD, if a HAR file holds no complete response (REDbot could not
        fetch the URL), or if REDbot requested anything outside BASE_URL; 0 otherwise.

Only the standard library is used.
"""

import json
import os
import random
import sys
from typing import Any, Dict, List, Tuple

# Saturday, 1 June 2024 12:00:00 UTC: a fixed, past Last-Modified for every file.
FIXED_MTIME = 1717243200
SEED = 20240601
LEVEL_ORDER = ["BAD", "WARN", "INFO", "GOOD"]
# httplint's category order (REDbot's text output uses it too). REDbot's checks finish in
# whatever order their requests do, so notes are sorted by (category, note id) for stable output.
CATEGORY_ORDER = [
    "GENERAL", "CONNECTION", "SECURITY", "CORS", "COOKIES", "CONNEG", "CACHING", "VALIDATION",
    "RANGE",
]


def make_site(root: str) -> None:
    os.makedirs(root, exist_ok=True)
    rng = random.Random(SEED)

    # hello.txt: ~2 KiB of plain text.
    lines = []
    size = 0
    n = 0
    while size < 2048:
        n += 1
        line = f"Hello from wharf, line {n:03d}: the quick brown fox jumps over the lazy dog.\n"
        lines.append(line)
        size += len(line)
    write(root, "hello.txt", "".join(lines).encode("utf-8"))

    # app.js: ~50 KiB of JavaScript-like text; repetitive, so it compresses well.
    words = ["wharf", "dock", "cargo", "ship", "crane", "tide", "buoy", "hull", "mast", "keel"]
    parts = ['"use strict";\n', "// app.js: generated test asset for the REDbot CI check.\n"]
    size = sum(len(p) for p in parts)
    n = 0
    while size < 50 * 1024:
        n += 1
        a, b = rng.choice(words), rng.choice(words)
        part = (
            f"export function {a}{n}({b}, options = {{}}) {{\n"
            f"  const total = {b}.reduce((acc, item) => acc + item.{a}Weight, {n});\n"
            f"  if (options.verbose) {{ console.log(\"{a}{n}\", total); }}\n"
            f"  return {{ name: \"{a}-{b}\", total, at: Date.now() }};\n"
            "}\n\n"
        )
        parts.append(part)
        size += len(part)
    write(root, "app.js", "".join(parts).encode("utf-8"))

    # big.bin: 8 MiB of pseudo-random (incompressible) bytes.
    write(root, "big.bin", rng.randbytes(8 * 1024 * 1024))


def write(root: str, name: str, data: bytes) -> None:
    path = os.path.join(root, name)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))


def note_key(note: Dict[str, Any]) -> Tuple[int, str, str]:
    category = str(note.get("category", ""))
    rank = CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else len(CATEGORY_ORDER)
    return (rank, str(note.get("note_id", "")), str(note.get("subject", "")))


def flatten(notes: List[Dict[str, Any]], depth: int = 0) -> List[Tuple[int, Dict[str, Any]]]:
    out = []
    for note in sorted(notes, key=note_key):
        out.append((depth, note))
        out.extend(flatten(note.get("subnotes", []), depth + 1))
    return out


def report(base_url: str, pairs: List[str]) -> int:
    failed = False
    summary = []
    all_bad = []
    for pair in pairs:
        name, _, har_path = pair.partition("=")
        url = base_url + name
        print(f"== {url}")
        try:
            with open(har_path, encoding="utf-8") as f:
                har = json.load(f)
        except (OSError, ValueError) as e:
            print(f"   ERROR: cannot read REDbot's HAR output {har_path}: {e}")
            summary.append(f"{url}: no usable REDbot output")
            failed = True
            continue
        log = har.get("log", {})
        if log.get("_red_error"):
            print(f"   ERROR: REDbot: {log['_red_error']}")
        entries = log.get("entries", [])
        if not entries:
            print("   ERROR: REDbot got no complete response from this URL")
            summary.append(f"{url}: no complete response")
            failed = True
            continue
        outside = [
            e.get("request", {}).get("url", "")
            for e in entries
            if not e.get("request", {}).get("url", "").startswith(base_url)
        ]
        for requested in outside:
            print(f"   ERROR: REDbot requested {requested!r}, outside {base_url}")
        if outside:
            summary.append(f"{url}: REDbot requested URLs outside {base_url}")
            failed = True
            continue
        entry = entries[0]
        res = entry.get("response", {})
        print(
            f"   HTTP {res.get('status')} {res.get('statusText', '')}".rstrip()
            + f", {res.get('bodySize')} body bytes, "
            + f"content-type {res.get('content', {}).get('mimeType') or '-'}"
        )
        counts = {level: 0 for level in LEVEL_ORDER}
        bad = []
        for depth, note in flatten(entry.get("_red_messages", [])):
            level = str(note.get("level", "?")).upper()
            counts[level] = counts.get(level, 0) + 1
            indent = "   " + "    " * depth
            print(
                f"{indent}[{level:<4}] {note.get('category', '?')}: {note.get('summary', '')}"
                f"  ({note.get('note_id', '?')})"
            )
            if level == "BAD":
                bad.append(note)
                all_bad.append(
                    f"{url}: [{note.get('category', '?')}] {note.get('summary', '')}"
                    f" ({note.get('note_id', '?')})"
                )
        print()
        counted = ", ".join(f"{counts[k]} {k}" for k in counts)
        summary.append(f"{url}: {counted}")
        if bad:
            failed = True
    print("== REDbot summary")
    for line in summary:
        print(f"   {line}")
    if all_bad:
        print("== BAD findings")
        for line in all_bad:
            print(f"   {line}")
    if failed:
        print("REDbot check FAILED: see the BAD findings or errors above.")
        return 1
    print("REDbot check passed: no BAD findings.")
    return 0


def main(argv: List[str]) -> int:
    if len(argv) == 3 and argv[1] == "site":
        make_site(argv[2])
        return 0
    if len(argv) >= 4 and argv[1] == "report":
        return report(argv[2], argv[3:])
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
