#!/usr/bin/env bash
# Compile cost of the library in a user's build: CPU seconds (user + system) and peak
# memory of compiling one translation unit (-std=c++20 -O2 -c), for g++ and clang++.
#
#   benchmarks/compile_cost.sh [RUNS]
#
# Units (benchmarks/compile_cost/):
#   plain_asio      a plain Boost.Asio coroutine program (resolve, connect, write, read)
#   typed_fetch     one connect and one fetch<T> into a struct, <dqlite/client.hpp>
#   typed_fetch/c   the same including only <dqlite/connection.hpp>
#   typed_fetch/sep the same as typed_fetch with DQLITE_CLIENT_SEPARATE_COMPILATION
#                   (the user's unit only: <dqlite/src.hpp> is compiled once, elsewhere)
#   src.hpp         that one unit, <dqlite/src.hpp>, compiled once per program
#   whole_api       connection, prepared statement, cursor, transaction, blocking calls,
#                   cluster and pool in one unit
#   whole_api/sep   the same with DQLITE_CLIENT_SEPARATE_COMPILATION
# Each figure is the median of RUNS compilations (default 3); ratios are to plain_asio
# compiled by the same compiler. The machine's load changes the absolute figures; the
# ratios, measured in one run, much less.
set -euo pipefail

runs=${1:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
dir=$here/compile_cost
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# measure COMPILER SOURCE [FLAGS...] -> "cpu_seconds peak_mib" (medians of $runs)
measure() {
  local cxx=$1 src=$2
  shift 2
  local cpus=() mems=() i out
  for ((i = 0; i < runs; i++)); do
    /usr/bin/time -f "%U %S %M" -o "$tmp/time" \
      "$cxx" -std=c++20 -O2 -I"$root/include" "$@" -c "$src" -o "$tmp/out.o" 2>"$tmp/err" || {
      echo "compile_cost.sh: $cxx failed on $src:" >&2
      head -20 "$tmp/err" >&2
      return 1
    }
    read -r u s m <"$tmp/time"
    cpus+=("$(echo "$u + $s" | bc)")
    mems+=("$((m / 1024))")
  done
  local cpu mem
  cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
  mem=$(printf '%s\n' "${mems[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
  echo "$cpu $mem"
}

for tool in /usr/bin/time bc; do
  command -v "$tool" >/dev/null || { echo "compile_cost.sh: needs $tool (apt-get install time bc)" >&2; exit 1; }
done

printf '%-10s %-16s %10s %8s %10s %8s\n' compiler unit cpu_s ratio peak_mib ratio
for cxx in g++ clang++; do
  command -v "$cxx" >/dev/null || { echo "($cxx not installed: skipped)"; continue; }
  read -r base_cpu base_mem < <(measure "$cxx" "$dir/plain_asio.cpp")
  row() {
    local name=$1 cpu=$2 mem=$3
    printf '%-10s %-16s %10.2f %8.2f %10d %8.2f\n' "$cxx" "$name" "$cpu" \
      "$(echo "$cpu / $base_cpu" | bc -l)" "$mem" "$(echo "$mem / $base_mem" | bc -l)"
  }
  row plain_asio "$base_cpu" "$base_mem"
  read -r c m < <(measure "$cxx" "$dir/typed_fetch.cpp"); row typed_fetch "$c" "$m"
  sed 's#<dqlite/client.hpp>#<dqlite/connection.hpp>#' "$dir/typed_fetch.cpp" >"$tmp/typed_fetch_c.cpp"
  read -r c m < <(measure "$cxx" "$tmp/typed_fetch_c.cpp"); row typed_fetch/c "$c" "$m"
  read -r c m < <(measure "$cxx" "$dir/typed_fetch.cpp" -DDQLITE_CLIENT_SEPARATE_COMPILATION)
  row typed_fetch/sep "$c" "$m"
  echo '#include <dqlite/src.hpp>' >"$tmp/src.cpp"
  read -r c m < <(measure "$cxx" "$tmp/src.cpp" -DDQLITE_CLIENT_SEPARATE_COMPILATION); row src.hpp "$c" "$m"
  read -r c m < <(measure "$cxx" "$dir/whole_api.cpp"); row whole_api "$c" "$m"
  read -r c m < <(measure "$cxx" "$dir/whole_api.cpp" -DDQLITE_CLIENT_SEPARATE_COMPILATION)
  row whole_api/sep "$c" "$m"
done
