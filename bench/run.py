#!/usr/bin/env python3
"""wharf against nginx and lighttpd, same machine, same run, reported as ratios.

Builds wharf in release mode, makes a test site in a temporary folder, starts wharf,
Debian's nginx (config: bench/nginx.conf) and Debian's lighttpd (bench/lighttpd.conf)
on loopback with each server pinned to CPU 0 and the load generator to CPU 1, and runs
every test interleaved (nginx, lighttpd, wharf, nginx ...) for several rounds. For each
test it prints the median throughput, the ratios wharf/nginx and wharf/lighttpd, and
throughput per server CPU-second (the server's own user+system time from /proc), so a
saturated load generator cannot hide a difference. lighttpd takes part in the rows
where it has the feature as configured: static files over HTTP/1.1, h2c and TLS, the
folder listing, the logged row, uploads (mod_webdav) and the proxy (mod_proxy); not
the cache row (lighttpd has no proxy cache).

Needs: cargo, nginx, lighttpd, wrk, h2load, openssl (Debian: apt-get install
nginx-light lighttpd lighttpd-mod-openssl lighttpd-mod-webdav wrk nghttp2-client
openssl). Every server it starts listens on 127.0.0.1 and is stopped at
the end; every load run is bounded.

Usage: bench/run.py [--rounds N] [--duration SECONDS] [--only TEST[,TEST...]]
       bench/run.py --ab OLD_WHARF_BINARY [--rounds N] [--duration SECONDS] [--only ...]
       bench/run.py --dynamic [--rounds N] [--duration SECONDS]

With --ab, the fresh build is run against another wharf binary instead of nginx (an
A/B of a change: build the old commit, copy its target/release/wharf aside, pass it
here), on the plain-HTTP static-file tests (default: 1k-keepalive and 1k-close), interleaved the
same way, and the ratio is new/old.

With --dynamic, the dynamic-page rows: a trivial CGI program (`#!/bin/sh` printing a
header and "ok") through wharf --cgi, lighttpd's mod_cgi (bench/lighttpd-cgi.conf)
and nginx with fcgiwrap (bench/nginx-dynamic.conf), in requests per second, each
server and the programs it starts on CPU 0; and a PHP hello through one php-fpm
pool (on CPU 1, beside the load generator) behind wharf and behind nginx's
fastcgi_pass (two pools of the same configuration, one per front server), in
requests per front-server CPU-second. Needs lighttpd, fcgiwrap
and php-fpm besides nginx and wrk.
"""

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = "0"
CLIENT_CPU = "1"
BIG = 256 * 1024 * 1024


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def group_members(pgid):
    """The processes of process group `pgid` (fcgiwrap and its children)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, proc, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server did not listen on {port}")


def make_site(root):
    os.makedirs(root)
    with open(os.path.join(root, "1k.bin"), "wb") as f:
        f.write(os.urandom(1024))
    with open(os.path.join(root, "100k.bin"), "wb") as f:
        f.write(os.urandom(100 * 1024))
    chunk = os.urandom(1024 * 1024)
    with open(os.path.join(root, "256m.bin"), "wb") as f:
        for _ in range(BIG // len(chunk)):
            f.write(chunk)
    listing = os.path.join(root, "dir5000")
    os.makedirs(listing)
    for i in range(5000):
        with open(os.path.join(listing, f"file-{i:05d}.txt"), "wb") as f:
            f.write(b"x" * (i % 97))


class Server:
    def __init__(self, name, argv, port, scheme="http", env=None, stdout=None, cpu=SERVER_CPU):
        self.name, self.argv, self.port, self.scheme, self.env = name, argv, port, scheme, env
        self.cpu = cpu
        self.stdout = stdout
        self.proc = None

    def start(self):
        out = open(self.stdout, "ab") if self.stdout else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            ["taskset", "-c", self.cpu] + self.argv,
            stdout=out,
            stderr=subprocess.DEVNULL,
            env=self.env,
        )
        if self.stdout:
            out.close()
        wait_port(self.port, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def at(self, port, scheme):
        """The same process, reached on another of its ports."""
        return _Endpoint(self, port, scheme)


class _Endpoint:
    """Another port of a running server; shares its process (and CPU accounting)."""

    def __init__(self, server, port, scheme):
        self.server, self.port, self.scheme, self.name = server, port, scheme, server.name

    @property
    def proc(self):
        return self.server.proc

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


def wrk(url, duration, connections, headers=(), script=None):
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", os.path.join(HERE, script)]
    out = subprocess.run(argv + [url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses\n{out}")
    return rps


def h2load(url, requests, clients, streams):
    """Runs h2load; returns requests/second and the seconds it took."""
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", f"-n{requests}", f"-c{clients}",
            f"-m{streams}", url]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    m = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out)
    status = re.search(r"status codes: (\d+) 2xx", out)
    if not m or not status or int(status.group(1)) != requests:
        raise SystemExit(f"{url}: h2load did not complete every request\n{out}")
    elapsed = float(m.group(1)) / {"us": 1e6, "ms": 1e3, "s": 1.0}[m.group(2)]
    return float(m.group(3)), elapsed


def download(url, count):
    """Downloads `url` `count` times, reading 1 MiB at a time; returns bytes/second."""
    host, port = "127.0.0.1", int(url.split(":")[2].split("/")[0])
    path = "/" + url.split("/", 3)[3]
    buf = bytearray(1024 * 1024)
    view = memoryview(buf)
    total = 0
    start = time.monotonic()
    for _ in range(count):
        with socket.create_connection((host, port)) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
            while True:
                n = s.recv_into(view)
                if n == 0:
                    break
                total += n
    elapsed = time.monotonic() - start
    if total < count * BIG:
        raise SystemExit(f"short download: {total} bytes")
    return total / elapsed


BIG_PUT = 1024 * 1024 * 1024


def upload(url, size):
    """PUTs `size` bytes to `url` on one connection; returns bytes/second."""
    host, port = "127.0.0.1", int(url.split(":")[2].split("/")[0])
    path = "/" + url.split("/", 3)[3]
    chunk = b"u" * (4 * 1024 * 1024)
    start = time.monotonic()
    with socket.create_connection((host, port)) as s:
        s.sendall(f"PUT {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n"
                  f"Content-Length: {size}\r\n\r\n".encode())
        sent = 0
        while sent < size:
            s.sendall(chunk)
            sent += len(chunk)
        answer = s.recv(4096)
    elapsed = time.monotonic() - start
    status = int(answer.split(b" ", 2)[1])
    if status not in (200, 201, 204):
        raise SystemExit(f"{url}: PUT answered {status}")
    return size / elapsed


def idle_connections(port, count):
    """Opens `count` keep-alive connections, each after one request; returns them."""
    socks = []
    req = b"GET /1k.bin HTTP/1.1\r\nHost: b\r\n\r\n"
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    for s in socks:
        got = b""
        while b"\r\n\r\n" not in got or len(got) < 1024:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("connection closed during the idle-connection test")
            got += chunk
    return socks


TESTS = {
    "1k-keepalive": dict(kind="wrk", path="/1k.bin", connections=50, unit="req/s"),
    "1k-logged": dict(kind="wrk", path="/1k.bin", connections=50, unit="req/s", logged=True),
    "1k-close": dict(
        kind="wrk", path="/1k.bin", connections=50, unit="req/s", headers=["Connection: close"]
    ),
    "100k-keepalive": dict(kind="wrk", path="/100k.bin", connections=50, unit="req/s"),
    "listing-5000": dict(kind="wrk", path="/dir5000/", connections=10, unit="req/s"),
    "256m-download": dict(kind="download", path="/256m.bin", unit="MB/s"),
    # h2load rows: `streams` concurrent streams on each of `clients` connections.
    "h2c-1k": dict(kind="h2load", path="/1k.bin", unit="req/s", clients=50, streams=10),
    "h2c-1k-c10m10": dict(kind="h2load", path="/1k.bin", unit="req/s", clients=10, streams=10),
    "h2c-1k-c100m1": dict(kind="h2load", path="/1k.bin", unit="req/s", clients=100, streams=1),
    "h2c-100k": dict(kind="h2load", path="/100k.bin", unit="req/s", clients=10, streams=10,
                     requests=20_000),
    "h2-tls-1k": dict(kind="h2load", path="/1k.bin", unit="req/s", tls=True, clients=50,
                      streams=10),
    "h2-tls-1k-c10m10": dict(kind="h2load", path="/1k.bin", unit="req/s", tls=True,
                             clients=10, streams=10),
    "h2-tls-1k-c100m1": dict(kind="h2load", path="/1k.bin", unit="req/s", tls=True,
                             clients=100, streams=1),
    "proxy-1k": dict(kind="wrk", path="/1k.bin", connections=50, unit="req/s", proxy=True),
    "proxy-256m": dict(kind="download", path="/256m.bin", unit="MB/s", proxy=True),
    # A PUT through the proxy to the upstream's /put/ (stored there): received whole by
    # the proxy first (request buffering), then handed on.
    "proxy-put-256m": dict(kind="put", path="/put/p.bin", unit="MB/s", proxy=True, size=BIG),
    "proxy-cache-1k": dict(kind="wrk", path="/cached/1k.bin", connections=50, unit="req/s",
                           cached=True),
    "put-1g": dict(kind="put", path="/big.bin", unit="MB/s", upload=True, size=BIG_PUT),
    "put-4k": dict(kind="wrk", path="/", connections=10, unit="req/s", upload=True,
                   script="put4k.lua"),
    "tls-handshakes": dict(
        kind="wrk", path="/1k.bin", connections=50, unit="conn/s", tls=True,
        headers=["Connection: close"],
    ),
}


def run_one(server, test, duration):
    before = cpu_seconds(server.proc.pid)
    if test["kind"] == "wrk":
        value = wrk(server.url(test["path"]), duration, test["connections"],
                    test.get("headers", ()), test.get("script"))
        elapsed = duration
    elif test["kind"] == "h2load":
        value, elapsed = h2load(server.url(test["path"]), test.get("requests", 100_000),
                                test["clients"], test["streams"])
    elif test["kind"] == "put":
        start = time.monotonic()
        value = upload(server.url(test["path"]), test["size"]) / 1e6
        elapsed = time.monotonic() - start
    else:
        start = time.monotonic()
        value = download(server.url(test["path"]), 4) / 1e6
        elapsed = time.monotonic() - start
    cpu = cpu_seconds(server.proc.pid) - before
    # Work per server CPU-second: total work done / CPU seconds used.
    per_cpu = value * elapsed / cpu if cpu > 0 else float("inf")
    return value, per_cpu, cpu / elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated test names")
    ap.add_argument("--ab", metavar="OLD_BINARY", help="compare with this wharf build")
    ap.add_argument("--dynamic", action="store_true", help="the CGI and FastCGI rows")
    args = ap.parse_args()
    if args.ab:
        return ab(args)
    if args.dynamic:
        return dynamic(args)
    for tool in ("nginx", "lighttpd", "wrk", "h2load", "openssl", "taskset", "cargo"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is required (apt-get install nginx-light lighttpd "
                             "lighttpd-mod-openssl lighttpd-mod-webdav wrk nghttp2-client)")
    if os.cpu_count() < 2:
        raise SystemExit("needs two CPUs: one for the server, one for the load generator")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    sh(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO)
    wharf_bin = os.path.join(REPO, "target", "release", "wharf")
    tests = [t for t in TESTS if not args.only or t in args.only.split(",")]

    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as tmp:
        site = os.path.join(tmp, "site")
        make_site(site)
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        sh(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
             "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        ports = {
            name: free_port()
            for name in ("ng", "ng_h2c", "ng_tls", "ng_log", "ng_put", "ng_proxy", "ng_cache",
                         "up", "wh", "wh_tls", "wh_log", "wh_put", "wh_proxy", "wh_cache",
                         "li", "li_tls", "li_log", "li_put", "li_proxy")
        }
        uploads = os.path.join(tmp, "uploads")
        os.makedirs(os.path.join(uploads, ".nginx-body"))
        os.makedirs(os.path.join(uploads, ".lighttpd-body"))
        os.makedirs(os.path.join(uploads, ".upstream-body"))
        ng_dir = os.path.join(tmp, "nginx")
        os.makedirs(ng_dir)
        with open(os.path.join(HERE, "nginx.conf")) as f:
            conf = string.Template(f.read()).substitute(
                PREFIX=ng_dir, PORT=ports["ng"], H2C_PORT=ports["ng_h2c"],
                TLS_PORT=ports["ng_tls"], LOG_PORT=ports["ng_log"], CERT=cert, KEY=key,
                ROOT=site, PUT_PORT=ports["ng_put"], UPLOAD_ROOT=uploads,
                PROXY_PORT=ports["ng_proxy"], UP_PORT=ports["up"],
                CACHE_PORT=ports["ng_cache"],
            )
        with open(os.path.join(HERE, "upstream.conf")) as f:
            up_conf_text = string.Template(f.read()).substitute(
                PREFIX=ng_dir, UP_PORT=ports["up"], ROOT=site, UPLOAD_ROOT=uploads,
            )
        ng_conf = os.path.join(ng_dir, "nginx.conf")
        with open(ng_conf, "w") as f:
            f.write(conf)
        up_conf = os.path.join(ng_dir, "upstream.conf")
        with open(up_conf, "w") as f:
            f.write(up_conf_text)
        li_conf = fill("lighttpd.conf", os.path.join(ng_dir, "lighttpd.conf"), PREFIX=ng_dir,
                       ROOT=site, PORT=ports["li"], TLS_PORT=ports["li_tls"],
                       LOG_PORT=ports["li_log"], CERT=cert, KEY=key,
                       PUT_PORT=ports["li_put"], UPLOAD_ROOT=uploads,
                       PROXY_PORT=ports["li_proxy"], UP_PORT=ports["up"])
        wharf_args = [wharf_bin, site, "-b", "127.0.0.1", "--quiet", "--workers", "1"]
        nginx = Server("nginx", ["nginx", "-c", ng_conf, "-p", ng_dir], ports["ng"])
        lighttpd = Server("lighttpd", ["lighttpd", "-D", "-f", li_conf], ports["li"])
        wharf = Server("wharf", wharf_args + ["-p", str(ports["wh"])], ports["wh"])
        wharf_tls = Server(
            "wharf",
            wharf_args + ["-p", str(ports["wh_tls"]), "--tls-cert", cert, "--tls-key", key],
            ports["wh_tls"],
            scheme="https",
        )
        # Logging as shipped: wharf's default Combined log to stdout, into a file as
        # nginx's access log goes into one.
        wharf_log = Server(
            "wharf",
            [wharf_bin, site, "-b", "127.0.0.1", "--workers", "1", "-p", str(ports["wh_log"])],
            ports["wh_log"],
            stdout=os.path.join(tmp, "wharf-access.log"),
        )
        upstream = Server("upstream", ["nginx", "-c", up_conf, "-p", ng_dir], ports["up"],
                          cpu=CLIENT_CPU)
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        wharf_proxy = Server(
            "wharf",
            [wharf_bin, empty, "-b", "127.0.0.1", "--quiet", "--workers", "1",
             "--proxy", f"/=http://127.0.0.1:{ports['up']}", "-p", str(ports["wh_proxy"]),
             "--max-upload-size", str(2 * 1024 ** 3)],
            ports["wh_proxy"],
        )
        wharf_cache = Server(
            "wharf",
            [wharf_bin, empty, "-b", "127.0.0.1", "--quiet", "--workers", "1",
             "--proxy", f"/=http://127.0.0.1:{ports['up']}", "--proxy-cache", "64MiB",
             "-p", str(ports["wh_cache"])],
            ports["wh_cache"],
        )
        wharf_put = Server(
            "wharf",
            [wharf_bin, uploads, "-b", "127.0.0.1", "--quiet", "--workers", "1", "--upload",
             "--max-upload-size", str(2 * 1024 ** 3), "-p", str(ports["wh_put"])],
            ports["wh_put"],
        )

        # Which endpoint of which process each kind of test talks to.
        def endpoints(test):
            if test.get("upload"):
                return [nginx.at(ports["ng_put"], "http"), lighttpd.at(ports["li_put"], "http"),
                        wharf_put]
            if test.get("proxy"):
                return [nginx.at(ports["ng_proxy"], "http"),
                        lighttpd.at(ports["li_proxy"], "http"), wharf_proxy]
            if test.get("cached"):
                return [nginx.at(ports["ng_cache"], "http"), wharf_cache]
            if test.get("logged"):
                return [nginx.at(ports["ng_log"], "http"), lighttpd.at(ports["li_log"], "http"),
                        wharf_log]
            if test.get("tls"):
                return [nginx.at(ports["ng_tls"], "https"),
                        lighttpd.at(ports["li_tls"], "https"), wharf_tls]
            if test["kind"] == "h2load":
                # lighttpd takes h2c with prior knowledge on its HTTP/1.1 port.
                return [nginx.at(ports["ng_h2c"], "http"), lighttpd, wharf]
            return [nginx, lighttpd, wharf]

        results = {t: {ep.name: [] for ep in endpoints(TESTS[t])} for t in tests}
        memory = {}
        try:
            # Memory first, on fresh processes: idle, then with 10,000 keep-alive
            # connections that have each made one request and then gone quiet for 1 s.
            for server in (nginx, lighttpd, wharf):
                server.start()
                idle = rss_kib(server.proc.pid)
                socks = idle_connections(server.port, 10_000)
                time.sleep(1)
                busy = rss_kib(server.proc.pid)
                for s in socks:
                    s.close()
                memory[server.name] = (idle, busy)
                server.stop()
            for server in (upstream, nginx, lighttpd, wharf, wharf_tls, wharf_log, wharf_put,
                           wharf_proxy, wharf_cache):
                server.start()
            # Warm everything (page cache, open-file caches, wharf's ETag of the big file).
            for t in tests:
                for ep in endpoints(TESTS[t]):
                    kind = TESTS[t]["kind"]
                    if kind == "put":
                        continue
                    if kind == "wrk":
                        wrk(ep.url(TESTS[t]["path"]), 1, 4, TESTS[t].get("headers", ()),
                            TESTS[t].get("script"))
                    elif kind == "h2load":
                        h2load(ep.url(TESTS[t]["path"]), 1000, 4, TESTS[t]["streams"])
                    else:
                        download(ep.url(TESTS[t]["path"]), 1)
            for r in range(args.rounds):
                for t in tests:
                    for ep in endpoints(TESTS[t]):
                        results[t][ep.name].append(run_one(ep, TESTS[t], args.duration))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for server in (upstream, nginx, lighttpd, wharf, wharf_tls, wharf_log, wharf_put,
                           wharf_proxy, wharf_cache):
                server.stop()

    print(f"\n{args.rounds} rounds of {args.duration} s; server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}\n")
    print_table(tests, results)
    if memory:
        names = list(memory)
        print("\n| memory | " + " | ".join(names) + " |")
        print("| --- |" + " ---: |" * len(names))
        rows = (
            ("RSS idle, fresh process (KiB)", lambda m: f"{m[0]:,}"),
            ("RSS with 10,000 keep-alive connections idle 1 s (KiB)", lambda m: f"{m[1]:,}"),
            ("per idle connection (bytes)", lambda m: f"{(m[1] - m[0]) * 1024 // 10_000:,}"),
        )
        for label, cell in rows:
            print(f"| {label} | " + " | ".join(cell(memory[n]) for n in names) + " |")


def print_table(tests, results):
    """Medians per server, and wharf's ratio to each other server (a blank where a
    server has no such row): throughput, then throughput per server CPU-second."""
    others = ("nginx", "lighttpd")
    print("| test | nginx | lighttpd | wharf | wharf/nginx | wharf/lighttpd "
          "| nginx per CPU-s | lighttpd per CPU-s | wharf per CPU-s "
          "| wharf/nginx per CPU-s | wharf/lighttpd per CPU-s |")
    print("| --- |" + " ---: |" * 10)
    for t in tests:
        med = {
            name: (
                statistics.median(v[0] for v in runs),
                statistics.median(v[1] for v in runs),
            )
            for name, runs in results[t].items()
        }
        w = med["wharf"]
        cells = []
        for i in (0, 1):
            cells += [f"{med[n][i]:,.0f}" if n in med else "" for n in others]
            cells.append(f"{w[i]:,.0f}")
            cells += [f"{w[i] / med[n][i]:.2f}x" if n in med else "" for n in others]
        print(f"| {t} ({TESTS[t]['unit']}) | " + " | ".join(cells) + " |")


def ab(args):
    """The fresh build against `args.ab`, interleaved, on plain-HTTP static-file tests."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is required (apt-get install wrk)")
    sh(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO)
    new_bin = os.path.join(REPO, "target", "release", "wharf")
    names = args.only.split(",") if args.only else ["1k-keepalive", "1k-close"]
    for t in names:
        test = TESTS[t]
        served = not (test.get("tls") or test.get("logged") or test.get("proxy"))
        if test["kind"] not in ("wrk", "download") or not served:
            raise SystemExit(f"{t}: --ab runs plain-HTTP static-file tests only")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="wharf-ab-") as tmp:
        site = os.path.join(tmp, "site")
        make_site(site)
        servers = []
        for name, binary in (("old", args.ab), ("new", new_bin)):
            port = free_port()
            argv = [binary, site, "-b", "127.0.0.1", "--quiet", "--workers", "1", "-p", str(port)]
            servers.append(Server(name, argv, port))
        results = {t: {"old": [], "new": []} for t in names}
        try:
            for server in servers:
                server.start()
            for t in (t for t in names if TESTS[t]["kind"] == "wrk"):
                for server in servers:
                    wrk(server.url(TESTS[t]["path"]), 1, 4)
            for r in range(args.rounds):
                for t in names:
                    # Alternate which build goes first, so neither always runs warmer.
                    for server in servers if r % 2 == 0 else servers[::-1]:
                        results[t][server.name].append(run_one(server, TESTS[t], args.duration))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for server in servers:
                server.stop()
    print(f"\n{args.rounds} rounds of {args.duration} s; server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}\n")
    print("| test | old | new | ratio | old per CPU-s | new per CPU-s | ratio per CPU-s | per CPU-s, each round |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for t in names:
        unit = TESTS[t]["unit"]
        med = {
            name: (
                statistics.median(v[0] for v in runs),
                statistics.median(v[1] for v in runs),
            )
            for name, runs in results[t].items()
        }
        o, n = med["old"], med["new"]
        # Thousands for request rates; MB/s rows as they are.
        short = (lambda v: f"{v:,.0f}") if unit == "MB/s" else (lambda v: f"{v / 1000:.0f}k")
        spread = " ".join(
            f"{short(a[1])}/{short(b[1])}"
            for a, b in zip(results[t]["old"], results[t]["new"])
        )
        print(
            f"| {t} ({unit}) | {o[0]:,.0f} | {n[0]:,.0f} | {n[0] / o[0]:.2f}x "
            f"| {o[1]:,.0f} | {n[1]:,.0f} | {n[1] / o[1]:.2f}x | old/new {spread} |"
        )


def php_fpm_binary():
    found = sorted(
        os.path.join(d, n)
        for d in ("/usr/sbin", "/usr/local/sbin")
        if os.path.isdir(d)
        for n in os.listdir(d)
        if n.startswith("php-fpm")
    )
    if not found:
        raise SystemExit("php-fpm is required (apt-get install php-fpm)")
    return found[0]


def fill(template, out, **values):
    with open(os.path.join(HERE, template)) as f:
        text = string.Template(f.read()).substitute(**values)
    with open(out, "w") as f:
        f.write(text)
    return out


def dynamic(args):
    """CGI: wharf vs lighttpd vs nginx+fcgiwrap; PHP: wharf vs nginx, one php-fpm pool."""
    for tool in ("nginx", "lighttpd", "fcgiwrap", "wrk", "taskset", "cargo"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is required (apt-get install nginx-light lighttpd fcgiwrap wrk php-fpm)")
    fpm = php_fpm_binary()
    sh(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO)
    wharf_bin = os.path.join(REPO, "target", "release", "wharf")
    with tempfile.TemporaryDirectory(prefix="wharf-dyn-") as tmp:
        site = os.path.join(tmp, "site")
        os.makedirs(os.path.join(site, "cgi-bin"))
        ok = os.path.join(site, "cgi-bin", "ok.sh")
        with open(ok, "w") as f:
            f.write("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n")
        os.chmod(ok, 0o755)
        php_root = os.path.join(tmp, "php")
        os.makedirs(php_root)
        with open(os.path.join(php_root, "hello.php"), "w") as f:
            f.write("<?php echo 'Hello from PHP';")
        # Two pools of the same configuration, one per front server: a kept
        # connection holds a worker, so one front server's idle connections would
        # starve the other's.
        php_socket = os.path.join(tmp, "php.sock")
        ng_php_socket = os.path.join(tmp, "php-nginx.sock")
        fcgiwrap_socket = os.path.join(tmp, "fcgiwrap.sock")
        for name, socket_path in (("php-fpm.conf", php_socket), ("php-fpm-nginx.conf", ng_php_socket)):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(
                    "[global]\nerror_log = /dev/null\ndaemonize = no\n[www]\n"
                    f"listen = {socket_path}\npm = static\npm.max_children = 4\n"
                    "pm.max_requests = 0\n"
                )
        ports = {name: free_port() for name in ("wh_cgi", "li_cgi", "ng_cgi", "wh_php", "ng_php")}
        ng_conf = fill(
            "nginx-dynamic.conf", os.path.join(tmp, "nginx-dynamic.conf"), PREFIX=tmp,
            CGI_PORT=ports["ng_cgi"], PHP_PORT=ports["ng_php"], ROOT=site, PHP_ROOT=php_root,
            PHP_SOCKET=ng_php_socket, FCGIWRAP_SOCKET=fcgiwrap_socket,
        )
        li_conf = fill(
            "lighttpd-cgi.conf", os.path.join(tmp, "lighttpd.conf"), PREFIX=tmp,
            PORT=ports["li_cgi"], ROOT=site,
        )
        with open(os.path.join(tmp, "wharf-php.toml"), "w") as f:
            f.write(
                f'root = "{php_root}"\n[[rule]]\npath = "/**"\nhandler = "fastcgi"\n'
                f'upstream = "unix:{php_socket}"\n'
            )
        quiet = ["-b", "127.0.0.1", "--quiet", "--workers", "1"]
        # nginx's process and fcgiwrap's both answer for nginx's CGI row.
        # A process group of its own: fcgiwrap's work is done by its 8 children, whose
        # CPU time counts, and which are stopped with it.
        fcgiwrap = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, "fcgiwrap", "-c", "8", "-s", f"unix:{fcgiwrap_socket}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        pools = [
            subprocess.Popen(
                ["taskset", "-c", CLIENT_CPU, fpm, "--nodaemonize", "--allow-to-run-as-root",
                 "--fpm-config", os.path.join(tmp, name)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for name in ("php-fpm.conf", "php-fpm-nginx.conf")
        ]
        servers = {
            "wharf": Server("wharf", [wharf_bin, site, "--cgi", "-p", str(ports["wh_cgi"])] + quiet,
                            ports["wh_cgi"]),
            "lighttpd": Server("lighttpd", ["lighttpd", "-D", "-f", li_conf], ports["li_cgi"]),
            "nginx": Server("nginx", ["nginx", "-c", ng_conf, "-p", tmp], ports["ng_cgi"]),
            "wharf-php": Server("wharf", [wharf_bin, "--config", os.path.join(tmp, "wharf-php.toml"),
                                          "-p", str(ports["wh_php"])] + quiet, ports["wh_php"]),
        }
        rows = {
            "cgi-sh (req/s)": [("wharf", servers["wharf"], "/cgi-bin/ok.sh"),
                               ("lighttpd", servers["lighttpd"], "/cgi-bin/ok.sh"),
                               ("nginx+fcgiwrap", servers["nginx"], "/cgi-bin/ok.sh")],
            "php-hello (req/s)": [("wharf", servers["wharf-php"], "/hello.php"),
                                  ("nginx", servers["nginx"].at(ports["ng_php"], "http"),
                                   "/hello.php")],
        }
        results = {row: {name: [] for name, _, _ in eps} for row, eps in rows.items()}
        try:
            for s in servers.values():
                s.start()
            wait_socket = time.monotonic() + 20
            while not all(os.path.exists(p) for p in (php_socket, ng_php_socket, fcgiwrap_socket)):
                if time.monotonic() > wait_socket:
                    raise SystemExit("php-fpm or fcgiwrap did not start")
                time.sleep(0.05)
            for eps in rows.values():
                for _, ep, path in eps:
                    wrk(ep.url(path), 1, 4)
            for r in range(args.rounds):
                for row, eps in rows.items():
                    for name, ep, path in eps:
                        pids = [ep.proc.pid]
                        if name == "nginx+fcgiwrap":
                            pids += group_members(fcgiwrap.pid)
                        before = sum(cpu_seconds(p) for p in pids)
                        rps = wrk(ep.url(path), args.duration, 8)
                        cpu = sum(cpu_seconds(p) for p in pids) - before
                        results[row][name].append((rps, rps * args.duration / cpu if cpu else 0))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for s in servers.values():
                s.stop()
            os.killpg(fcgiwrap.pid, signal.SIGTERM)
            fcgiwrap.wait()
            for p in pools:
                p.terminate()
                p.wait()
    print(f"\n{args.rounds} rounds of {args.duration} s; servers (and the CGI programs they "
          f"start) on CPU {SERVER_CPU}; wrk and php-fpm on CPU {CLIENT_CPU}\n")
    print("| row | server | req/s | req per front-server CPU-s | wharf's ratio (req/s; per CPU-s) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for row, by_server in results.items():
        med = {n: (statistics.median(v[0] for v in runs), statistics.median(v[1] for v in runs))
               for n, runs in by_server.items()}
        w = med["wharf"]
        for name, (rps, per_cpu) in med.items():
            ratio = "" if name == "wharf" or not rps or not per_cpu else f"{w[0] / rps:.2f}x; {w[1] / per_cpu:.2f}x"
            print(f"| {row} | {name} | {rps:,.0f} | {per_cpu:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
