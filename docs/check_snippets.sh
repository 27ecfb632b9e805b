#!/usr/bin/env bash
# Checks that the C++ code of the guides in docs/ compiles against include/.
#
#   check_snippets.sh GUIDE.md...
#
# A ```cpp block with an #include line is a whole translation unit: it is compiled as it
# is. Any other ```cpp block is a fragment of a coroutine body: it is compiled inside
#   boost::asio::awaitable<void> f(dqlite::connection& conn) { auto ex = ...; <block> }
# with the library (dqlite/client.hpp and dqlite/tls.hpp), Boost.Asio, the awaitable
# operators and the common standard headers included, `namespace asio = boost::asio;` and
# `using namespace std::chrono_literals;`. Compiler messages point at the guide's lines.
#
# Environment (docs/CMakeLists.txt sets it): CXX, SOURCE_DIR (repository root), WORK_DIR
# (scratch, emptied first); optional: BOOST_CFLAGS.
set -euo pipefail

: "${CXX:?}" "${SOURCE_DIR:?}" "${WORK_DIR:?}"
read -ra boost_cflags <<<"${BOOST_CFLAGS:-}"
flags=(-std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Werror -I"$SOURCE_DIR/include"
  "${boost_cflags[@]}")

# The #line directives make GCC take the guide for a header, and it then warns about
# lambdas and local types in the snippets (-Wsubobject-linkage) as it would in a header.
if echo 'int x;' | "$CXX" -Wno-subobject-linkage -Werror -fsyntax-only -x c++ - 2>/dev/null; then
  flags+=(-Wno-subobject-linkage)
fi

(($# > 0)) || { echo "usage: check_snippets.sh GUIDE.md..." >&2; exit 2; }
rm -rf "$WORK_DIR"
mkdir -p "$WORK_DIR"

all=$WORK_DIR/fragments.cpp
cat >"$all" <<'END'
#include <dqlite/client.hpp>
#include <dqlite/tls.hpp>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
END

whole=0
fragments=0
for guide in "$@"; do
  [[ -f $guide ]] || { echo "FAIL: $guide does not exist" >&2; exit 1; }
  name=$(basename "$guide" .md)
  # Splits the ```cpp blocks into NAME_N.cpp, each starting with a #line directive.
  awk -v dir="$WORK_DIR" -v file="$guide" -v name="$name" '
    /^```cpp[[:space:]]*$/ && !in_block { in_block = 1; n++; out = dir "/" name "_" n ".cpp"
      printf "#line %d \"%s\"\n", NR + 1, file > out; next }
    /^```/ && in_block { in_block = 0; close(out); next }
    in_block { print > out }
    END { if (in_block) { print file ": unterminated ```cpp block" > "/dev/stderr"; exit 1 } }
  ' "$guide"
  for block in $(find "$WORK_DIR" -name "${name}_*.cpp" | sort -V); do
    if grep -q '^[[:space:]]*#[[:space:]]*include' "$block"; then
      echo "+ $CXX ${flags[*]} $(basename "$block")" >&2
      "$CXX" "${flags[@]}" -x c++ "$block"
      whole=$((whole + 1))
    else
      id=$(basename "$block" .cpp | tr -c 'A-Za-z0-9_\n' '_')
      {
        echo "asio::awaitable<void> fragment_$id(dqlite::connection& conn) {"
        echo "  auto ex = co_await asio::this_coro::executor;"
        echo "  (void)ex;"
        echo "  (void)conn;"
        cat "$block"
        echo "}"
      } >>"$all"
      fragments=$((fragments + 1))
    fi
  done
done
if ((fragments > 0)); then
  echo "+ $CXX ${flags[*]} fragments.cpp ($fragments fragments)" >&2
  # A fragment may declare a variable only to show its type.
  "$CXX" "${flags[@]}" -Wno-unused-variable -Wno-unused-but-set-variable "$all"
fi
echo "PASS: the C++ code of the guides compiles ($whole whole, $fragments fragments)" >&2
