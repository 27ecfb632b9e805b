#!/usr/bin/env bash
# Checks that an object file compiled with DQLITE_CLIENT_SEPARATE_COMPILATION refers to
# the library's separately compiled parts (the start of a statement request, functions that
# do not depend on the program's types, the connection's members) and defines none of
# them, nor the I/O loops:
#   check_separate_objects.sh NM OBJECT_FILE
set -euo pipefail
nm_bin=$1
object=$2
symbols=$("$nm_bin" -C "$object")
status=0
for loop in start_request run_exchange run_connect run_blocking_exchange run_blocking_connect; do
  if [[ $loop == start_request ]] && ! grep -Eq " U .*dqlite::detail::${loop}<" <<<"$symbols"; then
    echo "FAIL: $object does not refer to dqlite::detail::${loop}" >&2
    status=1
  fi
  if grep -Eq " [TtWw] .*dqlite::detail::${loop}<" <<<"$symbols"; then
    echo "FAIL: $object defines dqlite::detail::${loop} itself:" >&2
    grep -E " [TtWw] .*dqlite::detail::${loop}<" <<<"$symbols" >&2
    status=1
  fi
done
# Functions that do not depend on the program's types (impl/*.ipp), and the connection's
# members that are not templates: referred to, not defined.
for fn in "dqlite::client_category()" "dqlite::detail::scan_sql(" \
          "dqlite::detail::session_state::begin_op(" \
          "dqlite::basic_connection<boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::any_io_executor> >::~basic_connection()"; do
  if ! grep -Fq " U $fn" <<<"$symbols"; then
    echo "FAIL: $object does not refer to $fn" >&2
    status=1
  fi
  if grep -E " [TtWw] " <<<"$symbols" | grep -Fq " $fn"; then
    echo "FAIL: $object defines $fn itself" >&2
    status=1
  fi
done
# Nor the members of the connection's state, nor its construction (std::make_shared's control
# block): at -O2 GCC compiles a member defined inside its class in every unit that calls
# it, explicit instantiation declaration or not, so the connection's construction (in the
# form async_connect uses), destruction, moves and closing are defined outside the class.
if grep -E " [TtWw] (std::_Sp_counted_ptr_inplace<)?dqlite::detail::connection_impl<" <<<"$symbols" >&2; then
  echo "FAIL: $object compiles the connection's state (above) itself" >&2
  status=1
fi
((status == 0)) && echo "ok: $object leaves the start of requests, the I/O loops, the common functions and the connection's members to <dqlite/src.hpp>"
exit "$status"
