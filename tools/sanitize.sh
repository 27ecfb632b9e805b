#!/usr/bin/env bash
# Builds and runs the tests under a sanitizer, in a build directory of its own.
#
#   tools/sanitize.sh address [--unit] [BUILD_DIR]
#       ASan + UBSan (every error fatal): the unit tests and the integration tests
#       (against every server of the matrix, as tools/test.sh). --unit: the unit tests
#       only (what CI runs). BUILD_DIR default: build-asan.
#   tools/sanitize.sh thread [--unit] [BUILD_DIR]
#       TSan: the pool and cluster tests, unit and integration (Catch2 tags [pool] and
#       [cluster]), against Debian's libdqlite. --unit: the unit tests only.
#       BUILD_DIR default: build-tsan.
#
# A relative BUILD_DIR is taken relative to the repository root. DQLITE_CLIENT_TEST_SERVERS
# is handled as by tools/test.sh. Prints the total time at the end.
set -euo pipefail

prog=$(basename "$0")
usage() {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

start=$SECONDS
report_time() {
  local rc=$? t=$((SECONDS - start))
  echo "$prog: total time $((t / 60)) min $((t % 60)) s (exit code $rc)" >&2
}

(($# >= 1)) || usage
kind=$1
shift
unit_only=0
build_dir=
for arg in "$@"; do
  case $arg in
    --unit) unit_only=1 ;;
    -h | --help) usage ;;
    -*) echo "$prog: unknown option $arg" >&2; usage ;;
    *) build_dir=$arg ;;
  esac
done

case $kind in
  address)
    flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    build_dir=${build_dir:-build-asan}
    ;;
  thread)
    flags="-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan"
    build_dir=${build_dir:-build-tsan}
    ;;
  *) usage ;;
esac
trap report_time EXIT

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $build_dir != /* ]]; then
  build_dir=$repo_root/$build_dir
fi

servers=${DQLITE_CLIENT_TEST_SERVERS-$repo_root/../shared/servers}
if [[ -n $servers && $servers != /* ]]; then
  servers=$repo_root/$servers
fi
if [[ $kind == thread || $unit_only == 1 || -z $servers || ! -d $servers ]]; then
  servers=
else
  servers=$(cd "$servers" && pwd)
fi

bash "$repo_root/tools/deps.sh"

# Only the C++ code is instrumented: the node program and libdqlite stay as they are.
# -O1 -g1: what the sanitizers need (frames, file and line), in far less build time than
# -O2 with full debug information.
cmake -S "$repo_root" -B "$build_dir" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  -DDQLITE_CLIENT_BUILD_EXAMPLES=OFF \
  -DDQLITE_CLIENT_BUILD_BENCHMARKS=OFF \
  -DDQLITE_CLIENT_TEST_SERVERS="$servers"

jobs=$(nproc)
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

case $kind in
  address)
    if ((unit_only)); then
      cmake --build "$build_dir" --target dqlite_unit_tests -j"$jobs"
      ctest --test-dir "$build_dir" --output-on-failure -j2 --timeout 600 -L '^unit$'
    else
      cmake --build "$build_dir" --target dqlite_unit_tests dqlite_integration_tests -j"$jobs"
      ctest --test-dir "$build_dir" --output-on-failure -j2 --timeout 600 -L '^(unit|integration)$'
    fi
    ;;
  thread)
    targets=(dqlite_unit_tests)
    ((unit_only)) || targets+=(dqlite_integration_tests)
    cmake --build "$build_dir" --target "${targets[@]}" -j"$jobs"
    # setarch -R: TSan of GCC 12 cannot map its shadow memory with the address layout
    # randomisation of newer kernels.
    run=()
    if command -v setarch >/dev/null 2>&1 && setarch "$(uname -m)" -R true 2>/dev/null; then
      run=(setarch "$(uname -m)" -R)
    fi
    "${run[@]}" "$build_dir/tests/dqlite_unit_tests" "[pool],[cluster]"
    if ((unit_only == 0)); then
      (cd "$build_dir/tests" && "${run[@]}" ./dqlite_integration_tests "[pool],[cluster]")
    fi
    ;;
esac
