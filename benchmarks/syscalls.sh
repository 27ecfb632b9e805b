#!/usr/bin/env bash
# System calls per point query on one connection, counted with strace.
#
#   benchmarks/syscalls.sh [BUILD_DIR] [MODE]
#
# Starts one dqlite node (BUILD_DIR/tools/dqlite-node), then runs
# BUILD_DIR/benchmarks/point_query under `strace -c -f` twice, with 2 000 and with
# 12 000 queries, and divides the difference of the counts by 10 000: what is left is
# the cost of one steady-state query, without the start-up. strace slows the client down
# (the node answers sooner, relative to it, than it does at full speed), so the same
# difference is then counted at full speed by BUILD_DIR/benchmarks/syscall_counter.so,
# loaded with LD_PRELOAD, which counts the C library's wrappers inside the process.
# MODE: sql (default), prepared, blocking or blocking-prepared.
# Needs strace (apt-get install strace).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-$repo_root/build}
mode=${2:-sql}
node_bin=$build_dir/tools/dqlite-node
bench=$build_dir/benchmarks/point_query
counter=$build_dir/benchmarks/syscall_counter.so
for f in "$node_bin" "$bench" "$counter"; do
  [[ -x $f ]] || { echo "syscalls.sh: $f is missing: build the project first" >&2; exit 2; }
done
command -v strace >/dev/null || { echo "syscalls.sh: strace is missing (apt-get install strace)" >&2; exit 2; }

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$node_bin" --id 1 --address "127.0.0.1:$port" --dir "$work/node" >"$work/node.log" 2>&1 &
node_pid=$!
trap 'kill $node_pid 2>/dev/null; wait $node_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

count() {  # count(queries) -> prints "syscall calls" lines and a total
  DQLITE_ADDRESS=127.0.0.1:$port strace -c -f -o "$work/strace.$1" "$bench" "$1" "$mode" >"$work/out.$1"
  awk 'NR > 2 && $0 !~ /^-/ && $NF != "total" { n = ($4 ~ /^[0-9]+$/) ? $4 : $4; print $NF, $4 }' \
    "$work/strace.$1" | sort
}
count 2000 >"$work/a"
count 12000 >"$work/b"
echo "system calls per point query ($mode), steady state, (count at 12000 - count at 2000) / 10000:"
join -a 2 -e 0 -o 0,1.2,2.2 "$work/a" "$work/b" |
  awk '{ d = ($3 - $2) / 10000; if (d >= 0.005) { printf "  %-16s %6.2f\n", $1, d; t += d } }
       END { printf "  %-16s %6.2f\n", "total", t }'
grep -h "CPU/query" "$work/out.12000"

counted() {  # counted(queries) -> prints "call count" lines, at full speed
  DQLITE_ADDRESS=127.0.0.1:$port DQLITE_SYSCALL_COUNT_FILE="$work/count.$1" LD_PRELOAD="$counter" \
    "$bench" "$1" "$mode" >/dev/null
  sort "$work/count.$1"
}
counted 2000 >"$work/c"
counted 12000 >"$work/d"
echo "the same at full speed, counted in the process (no strace):"
join "$work/c" "$work/d" |
  awk '$1 != "recv(failed)" { d = ($3 - $2) / 10000; if (d >= 0.005) { printf "  %-16s %6.2f\n", $1, d; t += d } }
       $1 == "recv(failed)" { f = ($3 - $2) / 10000 }
       END { printf "  %-16s %6.2f\n", "total", t; printf "  (recv calls that found nothing: %.2f)\n", f }'
