#!/usr/bin/env bash
# Formats our C++ and CUDA sources with the repository's .clang-format (Google style, 100
# columns). --check changes nothing: it lists the files that differ and fails (CI runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
case "$*" in
  --check) clang-format --dry-run --Werror "${files[@]}" ;;
  "") clang-format -i "${files[@]}" ;;
  *) echo "format.sh: unknown arguments '$*' (usage: scripts/format.sh [--check])" >&2; exit 2 ;;
esac
