#!/usr/bin/env bash
# Runs the cache-tests suite against wharf (--proxy-cache) and against nginx's
# proxy_cache, each in front of the suite's own origin server. That origin listens
# on every interface, so the whole run belongs in a network namespace of its own:
#
#   unshare --net bash tests/cache-tests/run.sh WHARF_BINARY OUT_DIR
#
# Writes OUT_DIR/wharf.json and OUT_DIR/nginx.json (test id → true or the failure)
# and the servers' logs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
wharf=$(realpath "$1")
out=$(realpath -m "$2")
mkdir -p "$out"
pkg="$here/node_modules/http-cache-tests"
[ -d "$pkg" ] || { echo "run npm ci in $here first" >&2; exit 1; }

ip link set lo up
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Waits (at most 10 s) until something accepts connections on the port.
listening() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

(cd "$pkg" && npm_config_port=8000 npm_config_protocol=http \
    npm_config_pidfile="$work/origin.pid" exec node server/server.mjs) >"$out/origin.log" 2>&1 &
pids+=($!)
mkdir -p "$work/root"
"$wharf" -q -b 127.0.0.1 -p 8001 --proxy /=http://127.0.0.1:8000 --proxy-cache 64MiB \
    "$work/root" >"$out/wharf.log" 2>&1 &
pids+=($!)
sed "s|@WORK@|$work|g" "$here/nginx.conf" >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" >"$out/nginx.log" 2>&1 &
pids+=($!)
listening 8000 && listening 8001 && listening 8002

for server in wharf:8001 nginx:8002; do
    (cd "$pkg" && npm run --silent cli --base="http://127.0.0.1:${server#*:}") \
        >"$out/${server%%:*}.json" 2>"$out/${server%%:*}-client.log"
done
