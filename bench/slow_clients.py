#!/usr/bin/env python3
"""wharf and nginx under slow-client attacks, in one run.

For each attack of slowhttptest (Debian package `slowhttptest`) — slowloris (slow
headers, -H), slow body (R-U-Dead-Yet, -B), slow read (tiny receive windows, -X)
and the Range attack (-R) — each server is attacked with 1,000 connections while a
probe fetches a small page every 250 ms on a connection of its own. Reported per
attack and server: the probe's median, p99 and worst latency, probes that failed
(no answer within 2 s), and the server's resident memory at the end. Each server
runs one worker on CPU 0; slowhttptest and the probe run on CPU 1. Every server
listens on 127.0.0.1 and is stopped at the end; every attack is bounded by -l.

Usage: bench/slow_clients.py [--seconds N] [--only H,B,X,R] [--servers nginx,wharf]
Needs: cargo, nginx, slowhttptest, taskset.
"""

import argparse
import os
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time

# The same helpers as the throughput benchmark.
from run import free_port, rss_kib, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

NGINX_CONF = """
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
master_process off;
pid ${PREFIX}/nginx.pid;
error_log ${PREFIX}/error.log crit;
events { worker_connections 20000; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path ${PREFIX}/body;
    proxy_temp_path ${PREFIX}/proxy;
    fastcgi_temp_path ${PREFIX}/fastcgi;
    uwsgi_temp_path ${PREFIX}/uwsgi;
    scgi_temp_path ${PREFIX}/scgi;
    server {
        listen 127.0.0.1:${PORT};
        root ${ROOT};
    }
}
"""

ATTACKS = {
    "H": ("slowloris (slow headers)", ["-H", "-i", "10", "-r", "500"], "/small.html"),
    "B": ("slow body (R-U-Dead-Yet)", ["-B", "-i", "10", "-r", "500", "-s", "65536"], "/small.html"),
    "X": ("slow read (receive window 512-1024 bytes)",
          ["-X", "-r", "500", "-w", "512", "-y", "1024", "-n", "5", "-z", "32", "-k", "3"],
          "/1m.bin"),
    "R": ("Range attack", ["-R", "-r", "500", "-a", "10", "-b", "3000"], "/1m.bin"),
}


def probe_once(port):
    """Seconds for one GET of the small page on a new connection; None on failure."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            s.sendall(b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            return None
        return time.monotonic() - start
    except OSError:
        return None


def probe(port, stop, out):
    while not stop.is_set():
        began = time.monotonic()
        out.append(probe_once(port))
        time.sleep(max(0.0, 0.25 - (time.monotonic() - began)))


def attack(name, port, pid, seconds):
    _, flags, path = ATTACKS[name]
    results = []
    stop = threading.Event()
    prober = threading.Thread(target=probe, args=(port, stop, results))
    prober.start()
    subprocess.run(
        ["taskset", "-c", "1", "slowhttptest", *flags, "-c", "1000", "-l", str(seconds),
         "-p", "2", "-u", f"http://127.0.0.1:{port}{path}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 60,
    )
    memory = rss_kib(pid)
    stop.set()
    prober.join()
    ok = sorted(r for r in results if r is not None)
    failed = sum(1 for r in results if r is None)
    if not ok:
        return (None, None, None, failed, len(results), memory)
    p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))]
    return (statistics.median(ok), p99, ok[-1], failed, len(results), memory)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--only", default="H,B,X,R")
    ap.add_argument("--servers", default="nginx,wharf")
    args = ap.parse_args()
    unknown = set(args.servers.split(",")) - {"nginx", "wharf"}
    if unknown:
        ap.error(f"--servers: not nginx or wharf: {', '.join(sorted(unknown))}")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO, check=True)
    wharf_bin = os.path.join(REPO, "target", "release", "wharf")
    rows = []
    with tempfile.TemporaryDirectory(prefix="wharf-slow-") as tmp:
        site = os.path.join(tmp, "site")
        os.makedirs(site)
        with open(os.path.join(site, "small.html"), "w") as f:
            f.write("<!doctype html><title>probe</title><p>hello\n")
        with open(os.path.join(site, "1m.bin"), "wb") as f:
            f.write(os.urandom(1024 * 1024))
        for name in args.only.split(","):
            for server in args.servers.split(","):
                port = free_port()
                if server == "nginx":
                    prefix = os.path.join(tmp, f"nginx-{name}")
                    os.makedirs(prefix)
                    conf = os.path.join(prefix, "nginx.conf")
                    with open(conf, "w") as f:
                        f.write(string.Template(NGINX_CONF).substitute(
                            PREFIX=prefix, PORT=port, ROOT=site))
                    argv = ["nginx", "-c", conf, "-p", prefix]
                else:
                    argv = [wharf_bin, site, "-b", "127.0.0.1", "-p", str(port), "--quiet",
                            "--workers", "1"]
                proc = subprocess.Popen(["taskset", "-c", "0", *argv],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_port(port, proc)
                    probe_once(port)
                    rows.append((name, server, attack(name, port, proc.pid, args.seconds)))
                finally:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                print(f"{name} {server} done", file=sys.stderr)

    print(f"\n1,000 attacking connections, {args.seconds} s per attack; probe every 250 ms\n")
    print("| attack | server | probe p50 (ms) | p99 (ms) | worst (ms) | failed probes | RSS at end (KiB) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, server, (p50, p99, worst, failed, total, memory) in rows:
        fmt = lambda v: "-" if v is None else f"{v * 1000:.1f}"
        print(f"| {ATTACKS[name][0]} | {server} | {fmt(p50)} | {fmt(p99)} | {fmt(worst)} "
              f"| {failed} of {total} | {memory:,} |")


if __name__ == "__main__":
    main()
