#!/usr/bin/env bash
# OFREP single-flag evaluation requests per second, as a ratio to a bare hyper server, both measured by wrk in this
# one run with the server pinned to core 0 and wrk to core 1. Needs wrk (Debian package `wrk`).
# Usage: scripts/bench-ofrep.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p vexil -p vexil-loadtest
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

taskset -c 0 target/release/hello 127.0.0.1:7091 > "$work/hello.log" &
pids+=($!)
token=vxl_bench_admin_token_0123456789
VEXIL_BOOTSTRAP_TOKEN=$token VEXIL_LOG=warn taskset -c 0 target/release/vexil serve --bind 127.0.0.1:7092 --data "$work/data" > "$work/serve.log" &
pids+=($!)
until grep -q "listening on" "$work/serve.log" && grep -q "listening on" "$work/hello.log"; do sleep 0.1; done
export VEXIL_SERVER=http://127.0.0.1:7092 VEXIL_TOKEN=$token VEXIL_CONFIG_DIR=$work
target/release/vexil define ui.new_feature > /dev/null
target/release/vexil set ui.new_feature --env staging --enabled true --rollout 30 > /dev/null
key=$(target/release/vexil token create --sdk --env staging)

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"context": {"targetingKey": "user-123456", "plan": "pro"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
run() { taskset -c 1 wrk -t1 -c64 -d"${seconds}s" "$@" | tee -a "$work/wrk.log" | awk '/Requests\/sec/ {print $2}'; }
echo "warming up"; run -s "$work/post.lua" http://127.0.0.1:7092/ofrep/v1/evaluate/flags/ui.new_feature > /dev/null
hello=$(run http://127.0.0.1:7091/)
ofrep=$(run -s "$work/post.lua" http://127.0.0.1:7092/ofrep/v1/evaluate/flags/ui.new_feature)
bulk=$(run -s "$work/post.lua" http://127.0.0.1:7092/ofrep/v1/evaluate/flags)
echo "bare hyper hello:        $hello requests/s"
echo "OFREP single flag:       $ofrep requests/s"
echo "OFREP bulk (1 flag):     $bulk requests/s"
awk -v a="$ofrep" -v b="$hello" 'BEGIN { printf "ratio OFREP/hello:       %.2f\n", a / b }'
