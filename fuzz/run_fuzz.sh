#!/usr/bin/env bash
# run_fuzz.sh FUZZER CORPUS SECONDS ARTIFACTS: runs every input of CORPUS, then fuzzes for
# SECONDS from there (CORPUS is left as it is: new inputs go to a scratch directory). An input
# that fails is saved under ARTIFACTS and fails the test; the log's end is printed.
set -uo pipefail
fuzzer=$1 corpus=$2 seconds=$3 artifacts=$4
mkdir -p "$artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$scratch" "$corpus" >"$scratch.log" 2>&1
status=$?
grep -v -e '^#' -e 'NEW_FUNC' "$scratch.log" | tail -60
rm -f "$scratch.log"
exit "$status"
