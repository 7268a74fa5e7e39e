#!/usr/bin/env bash
# Memory held by clients that ask for a large answer and read nothing, with and without the answer budget.
# Usage: scripts/bench-answers.sh [READERS]   (default 100; the flag listing is ~6.4 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
readers=${1:-100}
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p vexil
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
run() { # $1: port, $2: config file; sets $started to the server's pid
  VEXIL_BOOTSTRAP_TOKEN=vxl_bench_admin_token_0123456789 VEXIL_LOG=error target/release/vexil serve --bind "127.0.0.1:$1" \
    --data "$work/data-$1" --config "$2" > "$work/serve-$1.log" 2>&1 < /dev/null &
  started=$!
  until grep -q "listening on" "$work/serve-$1.log"; do sleep 0.1; done
}
printf 'header_timeout_seconds = 300\nmax_connections_per_address = 5000\n' > "$work/budget.toml"
printf 'header_timeout_seconds = 300\nmax_connections_per_address = 5000\nresponse_memory_mb = 65536\n' > "$work/unbounded.toml"
run 7093 "$work/budget.toml"; budget=$started
run 7094 "$work/unbounded.toml"; unbounded=$started
python3 - "$readers" "$budget" "$unbounded" <<'PY'
import json, socket, sys, urllib.request
readers, pids = int(sys.argv[1]), {7093: sys.argv[2], 7094: sys.argv[3]}
token = "vxl_bench_admin_token_0123456789"
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
def api(port, method, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return urllib.request.urlopen(request).read()
for port in pids:
    for index in range(20):
        big = lambda seed: {"blob": str(seed).rjust(32000, "0")}
        api(port, "POST", "/api/flags", {"name": f"ui.flag_{index}", "type": "json", "default": big(index),
            "variants": [{"name": f"v{v}", "value": big(v)} for v in range(6)]})
    size = len(api(port, "GET", "/api/flags"))
    before = rss(pids[port])
    held, refused = [], 0
    for _ in range(readers):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET /api/flags HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        head = s.recv(12)
        if head.endswith(b"503"):
            refused += 1
        held.append(s)
    after = rss(pids[port])
    label = "budget (256 MiB, the default)" if port == 7093 else "no budget (response_memory_mb = 65536)"
    print(f"{label}: listing {size / 2**20:.1f} MiB, {readers} readers that read nothing: RSS {before} -> {after} MiB, {refused} told 503 busy")
    for s in held:
        s.close()
PY
