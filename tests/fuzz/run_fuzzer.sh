#!/usr/bin/env bash
# Runs a libFuzzer harness for a bounded number of inputs, starting from the seed corpus
# in the source tree; new inputs go to a work directory in the build tree.
#   run_fuzzer.sh FUZZER RUNS WORK_DIR SEED_DIR [more libFuzzer flags]
set -euo pipefail
fuzzer=$1 runs=$2 work=$3 seeds=$4
shift 4
mkdir -p "$work"
exec "$fuzzer" -runs="$runs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 "$@" "$work" "$seeds"
