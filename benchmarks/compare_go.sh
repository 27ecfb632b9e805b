#!/usr/bin/env bash
# Side-by-side benchmark of this library against the official Go driver (go-dqlite through
# database/sql), on the same local dqlite node, workload by workload.
#
#   benchmarks/compare_go.sh BUILD_DIR [SECONDS] [ROUNDS]
#
# BUILD_DIR is a CMake build tree of this project in which the C++ side and the node
# program are built, e.g.:
#
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-bench --target compare_client dqlite-node
#   benchmarks/compare_go.sh build-bench 5 3
#
# The Go side (benchmarks/go_compare/main.go) is built here, offline, in GOPATH mode
# against Debian's packaged sources. On Debian 12 they come with
#
#   apt-get install golang-go golang-github-canonical-go-dqlite-dev
#
# (go-dqlite's client package imports go-sqlite3, so the build uses cgo: it needs gcc and
# libsqlite3-dev, which that package pulls in). Without go or those sources the Go side
# is skipped with a message and only the C++ figures are printed. GO_DQLITE_GOPATH
# names another GOPATH holding github.com/canonical/go-dqlite and its dependencies
# (default /usr/share/gocode).
#
# What it does: starts one dqlite node on a free loopback port (BUILD_DIR/tools/dqlite-node,
# data in a temporary directory), creates and fills the tables once (compare_client
# --workload setup: kv with 1000 rows, bulk with 100000 rows), then for each workload runs
# ROUNDS rounds (default 3) of SECONDS seconds each (default 5), alternating C++ and Go
# (C++, Go, C++, Go, ...) so that drifts of the machine hit both alike. Each run prints
# one line (on stderr here); the tables on stdout give per workload the median ops/s and
# the median client CPU per op (user + system time of the client process, from
# getrusage; the node's CPU is not counted) with the ratios C++/Go, then the same for the
# best round of each side. The node is stopped on exit, also after a failure or Ctrl-C.
#
# Workloads: point (SELECT v FROM kv WHERE k = ? by SQL text on one connection), prepared
# (the same through a prepared statement), bulk (the 100000 rows read into structs; one
# op is one whole result), pool8 (8 concurrent workers through a pool of 8 connections).
# The C++ side runs on one io_context thread; the row "pool8 2 thr" runs its pool8 on two
# threads. Go uses its defaults (GOMAXPROCS = the number of cores), so its single-
# connection workloads may spread over several threads, the garbage collector's included.
#
# The node shares the machine with the client: on a small machine throughput is bounded
# by the node (and by whatever else runs), while CPU per op is the client's own cost.
# This is a benchmark, not a test: CTest does not run it.
set -euo pipefail

prog=$(basename "$0")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
  echo "$prog: $*" >&2
  exit 1
}

(($# >= 1 && $# <= 3)) || die "usage: $prog BUILD_DIR [SECONDS] [ROUNDS]"
build=$(cd "$1" 2>/dev/null && pwd) || die "no build directory '$1'"
seconds=${2:-5}
rounds=${3:-3}
if [[ ! $seconds =~ ^[0-9]+([.][0-9]+)?$ ]] || ! awk -v s="$seconds" 'BEGIN { exit !(s > 0) }'; then
  die "SECONDS must be a positive number"
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

cpp_bin=$build/benchmarks/compare_client
node_bin=$build/tools/dqlite-node
for f in "$cpp_bin" "$node_bin"; do
  [[ -x $f ]] || die "$f is missing: cmake --build $build --target compare_client dqlite-node"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/dqlite-compare-go.XXXXXX")
node_pid=""

# Stops the node (SIGTERM, then SIGKILL after 10 s) and removes its data.
cleanup() {
  if [[ -n $node_pid ]] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
      kill -0 "$node_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the Go side -------------------------------------------------------------------

gopath=${GO_DQLITE_GOPATH:-/usr/share/gocode}
go_bin=""
go_about="skipped"
if ! command -v go >/dev/null 2>&1; then
  echo "$prog: go is not installed: the Go side is skipped" \
    "(Debian: apt-get install golang-go golang-github-canonical-go-dqlite-dev)" >&2
elif [[ ! -d $gopath/src/github.com/canonical/go-dqlite/driver ]]; then
  echo "$prog: the go-dqlite sources are not in $gopath/src: the Go side is skipped" \
    "(Debian: apt-get install golang-github-canonical-go-dqlite-dev)" >&2
else
  go_out=$build/benchmarks/go_compare
  mkdir -p "$go_out"
  echo "$prog: building the Go program ($(go version | awk '{print $3}'))" >&2
  # GOPATH mode: the imports resolve in the packaged sources, nothing is downloaded.
  # The build cache stays in the build tree.
  if (cd "$here/go_compare" &&
    GOPATH=$gopath GO111MODULE=off GOFLAGS='' CGO_ENABLED=1 GOCACHE=$go_out/cache \
      go build -o "$go_out/go_compare" .); then
    go_bin=$go_out/go_compare
    version=$(dpkg-query -W -f='${Version}' golang-github-canonical-go-dqlite-dev 2>/dev/null ||
      true)
    go_about="$(go version | awk '{print $3}'), go-dqlite ${version:-from $gopath}"
  else
    die "building benchmarks/go_compare failed (see above)"
  fi
fi

# ---- the node ----------------------------------------------------------------------

# A port in the dynamic range that nothing listens on; the node may still lose it to
# another program before binding, hence the retries below.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

address=""
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  rm -rf "$work/data"
  mkdir -p "$work/data"
  "$node_bin" --id 1 --address "127.0.0.1:$port" --dir "$work/data" \
    </dev/null >"$work/node.log" 2>&1 &
  node_pid=$!
  for ((i = 0; i < 200; i++)); do
    kill -0 "$node_pid" 2>/dev/null || break
    # -s: the node's shell may not have created its log yet.
    if grep -qs '^ready ' "$work/node.log" &&
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      address=127.0.0.1:$port
      break
    fi
    sleep 0.05
  done
  [[ -n $address ]] && break
  kill -KILL "$node_pid" 2>/dev/null || true
  wait "$node_pid" 2>/dev/null || true
  node_pid=""
  echo "$prog: the node did not start on port $port (attempt $attempt):" >&2
  cat "$work/node.log" >&2
done
[[ -n $address ]] || die "could not start a dqlite node"
server=$("$node_bin" --version 2>&1 | awk '/libdqlite/ {print $2}')
echo "$prog: node at $address (libdqlite version number ${server:-unknown})" >&2

"$cpp_bin" --address "$address" --workload setup >&2

# ---- the runs ----------------------------------------------------------------------

# run SIDE WORKLOAD [ARGS...]: one run; appends "OPS_PER_S US_PER_OP" to $work/SIDE.txt.
run() {
  local side=$1 workload=$2 bin line
  shift 2
  if [[ $side == cpp ]]; then bin=$cpp_bin; else bin=$go_bin; fi
  line=$("$bin" --address "$address" --workload "$workload" --seconds "$seconds" "$@") ||
    die "$side $workload failed"
  echo "  $line" >&2
  awk '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    if (f["ops"] <= 0 || f["elapsed_s"] <= 0) exit 1
    printf "%.6f %.6f\n", f["ops"] / f["elapsed_s"], f["cpu_s"] * 1e6 / f["ops"]
  }' <<<"$line" >>"$work/$side.txt" || die "$side $workload: unexpected output: $line"
}

# figure KIND COLUMN FILE: one figure of the rounds in FILE. KIND median: the median of
# the column (the mean of the middle two for an even count). KIND best: the best round,
# the highest ops/s (column 1) or the lowest CPU per op (column 2); on a busy machine
# other programs only ever make a run slower, so the best round is the least disturbed.
figure() {
  sort -g -k"$2,$2" "$3" | awk -v kind="$1" -v c="$2" '{ v[NR] = $c }
    END {
      if (kind == "best") print (c == 1 ? v[NR] : v[1])
      else if (NR % 2) print v[(NR + 1) / 2]
      else print (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# table_row LABEL KIND: one line of the table of KIND, from $work/cpp.txt and $work/go.txt.
table_row() {
  local label=$1 kind=$2 a c b=- d=-
  a=$(figure "$kind" 1 "$work/cpp.txt")
  c=$(figure "$kind" 2 "$work/cpp.txt")
  if [[ -n $go_bin ]]; then
    b=$(figure "$kind" 1 "$work/go.txt")
    d=$(figure "$kind" 2 "$work/go.txt")
  fi
  awk -v l="$label" -v a="$a" -v b="$b" -v c="$c" -v d="$d" 'BEGIN {
    if (b == "-") printf "%-12s %11.1f %11s %7s %11.2f %11s %7s\n", l, a, "-", "-", c, "-", "-"
    else printf "%-12s %11.1f %11.1f %7.2f %11.2f %11.2f %7.2f\n", l, a, b, a / b, c, d, c / d
  }'
}

# label|workload|extra arguments of the C++ side
cases=(
  "point|point|"
  "prepared|prepared|"
  "bulk|bulk|"
  "pool8|pool8|"
  "pool8 2 thr|pool8|--threads 2"
)

medians=""
bests=""
for c in "${cases[@]}"; do
  IFS='|' read -r label workload extra <<<"$c"
  read -ra extra_args <<<"$extra"
  echo "$prog: $label: $rounds rounds of ${seconds}s, C++ and Go alternating" >&2
  rm -f "$work/cpp.txt" "$work/go.txt"
  for ((r = 1; r <= rounds; r++)); do
    run cpp "$workload" "${extra_args[@]}"
    if [[ -n $go_bin ]]; then
      run go "$workload"
    fi
  done
  medians+=$(table_row "$label" median)$'\n'
  bests+=$(table_row "$label" best)$'\n'
done

header() {
  printf '%-12s %11s %11s %7s %11s %11s %7s\n' workload "C++ ops/s" "Go ops/s" ratio \
    "C++ us/op" "Go us/op" ratio
}

echo
echo "dqlite-client (C++) vs go-dqlite (database/sql), $rounds rounds of ${seconds}s each"
echo "node: libdqlite ${server:-?} at $address; Go: $go_about"
echo "ops/s: queries per second (bulk: whole 100000-row results per second);"
echo "us/op: client CPU microseconds (user + system) per op; ratios are C++/Go"
echo
echo "median of the rounds"
header
printf '%s' "$medians"
echo
echo "best round (highest ops/s, lowest us/op)"
header
printf '%s' "$bests"
