#!/usr/bin/env bash
# Builds libdqlite from a source archive (release tarball or git snapshot with a
# configure.ac) into a cache directory, once per archive content, and prints the
# installation prefix on stdout.
#
#   tools/build_server.sh ARCHIVE [CACHE_DIR]
#
# CACHE_DIR defaults to $DQLITE_CLIENT_SERVER_CACHE, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/dqlite-client/servers. The prefix is
# CACHE_DIR/<archive name>-<first 16 hex digits of its sha256>, so a changed
# archive is built again and an unchanged one never is. A build that fails or is
# interrupted leaves nothing behind but its log (CACHE_DIR/<key>.log). Concurrent
# runs for the same archive wait for each other (flock).
#
# Needs: build-essential autoconf automake libtool pkg-config libuv1-dev
# libsqlite3-dev liblz4-dev (tools/deps.sh installs them). JOBS sets make's -j
# (default: the number of processors).
set -euo pipefail

prog=$(basename "$0")
if (($# < 1 || $# > 2)); then
  echo "usage: $prog ARCHIVE [CACHE_DIR]" >&2
  exit 2
fi
archive=$(realpath "$1")
cache=${2:-${DQLITE_CLIENT_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dqlite-client/servers}}
jobs=${JOBS:-$(nproc)}

if [[ ! -f $archive ]]; then
  echo "$prog: no such archive: $archive" >&2
  exit 1
fi
mkdir -p "$cache"
cache=$(realpath "$cache")

name=$(basename "$archive")
name=${name%.tar.gz}
name=${name%.tgz}
sum=$(sha256sum "$archive" | cut -c1-16)
key=$name-$sum
prefix=$cache/$key
log=$cache/$key.log

if [[ -f $prefix/.complete ]]; then
  echo "$prog: $name: using the cached build in $prefix" >&2
  echo "$prefix"
  exit 0
fi

exec 9>"$cache/$key.lock"
flock 9
if [[ -f $prefix/.complete ]]; then
  echo "$prog: $name: built meanwhile in $prefix" >&2
  echo "$prefix"
  exit 0
fi

rm -rf "$prefix"
work=$(mktemp -d "$cache/.build-$key-XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

start=$SECONDS
echo "$prog: $name: building into $prefix (log: $log)" >&2
if ! (
  set -e
  tar xzf "$archive" -C "$work"
  src=$(find "$work" -mindepth 1 -maxdepth 2 -name configure.ac -printf '%h\n' | head -n1)
  [[ -n $src ]] || { echo "no configure.ac in $archive"; exit 1; }
  cd "$src"
  autoreconf -i
  # Only the shared library: --disable-static halves the compile time.
  ./configure --prefix="$prefix" --enable-build-raft --disable-static
  make -j"$jobs"
  make install
) >"$log" 2>&1; then
  echo "$prog: $name: build failed; the end of $log:" >&2
  tail -n 30 "$log" >&2
  rm -rf "$prefix"
  exit 1
fi
echo "$name from $archive (sha256 $(sha256sum "$archive" | cut -d' ' -f1))" >"$prefix/.complete"
echo "$prog: $name: built in $((SECONDS - start)) s" >&2
echo "$prefix"
