#!/usr/bin/env bash
# Builds and runs tests/package/consumer against dqlite-client for C++ obtained one way,
# and checks that it prints the library's version.
#
#   consumer_test.sh find_package | add_subdirectory | single_header
#
# find_package      installs the build tree BUILD_DIR into PREFIX (emptied first), then
#                   builds the consumer with find_package(dqlite_client) and
#                   CMAKE_PREFIX_PATH=PREFIX, and once more with the compiler flags of the
#                   installed pkg-config file.
# add_subdirectory  builds the consumer with add_subdirectory(SOURCE_DIR), then with
#                   FetchContent (SOURCE_DIR), then with add_subdirectory and the option
#                   DQLITE_CLIENT_SEPARATE_COMPILATION=ON.
# single_header     compiles the consumer with the compiler alone and single_include/.
#
# Environment (tests/package/CMakeLists.txt sets it): CMAKE_COMMAND, CXX, SOURCE_DIR
# (repository root), BUILD_DIR (its build tree), CONSUMER_DIR, WORK_DIR (scratch,
# emptied first), EXPECTED_VERSION; optional: CC, CMAKE_GENERATOR, CONFIG, PREFIX,
# PKG_CONFIG, BOOST_DIR, BOOST_CFLAGS (extra compiler flags to find Boost).
set -euo pipefail

mode=${1:?usage: consumer_test.sh find_package|add_subdirectory|single_header}
: "${CMAKE_COMMAND:?}" "${CXX:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}" "${CONSUMER_DIR:?}"
: "${WORK_DIR:?}" "${EXPECTED_VERSION:?}"
cmake=$CMAKE_COMMAND
read -ra boost_cflags <<<"${BOOST_CFLAGS:-}"
expected="dqlite-client $EXPECTED_VERSION"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# run_logged LOG COMMAND...: runs COMMAND with its output in LOG, shown on failure.
run_logged() {
  local log=$1
  shift
  echo "+ $*" >&2
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "command failed: $*"
  fi
}

# check_program PROGRAM: runs it and compares its output with the expected line.
check_program() {
  local out
  out=$("$1") || fail "$1 exited with status $?"
  [[ $out == "$expected" ]] || fail "$1 printed '$out', expected '$expected'"
  echo "ok: $1: $out" >&2
}

# build_consumer BUILD_SUBDIR CMAKE_ARGS...: configures, builds and runs the consumer.
build_consumer() {
  local dir=$WORK_DIR/$1
  shift
  local -a args=(-S "$CONSUMER_DIR" -B "$dir" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
  [[ -n ${BOOST_DIR:-} ]] && args+=("-DBoost_DIR=$BOOST_DIR")
  run_logged "$dir.configure.log" "$cmake" "${args[@]}" "$@"
  run_logged "$dir.build.log" "$cmake" --build "$dir" -j2
  check_program "$dir/consumer"
}

rm -rf "$WORK_DIR"
mkdir -p "$WORK_DIR"

case $mode in
  find_package)
    prefix=${PREFIX:-$WORK_DIR/prefix}
    rm -rf "$prefix"
    install_args=(--install "$BUILD_DIR" --prefix "$prefix")
    [[ -n ${CONFIG:-} ]] && install_args+=(--config "$CONFIG")
    run_logged "$WORK_DIR/install.log" "$cmake" "${install_args[@]}"

    for f in include/dqlite/client.hpp include/dqlite/wire/protocol.hpp \
      include/dqlite/detail/exchange.hpp \
      share/dqlite_client/cmake/dqlite_client-config.cmake \
      share/dqlite_client/cmake/dqlite_client-config-version.cmake \
      share/dqlite_client/cmake/dqlite_client-targets.cmake \
      share/pkgconfig/dqlite_client.pc; do
      [[ -f $prefix/$f ]] || fail "not installed: $f"
    done
    # The installed package must not point back into the source or build tree.
    if grep -rlF -e "$SOURCE_DIR/" -e "$BUILD_DIR/" "$prefix/share"; then
      fail "installed files above name the source or build tree"
    fi

    # CMake: find_package with only the prefix to go on.
    build_consumer find_package -DDQLITE_CONSUMER_MODE=find_package \
      "-DCMAKE_PREFIX_PATH=$prefix"
    found=$(sed -n 's/^dqlite_client_DIR:[A-Z]*=//p' "$WORK_DIR/find_package/CMakeCache.txt")
    [[ $(realpath "$found") == $(realpath "$prefix")/* ]] ||
      fail "find_package found dqlite_client in '$found', not in $prefix"
    if grep -qF "$SOURCE_DIR/include" "$WORK_DIR/find_package/compile_commands.json"; then
      fail "the consumer was compiled against the source tree's headers"
    fi
    grep -qF "$prefix/include" "$WORK_DIR/find_package/compile_commands.json" ||
      fail "the consumer was not compiled against $prefix/include"

    # pkg-config, from the prefix alone.
    pkg_config=${PKG_CONFIG:-pkg-config}
    if [[ $pkg_config == *NOTFOUND ]] || ! command -v "$pkg_config" >/dev/null; then
      fail "pkg-config is not installed (Debian: apt-get install pkg-config)"
    fi
    export PKG_CONFIG_PATH=$prefix/share/pkgconfig
    unset PKG_CONFIG_LIBDIR
    version=$("$pkg_config" --modversion dqlite_client) ||
      fail "pkg-config does not find dqlite_client in $PKG_CONFIG_PATH"
    [[ $version == "$EXPECTED_VERSION" ]] ||
      fail "pkg-config reports version $version, expected $EXPECTED_VERSION"
    read -ra cflags <<<"$("$pkg_config" --cflags dqlite_client)"
    read -ra libs <<<"$("$pkg_config" --libs dqlite_client)"
    echo "pkg-config --cflags: ${cflags[*]}" >&2
    echo "pkg-config --libs: ${libs[*]}" >&2
    include_ok=0
    for flag in "${cflags[@]}"; do
      if [[ $flag == -I* && -d ${flag#-I} &&
        $(realpath "${flag#-I}") == $(realpath "$prefix/include") ]]; then
        include_ok=1
      fi
    done
    ((include_ok)) || fail "pkg-config --cflags has no -I for $prefix/include"
    run_logged "$WORK_DIR/pkg-config.log" "$CXX" "${cflags[@]}" "${boost_cflags[@]}" \
      "$CONSUMER_DIR/main.cpp" -o "$WORK_DIR/consumer_pkg_config" "${libs[@]}"
    check_program "$WORK_DIR/consumer_pkg_config"
    ;;

  add_subdirectory)
    build_consumer add_subdirectory -DDQLITE_CONSUMER_MODE=add_subdirectory \
      "-DDQLITE_CLIENT_SOURCE_DIR=$SOURCE_DIR"
    build_consumer fetchcontent -DDQLITE_CONSUMER_MODE=fetchcontent \
      "-DDQLITE_CLIENT_SOURCE_DIR=$SOURCE_DIR"
    # With the library's separate compilation option: dqlite::client defines the macro for
    # the consumer and links the library's compiled part.
    build_consumer separate -DDQLITE_CONSUMER_MODE=add_subdirectory \
      "-DDQLITE_CLIENT_SOURCE_DIR=$SOURCE_DIR" -DDQLITE_CLIENT_SEPARATE_COMPILATION=ON
    grep -q -- "-DDQLITE_CLIENT_SEPARATE_COMPILATION" "$WORK_DIR/separate/compile_commands.json" ||
      fail "the consumer was not compiled with DQLITE_CLIENT_SEPARATE_COMPILATION"
    [[ -f $WORK_DIR/separate/dqlite_client/libdqlite_client_compiled.a ]] ||
      fail "the library's compiled part (libdqlite_client_compiled.a) was not built"
    ;;

  single_header)
    run_logged "$WORK_DIR/compile.log" "$CXX" -std=c++20 -I"$SOURCE_DIR/single_include" \
      "${boost_cflags[@]}" -pthread "$CONSUMER_DIR/main.cpp" -o "$WORK_DIR/consumer"
    check_program "$WORK_DIR/consumer"
    ;;

  *) fail "unknown mode '$mode'" ;;
esac
echo "PASS: consumer ($mode)" >&2
