#!/usr/bin/env bash
# Checks that an object file compiled with DQLITE_CLIENT_SEPARATE_COMPILATION refers to
# the library's separately compiled parts it uses (the start of a statement request, the
# loops of a connect and of the blocking calls) and defines none of them, nor the loop of
# an exchange:
#   check_separate_objects.sh NM OBJECT_FILE
set -euo pipefail
nm_bin=$1
object=$2
symbols=$("$nm_bin" -C "$object")
status=0
for loop in start_request run_exchange run_connect run_blocking_exchange run_blocking_connect; do
  if [[ $loop != run_exchange ]] && ! grep -Eq " U .*dqlite::detail::${loop}<" <<<"$symbols"; then
    echo "FAIL: $object does not refer to dqlite::detail::${loop}" >&2
    status=1
  fi
  if grep -Eq " [TtWw] .*dqlite::detail::${loop}<" <<<"$symbols"; then
    echo "FAIL: $object defines dqlite::detail::${loop} itself:" >&2
    grep -E " [TtWw] .*dqlite::detail::${loop}<" <<<"$symbols" >&2
    status=1
  fi
done
((status == 0)) && echo "ok: $object leaves start_request, run_exchange, run_connect, run_blocking_exchange and run_blocking_connect to <dqlite/src.hpp>"
exit "$status"
