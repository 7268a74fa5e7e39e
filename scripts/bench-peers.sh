#!/usr/bin/env bash
# Vexil beside Unleash Edge and a bare hyper server, in one run on one machine: the same FLAGS boolean flags, each a
# 30 % percentage rollout, evaluated for one user, one flag and all flags. Every server is pinned to core 0 and wrk
# (`-t1 -c64`) to core 1; each run prints how busy both cores were, so a figure where the load generator (core 1),
# not the server (core 0), was the limit shows itself.
#
#   Vexil:  POST /ofrep/v1/evaluate/flags/{key} and POST /ofrep/v1/evaluate/flags, an SDK key, {"context": {...}}
#   Edge:   GET /api/frontend/features/{name}?userId= and GET /api/frontend?userId=, a frontend token
#           (offline mode from a bootstrap file; its frontend API answers only the flags enabled for the user)
#   hello:  GET / on target/release/hello, the ceiling for any HTTP/1 server on this machine
#
# Unleash Edge 20.1.0 is built from crates.io into a cache outside the repository (VEXIL_PEERS_CACHE, default
# ~/.cache/vexil-peers) the first time; that takes several minutes. Needs wrk (Debian package `wrk`).
# Usage: scripts/bench-peers.sh [SECONDS] [FLAGS] [ROUNDS]   (defaults: 8, 76, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
seconds=${1:-8}
flags=${2:-76}
rounds=${3:-2}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cache=${VEXIL_PEERS_CACHE:-$HOME/.cache/vexil-peers}
edge=$cache/bin/unleash-edge
if [ ! -x "$edge" ]; then
  echo "building Unleash Edge 20.1.0 into $cache (once)" >&2
  cargo install unleash-edge --version 20.1.0 --locked --root "$cache" >&2
fi
cargo build --release -q -p vexil -p vexil-loadtest
vexil=target/release/vexil
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

# The flags, for Vexil (defined, then a 30 % rollout in staging) and for Edge (its client-features format).
python3 - "$flags" "$work" <<'PY'
import json, sys
count, work = int(sys.argv[1]), sys.argv[2]
names = ["ui.new_feature"] + [f"ui.feature_{index:03d}" for index in range(2, count + 1)]
with open(f"{work}/flags.toml", "w") as registry:
    for name in names:
        registry.write(f'[[flag]]\nname = "{name}"\ntype = "boolean"\n\n')
features = [{
    "name": name, "type": "release", "enabled": True, "project": "default",
    "strategies": [{"name": "flexibleRollout", "constraints": [],
                    "parameters": {"rollout": "30", "stickiness": "default", "groupId": name}}],
} for name in names]
with open(f"{work}/features.json", "w") as bootstrap:
    json.dump({"version": 2, "features": features}, bootstrap)
with open(f"{work}/names", "w") as out:
    out.write("\n".join(names) + "\n")
PY

token=vxl_bench_admin_token_0123456789
frontend="default:development.vexil-bench-frontend-token"
client="default:development.vexil-bench-client-token" # offline mode starts only with both kinds
taskset -c 0 target/release/hello 127.0.0.1:7191 > "$work/hello.log" &
pids+=($!)
hello_pid=$!
VEXIL_BOOTSTRAP_TOKEN=$token VEXIL_LOG=warn taskset -c 0 "$vexil" serve --bind 127.0.0.1:7192 --data "$work/data" > "$work/vexil.log" &
pids+=($!)
vexil_pid=$!
taskset -c 0 "$edge" -i 127.0.0.1 -p 7193 offline -b "$work/features.json" -f "$frontend" -c "$client" > "$work/edge.log" 2>&1 &
pids+=($!)
edge_pid=$!
until grep -q "listening on" "$work/vexil.log" && grep -q "listening on" "$work/hello.log"; do sleep 0.1; done
until curl -sf -o /dev/null -H "Authorization: $frontend" "http://127.0.0.1:7193/api/frontend?userId=u"; do
  kill -0 "$edge_pid" 2>/dev/null || { echo "Unleash Edge did not start:" >&2; tail -5 "$work/edge.log" >&2; exit 1; }
  sleep 0.1
done
export VEXIL_SERVER=http://127.0.0.1:7192 VEXIL_TOKEN=$token VEXIL_CONFIG_DIR=$work
"$vexil" apply "$work/flags.toml" > /dev/null
while read -r name; do "$vexil" set "$name" --env staging --enabled true --rollout 30 > /dev/null; done < "$work/names"
key=$("$vexil" token create --sdk --env staging)

# One user, for whom the single flag is on in both (so both answer 200): Edge answers 404 for a flag that is off.
user=user-123456
for candidate in $(seq 123456 123600); do
  on_vexil=$(curl -sf -X POST -H "Authorization: Bearer $key" -d "{\"context\": {\"targetingKey\": \"user-$candidate\"}}" \
    http://127.0.0.1:7192/ofrep/v1/evaluate/flags/ui.new_feature | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
  on_edge=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $frontend" \
    "http://127.0.0.1:7193/api/frontend/features/ui.new_feature?userId=user-$candidate")
  if [ "$on_vexil" = True ] && [ "$on_edge" = 200 ]; then user=user-$candidate; break; fi
done
vexil_all=$(curl -sf -X POST -H "Authorization: Bearer $key" -d "{\"context\": {\"targetingKey\": \"$user\"}}" http://127.0.0.1:7192/ofrep/v1/evaluate/flags)
edge_all=$(curl -sf -H "Authorization: $frontend" "http://127.0.0.1:7193/api/frontend?userId=$user")
echo "for $user: Vexil answers $(echo "$vexil_all" | python3 -c 'import json,sys; f=json.load(sys.stdin)["flags"]; print(len(f), "flags,", sum(x["value"] for x in f), "on")');" \
  "Edge lists $(echo "$edge_all" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["toggles"]))') enabled toggles"

ofrep_script "$work/post.lua" "$key" "$user"

# The busy share of cpu0 and cpu1 between two readings of /proc/stat, and a server's own CPU time (user + system,
# all threads, in clock ticks) from /proc/PID/stat: the server's CPU per request does not depend on the load generator.
cpu_reading() { awk '/^cpu[01] / { print $1, $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
busy() { # $1, $2: readings
  paste -d' ' <(echo "$1") <(echo "$2") | awk '{ printf "%s %.0f%% ", $1, 100 * ($5 - $2) / ($6 - $3) }'
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() { # $1: the server's pid, then wrk's arguments; prints requests/s and µs of server CPU per request
  local pid=$1 before after cpu_before cpu_after result rate
  shift
  before=$(cpu_reading); cpu_before=$(ticks "$pid")
  result=$(taskset -c 1 wrk -t1 -c64 -d"${seconds}s" "$@" | tee -a "$work/wrk.log")
  after=$(cpu_reading); cpu_after=$(ticks "$pid")
  echo "$result" | grep -q "Non-2xx" && echo "  (non-2xx answers in: $*)" >&2
  rate=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
  local total
  total=$(echo "$result" | awk '/requests in/ {print $1}')
  local micros
  micros=$(awk -v t="$((cpu_after - cpu_before))" -v hz="$hz" -v n="$total" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
  printf '  %8.0f req/s  %5s µs server CPU/request  %s ← %s\n' "$rate" "$micros" "$(busy "$before" "$after")" "${*: -1}" >&2
  echo "$rate $micros"
}

vexil_single() { run "$vexil_pid" -s "$work/post.lua" http://127.0.0.1:7192/ofrep/v1/evaluate/flags/ui.new_feature; }
vexil_bulk() { run "$vexil_pid" -s "$work/post.lua" http://127.0.0.1:7192/ofrep/v1/evaluate/flags; }
edge_single() { run "$edge_pid" -H "Authorization: $frontend" "http://127.0.0.1:7193/api/frontend/features/ui.new_feature?userId=$user"; }
edge_bulk() { run "$edge_pid" -H "Authorization: $frontend" "http://127.0.0.1:7193/api/frontend?userId=$user"; }

echo "warming up" >&2
vexil_single > /dev/null; vexil_bulk > /dev/null; edge_single > /dev/null; edge_bulk > /dev/null
printf '| round | hello | Vexil single | Edge single | Vexil bulk (%s flags) | Edge bulk | single / hello | single / Edge | bulk / Edge |\n' "$flags"
printf '|---|---|---|---|---|---|---|---|---|\n'
for round in $(seq 1 "$rounds"); do
  read -r hello hello_cpu < <(run "$hello_pid" http://127.0.0.1:7191/)
  read -r single single_cpu < <(vexil_single)
  read -r edge_one edge_one_cpu < <(edge_single)
  read -r bulk bulk_cpu < <(vexil_bulk)
  read -r edge_all edge_all_cpu < <(edge_bulk)
  awk -v r="$round" -v h="$hello" -v s="$single" -v es="$edge_one" -v b="$bulk" -v eb="$edge_all" \
    -v hc="$hello_cpu" -v sc="$single_cpu" -v esc="$edge_one_cpu" -v bc="$bulk_cpu" -v ebc="$edge_all_cpu" 'BEGIN {
    printf "| %d | %.0f/s, %.1f µs | %.0f/s, %.1f µs | %.0f/s, %.1f µs | %.0f/s, %.1f µs | %.0f/s, %.1f µs | %.2f (CPU %.2f) | %.1f (CPU %.1f) | %.1f (CPU %.1f) |\n",
      r, h, hc, s, sc, es, esc, b, bc, eb, ebc, s / h, hc / sc, s / es, esc / sc, b / eb, ebc / bc }'
done
echo "each cell: requests/s, and the server's CPU time per request; ratios of requests/s (and of CPU per request)"
