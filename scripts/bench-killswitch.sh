#!/usr/bin/env bash
# How long the production kill switch waits behind the longest write there is: an apply of FLAGS new flags.
# Usage: scripts/bench-killswitch.sh [FLAGS]   (default 10000; release build, embedded store)
set -euo pipefail
cd "$(dirname "$0")/.."
flags=${1:-10000}
cargo build --release -q -p vexil
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
token=vxl_bench_admin_token_0123456789
VEXIL_BOOTSTRAP_TOKEN=$token VEXIL_LOG=error target/release/vexil serve --bind 127.0.0.1:7097 --data "$work/data" > "$work/serve.log" 2>&1 &
until grep -q "listening on" "$work/serve.log"; do sleep 0.05; done
python3 - "$flags" "$token" <<'PY'
import json, sys, threading, time, urllib.request
flags, token = int(sys.argv[1]), sys.argv[2]
def call(method, path, body):
    request = urllib.request.Request(f"http://127.0.0.1:7097{path}", method=method, data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=120).read()
call("POST", "/api/flags", {"name": "ops.kill", "type": "boolean"})
call("POST", "/api/flags/ops.kill/environments/prod/enable", {"reason": "on"})
entries = [{"name": f"backend.flag_{index:05d}", "type": "boolean", "description": f"flag {index}"} for index in range(flags)]
done = threading.Event()
took = {}
def apply():
    start = time.perf_counter(); call("POST", "/api/flags/apply", {"flags": entries}); took["apply"] = time.perf_counter() - start; done.set()
waits = []
thread = threading.Thread(target=apply); thread.start()
time.sleep(0.05)
while not done.is_set():
    start = time.perf_counter()
    call("POST", "/api/flags/ops.kill/environments/prod/disable", {"reason": "incident"})
    waits.append(time.perf_counter() - start)
    call("POST", "/api/flags/ops.kill/environments/prod/enable", {"reason": "back"})
thread.join()
print(f"apply of {flags} flags: {took['apply']:.2f} s; {len(waits)} kill switches during it, the longest took {max(waits) * 1000:.0f} ms, the median {sorted(waits)[len(waits) // 2] * 1000:.0f} ms")
PY
