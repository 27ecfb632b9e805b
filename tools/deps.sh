#!/usr/bin/env bash
# Installs the Debian packages needed to build and test dqlite-client for C++.
# Idempotent: only missing packages are installed, and the package lists are
# updated only when something is missing.
#
#   tools/deps.sh [--with-clang] [--with-fuzzers]
set -euo pipefail

prog=$(basename "$0")
# The second line builds newer libdqlite servers from source archives for the
# integration tests' server matrix (tools/build_server.sh).
packages=(build-essential cmake pkg-config libboost1.81-dev catch2 libdqlite-dev
  stunnel4 libssl-dev libyaml-cpp-dev doxygen python3
  autoconf automake libtool libuv1-dev libsqlite3-dev liblz4-dev)

for arg in "$@"; do
  case $arg in
    --with-clang) packages+=(clang) ;;
    --with-fuzzers) packages+=(clang libclang-rt-14-dev) ;;  # libFuzzer (tests/fuzz)
    -h | --help)
      echo "usage: $prog [--with-clang] [--with-fuzzers]"
      echo "Installs the missing packages among: ${packages[*]} (and clang with --with-clang;"
      echo "clang and libclang-rt-14-dev, for the fuzzers, with --with-fuzzers)."
      exit 0
      ;;
    *)
      echo "$prog: unknown argument '$arg'" >&2
      exit 2
      ;;
  esac
done

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "$prog: not a Debian-based system; make sure these (or their equivalents) are" \
    "installed: ${packages[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ $status != installed ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "$prog: all required packages are installed" >&2
  exit 0
fi

if ((EUID == 0)); then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "$prog: missing packages: ${missing[*]}" >&2
  echo "$prog: run as root or install sudo to install them" >&2
  exit 1
fi

echo "$prog: installing ${missing[*]}" >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  --no-install-recommends "${missing[@]}"
