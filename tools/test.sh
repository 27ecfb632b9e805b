#!/usr/bin/env bash
# Installs missing dependencies, configures, builds and runs every test.
#
#   tools/test.sh [CTEST_ARGS...]
#
# BUILD_DIR selects the build directory (default: build; a relative path is
# taken relative to the repository root). Extra arguments go to ctest, e.g.
# tools/test.sh -R unit
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-build}
if [[ $build_dir != /* ]]; then
  build_dir=$repo_root/$build_dir
fi

bash "$repo_root/tools/deps.sh"

cmake -S "$repo_root" -B "$build_dir" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDQLITE_CLIENT_WARNINGS_AS_ERRORS=ON
cmake --build "$build_dir" -j"$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure -j2 --timeout 600 "$@"
