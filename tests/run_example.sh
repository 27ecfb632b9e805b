#!/usr/bin/env bash
# Runs one example program against a fresh local dqlite node:
#   run_example.sh NODE_BINARY EXAMPLE_BINARY [EXPECTED_TEXT]
# Starts the node on a free loopback port in a temporary directory, runs the example with
# the node's address, checks its output contains EXPECTED_TEXT, and stops the node.
set -euo pipefail
node_bin=$1
example=$2
expected=${3:-}

dir=$(mktemp -d "${TMPDIR:-/tmp}/dqlite-example.XXXXXX")
node_pid=
cleanup() {
  if [[ -n $node_pid ]] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
address=127.0.0.1:$port
"$node_bin" --id 1 --address "$address" --dir "$dir" >"$dir/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 100); do
  grep -q '^ready' "$dir/node.log" 2>/dev/null && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$dir/node.log"; exit 1; }
  sleep 0.1
done
grep -q '^ready' "$dir/node.log" || { echo "node did not start"; cat "$dir/node.log"; exit 1; }

output=$("$example" "$address")
echo "$output"
if [[ -n $expected && $output != *"$expected"* ]]; then
  echo "expected output to contain: $expected" >&2
  exit 1
fi
