#!/usr/bin/env bash
# Builds the quickstart example, starts a local single-node dqlite cluster on a
# free port, runs the example against it and stops the cluster again. Exits
# with the example's status.
#
# BUILD_DIR selects the build directory (default: build; a relative path is
# taken relative to the repository root).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-build}
if [[ $build_dir != /* ]]; then
  build_dir=$repo_root/$build_dir
fi
cluster=$repo_root/tools/dqlite-cluster

bash "$repo_root/tools/deps.sh"

cmake -S "$repo_root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build_dir" -j"$(nproc)" --target dqlite-node quickstart

work=$(mktemp -d "${TMPDIR:-/tmp}/dqlite-demo.XXXXXX")
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ -d $work/cluster ]]; then
    "$cluster" stop --dir "$work/cluster" >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# The free port may be taken before the node binds it: try a few times.
started=0
for attempt in 1 2 3; do
  port=$(free_port)
  if "$cluster" start --nodes 1 --dir "$work/cluster" --base-port "$port" \
    --node-binary "$build_dir/tools/dqlite-node" >/dev/null; then
    started=1
    break
  fi
  echo "demo: starting the node failed (attempt $attempt)" >&2
  rm -rf "$work/cluster"
done
if ((started == 0)); then
  echo "demo: could not start a dqlite node" >&2
  exit 1
fi

echo "demo: running quickstart against 127.0.0.1:$port" >&2
status=0
"$build_dir/examples/quickstart" "127.0.0.1:$port" || status=$?
exit "$status"
