#!/usr/bin/env bash
# Two `vexil serve` instances on one Redis (started here, AOF with appendfsync always):
# 1. write → delivery at SSE clients of the other instance (CLIENTS clients on instance B, writes through instance A);
# 2. OFREP evaluation requests per second on the Redis backend against the embedded backend (wrk; server pinned to core 0).
# Usage: scripts/bench-redis.sh [CLIENTS] [CHANGES] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
clients=${1:-1000}
changes=${2:-50}
seconds=${3:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p vexil -p vexil-loadtest
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
token=vxl_bench_admin_token_0123456789
redis-server --port 7095 --bind 127.0.0.1 --save "" --appendonly yes --appendfsync always --dir "$work" > "$work/redis.log" &
pids+=($!)
until grep -q "Ready to accept" "$work/redis.log"; do sleep 0.1; done
printf 'redis = "redis://127.0.0.1:7095/"\n' > "$work/redis.toml"
serve() { # name port [--config file] ; prints nothing, waits until listening
  local name=$1 port=$2; shift 2
  VEXIL_BOOTSTRAP_TOKEN=$token VEXIL_LOG=warn target/release/vexil serve "$@" --bind 127.0.0.1:$port --data "$work/$name" > "$work/$name.log" &
  pids+=($!)
  until grep -q "listening on" "$work/$name.log"; do sleep 0.1; done
}
serve a 7096 --config "$work/redis.toml"
serve b 7097 --config "$work/redis.toml"
b=${pids[-1]}
export VEXIL_TOKEN=$token VEXIL_CONFIG_DIR=$work
VEXIL_SERVER=http://127.0.0.1:7096 target/release/vexil define ops.fanout --type number --default 0 > /dev/null
key=$(VEXIL_SERVER=http://127.0.0.1:7096 target/release/vexil token create --sdk --env dev)
echo "== write through instance A, $clients SSE clients on instance B"
target/release/sse-fanout --server http://127.0.0.1:7097 --write-server http://127.0.0.1:7096 --token "$token" --key "$key" --pid "$b" --clients "$clients" --changes "$changes"

echo "== OFREP requests per second, Redis backend against the embedded backend (server on core 0, wrk on core 1)"
VEXIL_BOOTSTRAP_TOKEN=$token VEXIL_LOG=warn taskset -c 0 target/release/vexil serve --config "$work/redis.toml" --bind 127.0.0.1:7098 --data "$work/c" > "$work/c.log" &
pids+=($!)
VEXIL_BOOTSTRAP_TOKEN=$token VEXIL_LOG=warn taskset -c 0 target/release/vexil serve --bind 127.0.0.1:7099 --data "$work/embedded" > "$work/e.log" &
pids+=($!)
until grep -q "listening on" "$work/c.log" && grep -q "listening on" "$work/e.log"; do sleep 0.1; done
for port in 7098 7099; do
  VEXIL_SERVER=http://127.0.0.1:$port target/release/vexil define ui.bench_flag > /dev/null 2>&1 || true
  VEXIL_SERVER=http://127.0.0.1:$port target/release/vexil set ui.bench_flag --env staging --enabled true --rollout 30 > /dev/null
done
redis_key=$(VEXIL_SERVER=http://127.0.0.1:7098 target/release/vexil token create --sdk --env staging)
embedded_key=$(VEXIL_SERVER=http://127.0.0.1:7099 target/release/vexil token create --sdk --env staging)
lua() { ofrep_script "$work/$1.lua" "$2" user-123456; }
lua redis "$redis_key"; lua embedded "$embedded_key"
run() { taskset -c 1 wrk -t1 -c64 -d"${seconds}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
run -s "$work/redis.lua" http://127.0.0.1:7098/ofrep/v1/evaluate/flags/ui.bench_flag > /dev/null
redis_rps=$(run -s "$work/redis.lua" http://127.0.0.1:7098/ofrep/v1/evaluate/flags/ui.bench_flag)
embedded_rps=$(run -s "$work/embedded.lua" http://127.0.0.1:7099/ofrep/v1/evaluate/flags/ui.bench_flag)
echo "OFREP on Redis:    $redis_rps requests/s"
echo "OFREP embedded:    $embedded_rps requests/s"
awk -v a="$redis_rps" -v b="$embedded_rps" 'BEGIN { printf "Redis / embedded:  %.3f\n", a / b }'
