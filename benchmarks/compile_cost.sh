#!/usr/bin/env bash
# Compile cost of the library in a user's build: CPU seconds (user + system) and peak
# memory of compiling one translation unit (-std=c++20 -O2 -c), for g++ and clang++.
#
#   benchmarks/compile_cost.sh [RUNS]
#   benchmarks/compile_cost.sh --instructions
#
# Units (benchmarks/compile_cost/):
#   plain_asio      a plain Boost.Asio coroutine program (resolve, connect, write, read)
#   typed_fetch     one connect and one fetch<T> into a struct, <dqlite/client.hpp>
#   typed_fetch/c   the same including only <dqlite/connection.hpp>
#   typed_fetch/sep the same as typed_fetch with DQLITE_CLIENT_SEPARATE_COMPILATION
#                   (the user's unit only: <dqlite/src.hpp> is compiled once, elsewhere)
#   five_fetches    five typed fetches into five row types, header-only: a fourth of its
#                   difference to typed_fetch is what each additional row type costs
#   five_fetches/sep the same in separate mode (against typed_fetch/sep)
#   src.hpp         that one unit, <dqlite/src.hpp>, compiled once per program
#   whole_api       connection, prepared statement, cursor, transaction, blocking calls,
#                   cluster and pool in one unit
#   whole_api/sep   the same with DQLITE_CLIENT_SEPARATE_COMPILATION
# Each figure is the median of RUNS compilations (default 3). Each compilation of a unit
# follows one of plain_asio by the same compiler, and its ratios are to that one; the
# table gives the median ratio. So a machine whose speed drifts during the run (a shared
# one) changes the absolute figures, and the ratios much less.
#
# --instructions counts the instructions each compilation executes instead (valgrind's
# cachegrind, without its cache simulation; compiler and assembler together), once per
# unit: a figure that does not depend on the machine's load, for comparing two versions
# of the headers on a shared machine. It takes about 15 times as long as a compilation
# (COMPILERS=g++ limits the table to one compiler).
set -euo pipefail

instructions=0
runs=3
for arg in "$@"; do
  case $arg in
    --instructions) instructions=1 ;;
    [1-9] | [1-9][0-9]) runs=$arg ;;
    *) echo "usage: benchmarks/compile_cost.sh [RUNS] [--instructions]" >&2; exit 2 ;;
  esac
done
((instructions)) && runs=1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
dir=$here/compile_cost
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# once COMPILER SOURCE [FLAGS...] -> "cpu_seconds peak_kib" of one compilation
once() {
  local cxx=$1 src=$2
  shift 2
  if ((instructions)); then
    # "billions_of_instructions 0": the same two fields as below
    valgrind --tool=cachegrind --cache-sim=no --trace-children=yes \
      --cachegrind-out-file=/dev/null --log-file="$tmp/vg.%p" \
      "$cxx" -std=c++20 -O2 -I"$root/include" "$@" -c "$src" -o "$tmp/out.o" 2>"$tmp/err" || {
      echo "compile_cost.sh: $cxx failed on $src:" >&2
      head -20 "$tmp/err" >&2
      return 1
    }
    cat "$tmp"/vg.* | grep -E 'I +refs' | tr -d , | awk '{s += $NF} END {printf "%.3f 0\n", s / 1e9}'
    rm -f "$tmp"/vg.*
    return 0
  fi
  /usr/bin/time -f "%U %S %M" -o "$tmp/time" \
    "$cxx" -std=c++20 -O2 -I"$root/include" "$@" -c "$src" -o "$tmp/out.o" 2>"$tmp/err" || {
    echo "compile_cost.sh: $cxx failed on $src:" >&2
    head -20 "$tmp/err" >&2
    return 1
  }
  local u s m
  read -r u s m <"$tmp/time"
  echo "$(echo "$u + $s" | bc) $m"
}

declare -A plain_count=()

median() { sort -n | sed -n "$(((runs + 1) / 2))p"; }

# measure COMPILER SOURCE [FLAGS...] -> "cpu_s cpu_ratio peak_mib mem_ratio": medians over
# $runs rounds of (plain_asio, then SOURCE), the ratios to the plain_asio of the same round
measure() {
  local cxx=$1 src=$2
  shift 2
  local cpus=() mems=() rc=() rm=() i pc pm c m
  for ((i = 0; i < runs; i++)); do
    if ((instructions)); then  # deterministic: the plain program is counted once
      read -r pc pm <<<"${plain_count[$cxx]}"
      if [[ $src == "$dir/plain_asio.cpp" ]]; then
        echo "$pc 1 0 0"
        return 0
      fi
    else
      read -r pc pm < <(once "$cxx" "$dir/plain_asio.cpp") || return 1
    fi
    read -r c m < <(once "$cxx" "$src" "$@") || return 1
    cpus+=("$c")
    mems+=("$((m / 1024))")
    rc+=("$(echo "$c / $pc" | bc -l)")
    if ((pm > 0)); then rm+=("$(echo "$m / $pm" | bc -l)"); else rm+=(0); fi
  done
  echo "$(printf '%s\n' "${cpus[@]}" | median) $(printf '%s\n' "${rc[@]}" | median)" \
    "$(printf '%s\n' "${mems[@]}" | median) $(printf '%s\n' "${rm[@]}" | median)"
}

tools="/usr/bin/time bc"
((instructions)) && tools="valgrind bc"
for tool in $tools; do
  command -v "$tool" >/dev/null || { echo "compile_cost.sh: needs $tool (apt-get install time bc valgrind)" >&2; exit 1; }
done

if ((instructions)); then
  printf '%-10s %-17s %10s %8s\n' compiler unit g_instr ratio
else
  printf '%-10s %-17s %10s %8s %10s %8s\n' compiler unit cpu_s ratio peak_mib ratio
fi
for cxx in ${COMPILERS:-g++ clang++}; do
  command -v "$cxx" >/dev/null || { echo "($cxx not installed: skipped)"; continue; }
  if ((instructions)); then
    plain_count[$cxx]=$(once "$cxx" "$dir/plain_asio.cpp") || exit 1
  fi
  row() {
    local name=$1
    shift
    local c r m mr
    read -r c r m mr < <(measure "$cxx" "$@") || exit 1
    if ((instructions)); then
      printf '%-10s %-17s %10.2f %8.2f\n' "$cxx" "$name" "$c" "$r"
    else
      printf '%-10s %-17s %10.2f %8.2f %10d %8.2f\n' "$cxx" "$name" "$c" "$r" "$m" "$mr"
    fi
  }
  row plain_asio "$dir/plain_asio.cpp"
  row typed_fetch "$dir/typed_fetch.cpp"
  sed 's#<dqlite/client.hpp>#<dqlite/connection.hpp>#' "$dir/typed_fetch.cpp" >"$tmp/typed_fetch_c.cpp"
  row typed_fetch/c "$tmp/typed_fetch_c.cpp"
  row typed_fetch/sep "$dir/typed_fetch.cpp" -DDQLITE_CLIENT_SEPARATE_COMPILATION
  row five_fetches "$dir/five_fetches.cpp"
  row five_fetches/sep "$dir/five_fetches.cpp" -DDQLITE_CLIENT_SEPARATE_COMPILATION
  echo '#include <dqlite/src.hpp>' >"$tmp/src.cpp"
  row src.hpp "$tmp/src.cpp" -DDQLITE_CLIENT_SEPARATE_COMPILATION
  row whole_api "$dir/whole_api.cpp"
  row whole_api/sep "$dir/whole_api.cpp" -DDQLITE_CLIENT_SEPARATE_COMPILATION
done
