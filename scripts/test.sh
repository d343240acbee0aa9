#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole ctest suite. Tests labelled gpu skip with a
# message where no GPU is present. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Test-only tool: h5dump checks that checkpoints read without our code (skipped if absent).
if ! command -v h5dump >/dev/null && [[ $(id -u) -eq 0 ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y hdf5-tools >/tmp/ssa-apt-tools.log 2>&1 ||
    echo "test: could not install hdf5-tools; the h5dump check will be skipped"
fi
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
