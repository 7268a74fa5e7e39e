#!/usr/bin/env bash
# Memory per idle keep-alive connection, and what a client over the connection cap gets.
# Usage: scripts/bench-connections.sh [CONNECTIONS]   (default 2000; the cap run uses max_connections = CONNECTIONS / 2)
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-2000}
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
printf 'header_timeout_seconds = 300\n' > "$work/idle.toml"
printf 'header_timeout_seconds = 300\nmax_connections = %d\nmax_connections_per_address = %d\n' $((connections / 2)) $((connections / 2)) > "$work/cap.toml"
run 7091 "$work/idle.toml"; idle=$started
run 7092 "$work/cap.toml"; cap=$started
python3 - "$connections" "$idle" "$cap" <<'PY'
import socket, sys, time
count, idle_pid, cap_pid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def hold(port, n):
    held, refused = [], 0
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = s.recv(4096)
        if answer.startswith(b"HTTP/1.1 200"):
            held.append(s)
        else:
            refused += 1 if answer.startswith(b"HTTP/1.1 503") else 0
            s.close()
    return held, refused
before = rss(idle_pid)
held, _ = hold(7091, count)
time.sleep(1)
after = rss(idle_pid)
print(f"idle keep-alive connections: {len(held)}; RSS {before} KiB -> {after} KiB: {(after - before) / len(held):.1f} KiB per connection")
for s in held: s.close()
held, refused = hold(7092, count)
start = time.time()
probe = socket.create_connection(("127.0.0.1", 7092)); probe.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
answer = probe.recv(4096).split(b"\r\n")[0].decode()
print(f"at the cap of {count // 2}: {len(held)} held, {refused} answered 503 too_many_connections; one more: '{answer}' in {1000 * (time.time() - start):.1f} ms")
PY
