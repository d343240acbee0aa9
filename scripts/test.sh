#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole ctest suite. Tests labelled gpu skip with a
# message where no GPU is present. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
