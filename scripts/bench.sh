#!/usr/bin/env bash
# Reproduces docs/PERF.md on a machine with an NVIDIA GPU, CUDA and PyTorch: builds ssa-bench,
# runs each benchmark and its PyTorch counterpart (eval/reference/bench_torch.py) on the same
# shapes in the same run, and writes the side-by-side tables.
#   scripts/bench.sh [OUT_DIR]        (default out/bench)
# Writes OUT_DIR/ssa.jsonl, OUT_DIR/torch.jsonl, OUT_DIR/bench.log (everything printed) and
# OUT_DIR/tables.md. Environment: BUILD_DIR (default build-bench), CUDA_ARCH (default 90),
# CMAKE_ARGS (more configure options, e.g. -DSSA_MPI=OFF),
# CONFIGS (default "bench-160m bench-1b", files configs/NAME.conf), STEPS (timed training
# steps, default 6). A failing benchmark is logged and the others go on.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/bench}
build=${BUILD_DIR:-build-bench}
configs=${CONFIGS:-bench-160m bench-1b}
steps=${STEPS:-6}
mkdir -p "$out"
rm -f "$out/ssa.jsonl" "$out/torch.jsonl" "$out/bench.log"

log() { "$@" 2>&1 | tee -a "$out/bench.log"; }

built() {
  log cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" ${CMAKE_ARGS:-} >/dev/null &&
    log ninja -C "$build" ssa-bench >/dev/null
}
built || { tail -40 "$out/bench.log"; exit 1; }
bench="$build/bin/ssa-bench"
torch_bench=(python3 eval/reference/bench_torch.py)
config_files=$(for c in $configs; do printf 'configs/%s.conf,' "$c"; done)

log echo "== $(date -u +%F) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
log "$bench" kernels --configs "${config_files%,}" --json "$out/ssa.jsonl"
log "${torch_bench[@]}" kernels --configs "${config_files%,}" --json "$out/torch.jsonl"
log "$bench" attention --json "$out/ssa.jsonl"
log "${torch_bench[@]}" attention --json "$out/torch.jsonl"
for c in $configs; do
  for mode in full sparse ssa; do
    log "$bench" train --config "configs/$c.conf" --mode "$mode" --steps "$steps" \
      --json "$out/ssa.jsonl"
  done
  log "${torch_bench[@]}" train --config "configs/$c.conf" --modes full,sparse,ssa \
    --steps "$steps" --json "$out/torch.jsonl"
done
python3 eval/reference/compare.py "$out/ssa.jsonl" "$out/torch.jsonl" >"$out/tables.md"
echo "wrote $out/tables.md"
