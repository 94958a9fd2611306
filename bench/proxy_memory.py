#!/usr/bin/env python3
"""Memory per proxied connection: wharf, nginx and lighttpd as reverse proxies.

Each proxy forwards to one upstream, a small asyncio server in this script that
answers nothing by itself: it reads each request head and then does what the state
being measured asks. N clients (default 1,000) each send one GET through the proxy
and are then left in one of two states:

- waiting: the upstream has the request and has not answered; the proxy holds the
  client's connection, the upstream connection and the exchange in between;
- streaming: the upstream has sent a response head and 256 KiB of a 1 MiB body and
  then stalls; the clients read nothing (receive buffers of 4 KiB), so the proxy
  holds what it buffered of the body: in memory, or in a temporary file.

The proxies keep their default buffers: nginx's `proxy_pass` with no buffer
settings (`proxy_buffers 8 4k|8k`, then a temporary file), lighttpd's `mod_proxy`
as shipped, wharf's `--proxy` as shipped. Reported: each proxy's resident memory
(VmRSS) before the clients and once all N are in the state and the proxy's memory
has stopped growing, and the difference per connection. Memory the kernel holds in
socket buffers is in none of the figures, nor is a temporary file's (in RAM if /tmp
is a tmpfs). Every server listens on 127.0.0.1, runs
one worker on CPU 0, and is stopped at the end.

Usage: bench/proxy_memory.py [--connections N]
Needs: cargo, nginx, lighttpd, taskset.
"""

import argparse
import asyncio
import os
import resource
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time

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
    client_body_temp_path ${PREFIX}/body;
    proxy_temp_path ${PREFIX}/proxy;
    fastcgi_temp_path ${PREFIX}/fastcgi;
    uwsgi_temp_path ${PREFIX}/uwsgi;
    scgi_temp_path ${PREFIX}/scgi;
    server {
        listen 127.0.0.1:${PORT};
        location / {
            proxy_pass http://127.0.0.1:${UP_PORT};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""

LIGHTTPD_CONF = """
server.modules = ("mod_proxy")
server.document-root = "${PREFIX}"
server.bind = "127.0.0.1"
server.port = ${PORT}
server.max-fds = 16384
server.max-connections = 8192
server.errorlog = "${PREFIX}/lighttpd-error.log"
server.upload-dirs = ("${PREFIX}")
proxy.server = ("" => (("host" => "127.0.0.1", "port" => ${UP_PORT})))
"""

BODY = 1024 * 1024
SENT = 256 * 1024


class Upstream:
    """The app: reads request heads, then holds them (waiting) or sends part of a
    body and stalls (streaming). Counts the requests it has taken."""

    def __init__(self, port, mode):
        self.port, self.mode = port, mode
        self.taken = 0
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.failed = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10) or self.failed:
            raise SystemExit(f"the upstream did not start: {self.failed}")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.stop = asyncio.Event()
        try:
            server = self.loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", self.port, backlog=4096))
        except OSError as e:
            self.failed = e
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_until_complete(self.stop.wait())
        server.close()
        # Let every connection's task close its socket before the loop goes.
        tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.run_until_complete(server.wait_closed())
        self.loop.close()

    async def _serve(self, reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.mode == "streaming":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             + f"Content-Length: {BODY}\r\n\r\n".encode())
                writer.write(b"x" * SENT)
                await writer.drain()
            with self.lock:
                self.taken += 1
            await self.stop.wait()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def count(self):
        with self.lock:
            return self.taken

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=10)


def settle(pid, upstream, n, deadline=60.0):
    """Waits until the upstream has taken all n requests and the proxy's memory has
    not grown for a second; returns its RSS then."""
    end = time.monotonic() + deadline
    while upstream.count() < n and time.monotonic() < end:
        time.sleep(0.1)
    if upstream.count() < n:
        raise SystemExit(f"only {upstream.count()} of {n} requests reached the upstream")
    last, steady_since = rss_kib(pid), time.monotonic()
    while time.monotonic() - steady_since < 1.0:
        if time.monotonic() > end:
            raise SystemExit("the proxy's memory did not stop growing")
        time.sleep(0.2)
        now = rss_kib(pid)
        if now > last:
            last, steady_since = now, time.monotonic()
    return last


def run_one(make_argv, mode, n, tmp):
    """RSS of the proxy `make_argv` builds, before and with n clients in `mode`."""
    up_port, port = free_port(), free_port()
    upstream = Upstream(up_port, mode)
    argv = make_argv(port, up_port)
    proc = subprocess.Popen(["taskset", "-c", "0"] + argv, cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clients = []
    try:
        wait_port(port, proc)
        before = rss_kib(proc.pid)
        for _ in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /x HTTP/1.1\r\nHost: app\r\n\r\n")
            clients.append(s)
        during = settle(proc.pid, upstream, n)
        return before, during
    finally:
        for s in clients:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        upstream.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connections", type=int, default=1000)
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO, check=True)
    wharf_bin = os.path.join(REPO, "target", "release", "wharf")
    n = args.connections
    rows = []
    with tempfile.TemporaryDirectory(prefix="wharf-proxy-memory-") as tmp:
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)

        def configured(name, template, port, up_port):
            """A folder of its own for one server run, and its filled-in config."""
            prefix = os.path.join(tmp, f"{name}-{port}")
            os.makedirs(prefix)
            conf = os.path.join(prefix, f"{name}.conf")
            with open(conf, "w") as f:
                f.write(string.Template(template).substitute(
                    PREFIX=prefix, PORT=port, UP_PORT=up_port))
            return prefix, conf

        def nginx(port, up_port):
            prefix, conf = configured("nginx", NGINX_CONF, port, up_port)
            return ["nginx", "-c", conf, "-p", prefix]

        def lighttpd(port, up_port):
            _, conf = configured("lighttpd", LIGHTTPD_CONF, port, up_port)
            return ["lighttpd", "-D", "-f", conf]

        def wharf(port, up_port):
            return [wharf_bin, empty, "-b", "127.0.0.1", "--quiet", "--workers", "1",
                    "-p", str(port), "--proxy", f"/=http://127.0.0.1:{up_port}"]

        for mode in ("waiting", "streaming"):
            for name, make in (("nginx", nginx), ("lighttpd", lighttpd), ("wharf", wharf)):
                before, during = run_one(make, mode, n, tmp)
                rows.append((mode, name, before, during, (during - before) * 1024 / n))
                print(f"{mode} {name} done", file=sys.stderr)
    print(f"\n{n} proxied connections; each proxy one worker on CPU 0\n")
    print("| state | proxy | RSS before (KiB) | RSS with the connections (KiB) | per connection (bytes) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for mode, name, before, during, per in rows:
        print(f"| {mode} | {name} | {before:,} | {during:,} | {per:,.0f} |")


if __name__ == "__main__":
    main()
