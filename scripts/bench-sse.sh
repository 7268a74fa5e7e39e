#!/usr/bin/env bash
# SSE fan-out: N clients (default 10000) on one `vexil serve` (embedded store), change → delivery latency and memory per client.
# Usage: scripts/bench-sse.sh [CLIENTS] [CHANGES]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-10000}
changes=${2:-20}
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((clients + 256)) ]; then
  echo "the open-files limit ($(ulimit -n)) is too low for $clients clients" >&2
  exit 1
fi
cargo build --release -q -p vexil -p vexil-loadtest
work=$(mktemp -d)
token=vxl_bench_admin_token_0123456789
port=7081
VEXIL_BOOTSTRAP_TOKEN=$token VEXIL_LOG=warn ${SERVER_CPUS:+taskset -c $SERVER_CPUS} target/release/vexil serve --bind 127.0.0.1:$port --data "$work/data" > "$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
until grep -q "listening on" "$work/serve.log"; do sleep 0.1; done
export VEXIL_SERVER=http://127.0.0.1:$port VEXIL_TOKEN=$token VEXIL_CONFIG_DIR=$work
target/release/vexil define ops.fanout --type number --default 0 > /dev/null
key=$(target/release/vexil token create --sdk --env dev)
${HARNESS_CPUS:+taskset -c $HARNESS_CPUS} target/release/sse-fanout --server "$VEXIL_SERVER" --token "$token" --key "$key" --pid "$server" --clients "$clients" --changes "$changes"
