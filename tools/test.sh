#!/usr/bin/env bash
# Installs missing dependencies, configures, builds and runs every test.
#
#   tools/test.sh [CTEST_ARGS...]
#
# BUILD_DIR selects the build directory (default: build; a relative path is
# taken relative to the repository root). Extra arguments go to ctest, e.g.
# tools/test.sh -R unit
#
# The integration tests run against Debian's libdqlite and against each server
# built from an archive in DQLITE_CLIENT_TEST_SERVERS (default: ../shared/servers
# beside the repository, when it exists; set it empty to test Debian's only). The
# servers are built once and kept in DQLITE_CLIENT_SERVER_CACHE (default:
# ${XDG_CACHE_HOME:-~/.cache}/dqlite-client/servers); see tests/servers.cmake.
set -euo pipefail

start=$SECONDS
report_time() {
  local rc=$? t=$((SECONDS - start))
  echo "tools/test.sh: total time $((t / 60)) min $((t % 60)) s (exit code $rc)" >&2
}
trap report_time EXIT

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-build}
if [[ $build_dir != /* ]]; then
  build_dir=$repo_root/$build_dir
fi

servers=${DQLITE_CLIENT_TEST_SERVERS-$repo_root/../shared/servers}
if [[ -n $servers && $servers != /* ]]; then
  servers=$repo_root/$servers
fi
if [[ -n $servers && ! -d $servers ]]; then
  echo "tools/test.sh: no server archives at $servers: the integration tests run" \
    "against Debian's libdqlite only" >&2
  servers=
elif [[ -n $servers ]]; then
  servers=$(cd "$servers" && pwd)
fi

bash "$repo_root/tools/deps.sh"

# Line tables only (-g1): backtraces keep file and line, and the build takes about 40%
# less time than with full debug information. The test programs are built with -Og (about
# a third less compile time than -O2), and so are the examples, tools and benchmarks, which
# the tests run or only build (about 40% less for them; for figures, build the benchmarks
# in a build directory of their own: built here, they say so when they start). Most of the test programs' files are compiled in a few
# unity groups (DQLITE_CLIENT_TEST_UNITY_BUILD, tests/CMakeLists.txt): about a third less
# compile time for them.
cmake -S "$repo_root" -B "$build_dir" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DDQLITE_CLIENT_TEST_CXX_FLAGS=-Og \
  -DDQLITE_CLIENT_PROGRAM_CXX_FLAGS=-Og \
  -DDQLITE_CLIENT_WARNINGS_AS_ERRORS=ON \
  -DDQLITE_CLIENT_TEST_UNITY_BUILD=ON \
  -DDQLITE_CLIENT_TEST_SERVERS="$servers"
cmake --build "$build_dir" -j"$(nproc)"
# One test more than there are cores: the integration tests spend about two thirds of
# their time waiting for the nodes (35 % of two cores at -j2), so a third test keeps the
# cores busy (on 2 cores, ctest took 186 s at -j3 against 230 s at -j2). The tests that
# compile programs have a COST (their seconds on such a machine), so that a fresh build
# directory, which has no timings yet, starts them first instead of ending with them.
ctest --test-dir "$build_dir" --output-on-failure -j"$(($(nproc) + 1))" --timeout 600 "$@"
