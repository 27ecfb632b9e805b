#!/usr/bin/env bash
# Runs an example program against three fresh local dqlite nodes that are not yet a
# cluster (node 1 bootstraps itself; nodes 2 and 3 start empty):
#   run_cluster_example.sh NODE_BINARY EXAMPLE_BINARY [EXPECTED_TEXT]
set -euo pipefail
node_bin=$1
example=$2
expected=${3:-}

dir=$(mktemp -d "${TMPDIR:-/tmp}/dqlite-example.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

addresses=()
for id in 1 2 3; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  address=127.0.0.1:$port
  mkdir -p "$dir/node$id"
  "$node_bin" --id "$id" --address "$address" --dir "$dir/node$id" --latency-ms 20 \
    >"$dir/node$id.log" 2>&1 &
  pids+=($!)
  addresses+=("$address")
  for _ in $(seq 100); do
    grep -q '^ready' "$dir/node$id.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q '^ready' "$dir/node$id.log" || { echo "node $id did not start"; cat "$dir/node$id.log"; exit 1; }
done

output=$("$example" "${addresses[@]}")
echo "$output"
if [[ -n $expected && $output != *"$expected"* ]]; then
  echo "expected output to contain: $expected" >&2
  exit 1
fi
