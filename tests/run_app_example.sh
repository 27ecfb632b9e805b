#!/usr/bin/env bash
# Runs the embedded-node example three times (three processes, three data directories):
# the first bootstraps a cluster, the others join through it. Every process must print
# EXPECTED_TEXT and exit 0.
#   run_app_example.sh EXAMPLE_BINARY EXPECTED_TEXT
set -euo pipefail
example=$1
expected=$2

dir=$(mktemp -d "${TMPDIR:-/tmp}/dqlite-app-example.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

first=127.0.0.1:$(free_port)
"$example" "$dir/node1" "$first" >"$dir/node1.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do
  grep -q 'is ready' "$dir/node1.log" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
grep -q 'is ready' "$dir/node1.log" || { echo "node 1 did not get ready"; cat "$dir/node1.log"; exit 1; }
for n in 2 3; do
  "$example" "$dir/node$n" "127.0.0.1:$(free_port)" "$first" >"$dir/node$n.log" 2>&1 &
  pids+=($!)
done

status=0
for i in 0 1 2; do
  n=$((i + 1))
  # Each process ends on its own; a hang is cut after five minutes.
  for _ in $(seq 3000); do
    kill -0 "${pids[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "${pids[$i]}" 2>/dev/null; then
    echo "node $n did not finish"; kill -KILL "${pids[$i]}" || true
  fi
  rc=0
  wait "${pids[$i]}" || rc=$?
  echo "---- node $n (exit $rc)"
  cat "$dir/node$n.log"
  if [[ $rc -ne 0 ]]; then status=1; fi
  if ! grep -q -- "$expected" "$dir/node$n.log"; then
    echo "node $n: expected output to contain: $expected" >&2
    status=1
  fi
done
exit $status
