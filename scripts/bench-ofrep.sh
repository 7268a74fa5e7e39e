#!/usr/bin/env bash
# OFREP evaluation requests per second, single flag and bulk, as ratios to a bare hyper server, all measured by wrk in
# this one run with the server pinned to core 0 and wrk to core 1. The environment has FLAGS boolean flags, each a
# 30 % percentage rollout (so every answer depends on the context). Needs wrk (Debian package `wrk`).
# Usage: scripts/bench-ofrep.sh [SECONDS] [FLAGS] [VEXIL_BINARY]   (defaults: 10, 76, target/release/vexil)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
seconds=${1:-10}
flags=${2:-76}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p vexil -p vexil-loadtest
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

taskset -c 0 target/release/hello 127.0.0.1:7091 > "$work/hello.log" &
pids+=($!)
token=vxl_bench_admin_token_0123456789
vexil=${3:-target/release/vexil}
VEXIL_BOOTSTRAP_TOKEN=$token VEXIL_LOG=warn taskset -c 0 "$vexil" serve --bind 127.0.0.1:7092 --data "$work/data" > "$work/serve.log" &
pids+=($!)
until grep -q "listening on" "$work/serve.log" && grep -q "listening on" "$work/hello.log"; do sleep 0.1; done
export VEXIL_SERVER=http://127.0.0.1:7092 VEXIL_TOKEN=$token VEXIL_CONFIG_DIR=$work
for index in $(seq 1 "$flags"); do
  flag=ui.new_feature; [ "$index" -eq 1 ] || flag=$(printf 'ui.feature_%03d' "$index")
  "$vexil" define "$flag" > /dev/null
  "$vexil" set "$flag" --env staging --enabled true --rollout 30 > /dev/null
done
key=$("$vexil" token create --sdk --env staging)

ofrep_script "$work/post.lua" "$key" user-123456 ', "plan": "pro"'
run() { taskset -c 1 wrk -t1 -c64 -d"${seconds}s" "$@" | tee -a "$work/wrk.log" | awk '/Requests\/sec/ {print $2}'; }
echo "warming up"; run -s "$work/post.lua" http://127.0.0.1:7092/ofrep/v1/evaluate/flags/ui.new_feature > /dev/null
hello=$(run http://127.0.0.1:7091/)
ofrep=$(run -s "$work/post.lua" http://127.0.0.1:7092/ofrep/v1/evaluate/flags/ui.new_feature)
bulk=$(run -s "$work/post.lua" http://127.0.0.1:7092/ofrep/v1/evaluate/flags)
echo "bare hyper hello:        $hello requests/s"
echo "OFREP single flag:       $ofrep requests/s"
echo "OFREP bulk ($flags flags):  $bulk requests/s"
awk -v a="$ofrep" -v b="$hello" 'BEGIN { printf "ratio OFREP/hello:       %.2f\n", a / b }'
awk -v a="$bulk" -v n="$flags" 'BEGIN { printf "bulk:                    %.0f ns per flag, HTTP included (one core)\n", 1e9 / a / n }'
