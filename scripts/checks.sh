#!/usr/bin/env bash
# The two checking builds CI runs after scripts/test.sh (README, "Checking builds"), CPU code
# only, neither of them the build users get:
#   build-sanitize/  AddressSanitizer and UndefinedBehaviorSanitizer (-DSSA_SANITIZE=ON, any
#                    report fatal), running the unit, e2e and mpi tests;
#   build-fuzz/      the libFuzzer targets of fuzz/ (clang, -DSSA_FUZZ=ON), each over its seed
#                    corpus and then for FUZZ_SECONDS (default 30) seconds.
# Installs clang, its libFuzzer/sanitizer runtimes and its OpenMP when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds=${FUZZ_SECONDS:-30}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

# True when every package is installed; otherwise installs them as root, or says how and fails.
require_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "checks: missing packages: ${missing[*]}; run as root:  sudo sh -c '$install_cmd'"
    return 1
  fi
  echo "checks: installing ${missing[*]}"
  sh -c "$install_cmd" >/tmp/ssa-apt-checks.log 2>&1 || { tail -20 /tmp/ssa-apt-checks.log; return 1; }
}

# -O1 -g1: what sanitizer reports need (line numbers, frame pointers) in about 60% of the
# compile time of -O2 -g; assertions stay on.
echo "checks: sanitizer build (build-sanitize/)"
cmake -S . -B build-sanitize "${generator[@]}" -DSSA_SANITIZE=ON -DSSA_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" >/dev/null
cmake --build build-sanitize -j "$(nproc)"
# A report fails the test whose process makes it; one in a binary that an e2e or mpi test runs
# fails that test too (tests/e2e_util.h), also where the binary was expected to fail.
# LeakSanitizer is off for the mpi tests only: OpenMPI loses memory at exit in plugins it has
# unloaded by then, which no suppression can name. allocator_may_return_null: an allocation too
# large to make fails as it does without ASan (the out-of-memory tests ask for 512 TiB).
export UBSAN_OPTIONS=print_stacktrace=1
export ASAN_OPTIONS=allocator_may_return_null=1
ctest --test-dir build-sanitize --output-on-failure -j "$(nproc)" -L 'unit|e2e'
ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 ctest --test-dir build-sanitize --output-on-failure -j "$(nproc)" -L mpi

echo "checks: fuzz build (build-fuzz/)"
require_packages clang
clang_major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
require_packages "libclang-rt-$clang_major-dev" "libomp-$clang_major-dev"
cmake -S . -B build-fuzz "${generator[@]}" -DSSA_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSSA_FUZZ_SECONDS="$fuzz_seconds" \
  >/dev/null
cmake --build build-fuzz -j "$(nproc)"
ctest --test-dir build-fuzz --output-on-failure -j "$(nproc)" -L fuzz
echo "checks: passed"
