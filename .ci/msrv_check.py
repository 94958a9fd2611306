#!/usr/bin/env python3
"""Fails when a crate in Cargo.lock needs a newer Rust than Cargo.toml's rust-version.

Reads `cargo metadata --locked` (every locked package, dev-dependencies included, as
the build and the tests need them) and compares each package's own `rust-version`
with wharf's. Prints the packages that set the minimum, so a lock update that raises
it says which crate did.

Usage: python3 .ci/msrv_check.py   (from anywhere; needs cargo)
"""

import json
import os
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=root,
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    meta = json.loads(out)
    resolved = {node["id"] for node in meta["resolve"]["nodes"]}
    members = set(meta["workspace_members"])
    ours = [p for p in meta["packages"] if p["id"] in members]
    if len(ours) != 1 or not ours[0].get("rust_version"):
        sys.exit("msrv: Cargo.toml must set rust-version")
    declared = ours[0]["rust_version"]
    needs = [
        (version(p["rust_version"]), p["name"], p["version"], p["rust_version"])
        for p in meta["packages"]
        if p["id"] in resolved and p["id"] not in members and p.get("rust_version")
    ]
    needs.sort(reverse=True)
    newest = needs[0][0] if needs else (0, 0, 0)
    too_new = [n for n in needs if n[0] > version(declared)]
    if too_new:
        for _, name, ver, rust in too_new:
            print(f"msrv: {name} {ver} needs Rust {rust}", file=sys.stderr)
        sys.exit(
            f"msrv: Cargo.toml says rust-version = {declared}, "
            "but the locked crates above need more"
        )
    top = [f"{name} {ver}" for v, name, ver, _ in needs if v == newest]
    print(f"msrv: rust-version {declared} covers every locked crate (highest: {', '.join(top)})")


if __name__ == "__main__":
    main()
