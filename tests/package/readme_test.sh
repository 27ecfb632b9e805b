#!/usr/bin/env bash
# Checks that the C++ code in README.md compiles against include/.
#
# The first ```cpp block is the README's example, a whole program: it is compiled as it
# is. So is every later block that has an #include line. Any other ```cpp block is a
# fragment of a coroutine body: it is compiled inside
#   boost::asio::awaitable<void> f(dqlite::connection& conn) { auto ex = ...; <block> }
# with the library, Boost.Asio and the common standard headers included and
# `namespace asio = boost::asio;`. A block that includes <dqlite/src.hpp> is compiled with
# DQLITE_CLIENT_SEPARATE_COMPILATION, as its recipe says. Compiler messages point at
# README.md lines.
#
# Environment (tests/package/CMakeLists.txt sets it): CXX, SOURCE_DIR (repository root),
# WORK_DIR (scratch, emptied first); optional: BOOST_CFLAGS.
set -euo pipefail

: "${CXX:?}" "${SOURCE_DIR:?}" "${WORK_DIR:?}"
readme=$SOURCE_DIR/README.md
read -ra boost_cflags <<<"${BOOST_CFLAGS:-}"
flags=(-std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Werror -I"$SOURCE_DIR/include"
  "${boost_cflags[@]}")

[[ -f $readme ]] || { echo "FAIL: $readme does not exist" >&2; exit 1; }
rm -rf "$WORK_DIR"
mkdir -p "$WORK_DIR"

# Splits the ```cpp blocks into block_N.cpp, each starting with a #line directive.
awk -v dir="$WORK_DIR" -v file="$readme" '
  /^```cpp[[:space:]]*$/ && !in_block { in_block = 1; n++; out = dir "/block_" n ".cpp"
    printf "#line %d \"%s\"\n", NR + 1, file > out; next }
  /^```/ && in_block { in_block = 0; close(out); next }
  in_block { print > out }
  END { if (in_block) { print "unterminated ```cpp block" > "/dev/stderr"; exit 1 } }
' "$readme"

[[ -f $WORK_DIR/block_1.cpp ]] || { echo "FAIL: README.md has no \`\`\`cpp block" >&2; exit 1; }

echo "+ $CXX ${flags[*]} block_1.cpp (the README's example)" >&2
"$CXX" "${flags[@]}" -x c++ "$WORK_DIR/block_1.cpp"
echo "ok: the README's example compiles" >&2

count=$(find "$WORK_DIR" -name 'block_*.cpp' | wc -l)
whole=0
fragments=0
all=$WORK_DIR/fragments.cpp
cat >"$all" <<'END'
#include <dqlite/client.hpp>

#include <boost/asio.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <iostream>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace asio = boost::asio;
END
for ((i = 2; i <= count; i++)); do
  block=$WORK_DIR/block_$i.cpp
  if grep -q '^[[:space:]]*#[[:space:]]*include' "$block"; then
    # The separate compilation recipe's unit: compiled as its recipe says.
    extra=()
    if grep -q '#[[:space:]]*include <dqlite/src.hpp>' "$block"; then
      extra=(-DDQLITE_CLIENT_SEPARATE_COMPILATION)
    fi
    echo "+ $CXX ${flags[*]} ${extra[*]} block_$i.cpp" >&2
    "$CXX" "${flags[@]}" "${extra[@]}" -x c++ "$block"
    whole=$((whole + 1))
  else
    {
      echo "#line 1 \"readme fragment $i\""
      echo "asio::awaitable<void> readme_fragment_$i(dqlite::connection& conn) {"
      echo "  auto ex = co_await asio::this_coro::executor;"
      echo "  (void)ex;"
      echo "  (void)conn;"
      cat "$block"
      echo "}"
    } >>"$all"
    fragments=$((fragments + 1))
  fi
done
if ((fragments > 0)); then
  echo "+ $CXX ${flags[*]} fragments.cpp ($fragments fragments)" >&2
  # A fragment may declare a variable only to show its type.
  "$CXX" "${flags[@]}" -Wno-unused-variable -Wno-unused-but-set-variable "$all"
fi
echo "ok: the README's other C++ blocks compile ($whole whole, $fragments fragments)" >&2
echo "PASS: README C++ code compiles" >&2
