#!/usr/bin/env bash
# Checks that the C++ code of the guides in docs/ compiles against include/.
#
#   check_snippets.sh GUIDE.md... [HEADER.hpp...]
#
# A ```cpp block with an #include line is a whole translation unit: it is compiled as it
# is. Any other ```cpp block is a fragment of a coroutine body: it is compiled inside
#   boost::asio::awaitable<void> f(dqlite::connection& conn) { auto ex = ...; <block> }
# with the library (dqlite/client.hpp and dqlite/tls.hpp), Boost.Asio, the awaitable
# operators and the common standard headers included, `namespace asio = boost::asio;` and
# `using namespace std::chrono_literals;`. Compiler messages point at the guide's lines.
#
# In a header, the code examples of the doc comments are fragments too: a run of lines
# "///   code" (three spaces after the slashes) that follows an empty "///" line or a line
# ending with ':'.
#
# Environment (docs/CMakeLists.txt sets it): CXX, SOURCE_DIR (repository root), WORK_DIR
# (scratch, emptied first); optional: BOOST_CFLAGS, WITH_APP.
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
# With WITH_APP=1 the fragments also see the embedded-node add-on (dqlite/app.hpp).
if [[ ${WITH_APP:-0} == 1 ]]; then
  echo '#include <dqlite/app.hpp>' >"$all"
else
  : >"$all"
fi
cat >>"$all" <<'END'
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
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
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
  if [[ $guide == *.hpp ]]; then
    name=hdr_$(basename "$guide" .hpp)
    # Splits the doc comments' code examples into NAME_N.cpp, each with a #line directive.
    awk -v dir="$WORK_DIR" -v file="$guide" -v name="$name" '
      function finish() { if (in_block) { in_block = 0; close(out) } }
      /^[[:space:]]*\/\/\/   / {
        if (!in_block && (prev ~ /^[[:space:]]*\/\/\/[[:space:]]*$/ || prev ~ /:[[:space:]]*$/)) {
          in_block = 1; n++; out = dir "/" name "_" n ".cpp"
          printf "#line %d \"%s\"\n", NR, file > out
        }
        if (in_block) { line = $0; sub(/^[[:space:]]*\/\/\/   /, "", line); print line > out }
        prev = $0; next
      }
      { finish(); prev = $0 }
      END { finish() }
    ' "$guide"
  else
    name=$(basename "$guide" .md)
    # Splits the ```cpp blocks into NAME_N.cpp, each starting with a #line directive.
    awk -v dir="$WORK_DIR" -v file="$guide" -v name="$name" '
      /^```cpp[[:space:]]*$/ && !in_block { in_block = 1; n++; out = dir "/" name "_" n ".cpp"
        printf "#line %d \"%s\"\n", NR + 1, file > out; next }
      /^```/ && in_block { in_block = 0; close(out); next }
      in_block { print > out }
      END { if (in_block) { print file ": unterminated ```cpp block" > "/dev/stderr"; exit 1 } }
    ' "$guide"
  fi
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
echo "PASS: the C++ code of the guides and header comments compiles ($whole whole, $fragments fragments)" >&2
