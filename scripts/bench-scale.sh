#!/usr/bin/env bash
# What Vexil costs as the number of flags grows: `vexil apply` of N boolean flags, restart, memory, the stream's
# snapshot, `GET /api/flags`, OFREP bulk evaluation, one write (over HTTP, and by the CLI with its process start) and
# `vexil import` of every flag's state into another environment, at 100, 1 000 and 10 000 flags.
# Usage: scripts/bench-scale.sh [COUNTS...]   (default: 100 1000 10000; release build, embedded store)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100 1000 10000)
cargo build --release -q -p vexil
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
export VEXIL_TOKEN=vxl_bench_admin_token_0123456789
vexil=target/release/vexil
seconds() { python3 -c 'import sys,time; print(f"{time.time():.6f}")'; }
start_server() { # $1: data dir, $2: port; sets $server
  VEXIL_BOOTSTRAP_TOKEN=$VEXIL_TOKEN VEXIL_LOG=error "$vexil" serve --bind "127.0.0.1:$2" --data "$1" > "$work/serve.log" 2>&1 < /dev/null &
  server=$!
  until grep -q "listening on" "$work/serve.log" 2>/dev/null; do sleep 0.01; done
}
printf '| flags | `vexil apply` | `vexil import` | restart | RSS | stream snapshot | `GET /api/flags` | OFREP bulk | one write (HTTP, median / p90) | one CLI write |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
port=7095
for count in "${counts[@]}"; do
  port=$((port + 1))
  data="$work/data-$count"
  python3 - "$count" > "$work/flags-$count.toml" <<'PY'
import sys
for index in range(int(sys.argv[1])):
    print(f'[[flag]]\nname = "backend.flag_{index:05d}"\ntype = "boolean"\ndescription = "flag number {index}"\ntags = ["bench"]\n')
PY
  start_server "$data" "$port"
  export VEXIL_SERVER="http://127.0.0.1:$port"
  before=$(seconds); "$vexil" apply "$work/flags-$count.toml" > /dev/null; after=$(seconds)
  apply=$(python3 -c "print(f'{$after - $before:.2f} s')")
  # Every flag's dev state, turned on, imported into staging: N changes in one import.
  "$vexil" export --env dev --out "$work/export-$count.json"
  python3 - "$work/export-$count.json" <<'PY'
import json, sys
document = json.load(open(sys.argv[1]))
for state in document["flags"].values():
    state["enabled"] = True
json.dump(document, open(sys.argv[1], "w"))
PY
  before=$(seconds); "$vexil" import --env staging --yes "$work/export-$count.json" > /dev/null 2>&1; after=$(seconds)
  imported=$(python3 -c "print(f'{$after - $before:.2f} s')")
  kill "$server"; wait "$server" 2>/dev/null || true
  : > "$work/serve.log"
  before=$(seconds); start_server "$data" "$port"; after=$(seconds)
  restart=$(python3 -c "print(f'{$after - $before:.2f} s')")
  rss=$(awk '/VmRSS/ {printf "%d MiB", $2 / 1024}' "/proc/$server/status")
  key=$("$vexil" token create --sdk --env dev | tail -1)
  python3 - "$port" "$key" "$VEXIL_TOKEN" "$vexil" <<'PY' > "$work/row"
import json, socket, statistics, subprocess, sys, time, urllib.request
port, key, token, vexil = sys.argv[1:5]
def timed(method, path, credential, body=None, runs=10):
    took = []
    for _ in range(runs):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body,
            headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/json"})
        start = time.perf_counter(); urllib.request.urlopen(request).read(); took.append(time.perf_counter() - start)
    return f"{statistics.median(took) * 1000:.0f} ms"
s = socket.create_connection(("127.0.0.1", int(port)))
s.sendall(f"GET /api/feature-flags/stream?env=dev HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
data = b""
while b"event: snapshot" not in data or not data.split(b"event: snapshot", 1)[1].count(b"\n\n"):
    data += s.recv(1 << 20)
snapshot = data.split(b"event: snapshot", 1)[1].split(b"\n\n", 1)[0]
listing = timed("GET", "/api/flags", token)
bulk = timed("POST", "/ofrep/v1/evaluate/flags", key, json.dumps({"context": {"targetingKey": "user-1"}}).encode())
# One write over one keep-alive connection, 200 times: a flag turned on and off in dev.
import http.client
connection = http.client.HTTPConnection("127.0.0.1", int(port))
writes = []
for index in range(200):
    action = "enable" if index % 2 == 0 else "disable"
    start = time.perf_counter()
    connection.request("POST", f"/api/flags/backend.flag_00001/environments/dev/{action}", body=b"",
                       headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse(); response.read()
    writes.append(time.perf_counter() - start)
    assert response.status == 200, response.status
writes.sort()
write = f"{statistics.median(writes) * 1000:.2f} / {writes[int(len(writes) * 0.9)] * 1000:.2f} ms"
took = []
for index in range(5):
    start = time.perf_counter()
    subprocess.run([vexil, "enable" if index % 2 == 0 else "disable", "backend.flag_00000", "--env", "dev"], check=True, capture_output=True)
    took.append(time.perf_counter() - start)
print(f"{len(snapshot) / 1024:.0f} KiB | {listing} | {bulk} | {write} | {statistics.median(took) * 1000:.0f} ms")
PY
  printf '| %s | %s | %s | %s | %s | %s |\n' "$count" "$apply" "$imported" "$restart" "$rss" "$(cat "$work/row")"
  kill "$server"; wait "$server" 2>/dev/null || true
  : > "$work/serve.log"
done
