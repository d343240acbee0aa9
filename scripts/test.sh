#!/usr/bin/env bash
# Sets up (scripts/setup.sh, warnings as errors), checks the formatting (scripts/format.sh
# --check), runs the whole ctest suite, then the checking builds of scripts/checks.sh
# (sanitizers, fuzzing; SSA_CHECKS=0 skips them). Tests labelled gpu skip with a message where
# no GPU is present. Extra arguments go to ctest (e.g. -L unit). CI (.ci/run) runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh -DSSA_WERROR=ON
# Test-only tools: clang-format checks the formatting, h5dump that checkpoints read without our
# code (its check is skipped if absent).
for tool in clang-format:clang-format h5dump:hdf5-tools; do
  if ! command -v "${tool%%:*}" >/dev/null && [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${tool#*:}" >/tmp/ssa-apt-tools.log 2>&1 ||
      echo "test: could not install ${tool#*:}"
  fi
done
bash scripts/format.sh --check
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
if [[ ${SSA_CHECKS:-1} != 0 ]]; then
  bash scripts/checks.sh
fi
