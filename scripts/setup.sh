#!/usr/bin/env bash
# Installs what ssa needs (Debian 12 / Ubuntu 24.04), then configures and builds Release into
# build/. Idempotent: a second run only rebuilds what changed. Binaries land in build/bin/.
# Extra arguments go to cmake's configure step (e.g. -DSSA_CUDA=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libeigen3-dev libfmt-dev doctest-dev libhdf5-dev libopenmpi-dev openmpi-bin
          nlohmann-json3-dev libcli11-dev)
command -v cmake >/dev/null || packages+=(cmake)
command -v g++ >/dev/null || packages+=(g++)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}"
    echo "setup: run as root:  sudo sh -c '$install_cmd'"
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  sh -c "$install_cmd" >/tmp/ssa-apt.log 2>&1 || { tail -20 /tmp/ssa-apt.log; exit 1; }
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif (($#)); then
  cmake -S . -B build "$@"
fi
cmake --build build -j "$(nproc)"
echo "setup: built into build/ (binaries in build/bin/)"
