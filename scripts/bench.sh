#!/usr/bin/env bash
# Reproduces docs/PERF.md on a machine with an NVIDIA GPU, CUDA and PyTorch: builds ssa-bench,
# runs each benchmark and its PyTorch counterparts (eval/bench/bench_torch.py, eager and
# under torch.compile) on the same shapes in the same run, and writes the side-by-side tables.
#   scripts/bench.sh [OUT_DIR]        (default out/bench)
# Writes OUT_DIR/ssa.jsonl, OUT_DIR/torch.jsonl (eager), OUT_DIR/torch_compile.jsonl,
# OUT_DIR/bench.log (everything printed) and OUT_DIR/tables.md. Environment: BUILD_DIR (default
# build-bench), CUDA_ARCH (default 90a: Hopper, with the wgmma kernels), CMAKE_ARGS (more configure
# options, e.g. -DSSA_MPI=OFF), CONFIGS (default "bench-160m bench-1b", files configs/NAME.conf),
# STEPS (timed training steps, default 6), CASE_TIMEOUT (seconds one compiled case may take,
# compilation included, default 900), ONLY (run one part: "torch" = PyTorch eager and compiled,
# "torch-compile" = compiled only; neither builds ssa-bench, and the other parts' files in OUT_DIR
# are kept and joined into tables.md), BENCHES (which benchmarks, default "kernels attention
# train"), ATTENTION_SHAPES (one attention run per ";"-separated list of shape flags, default
# "--batch 1 --kv-heads 1"), AUTHORS_KERNEL (a directory with the SSA authors' Triton kernel, see
# eval/bench/bench_torch.py: timed beside our sparse path, and PyTorch's sparse path in training). A
# failing benchmark is logged and the others go on; the exit status is then 1.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/args.sh
optional_out_dir bench.sh "$@"
out=${1:-out/bench}
build=${BUILD_DIR:-build-bench}
configs=${CONFIGS:-bench-160m bench-1b}
steps=${STEPS:-6}
benches=${BENCHES:-kernels attention train}
positive_integers bench.sh STEPS="$steps" CASE_TIMEOUT="${CASE_TIMEOUT:-900}"
words_among bench.sh BENCHES "$benches" "kernels attention train"
only=${ONLY:-}
case "$only" in
  "") parts="ssa torch torch-compile" ;;
  torch) parts="torch torch-compile" ;;
  torch-compile) parts="torch-compile" ;;
  *) echo "bench.sh: ONLY is '$only'; expected torch or torch-compile (or unset for everything)" >&2
     exit 2 ;;
esac
runs() { [[ " $parts " == *" $1 "* ]]; }
nvidia-smi -L >/dev/null 2>&1 ||
  { echo "bench.sh: no NVIDIA GPU found (nvidia-smi -L); every benchmark needs one" >&2; exit 1; }
mkdir -p "$out"
[[ -z "$only" ]] && rm -f "$out/bench.log"
runs ssa && rm -f "$out/ssa.jsonl"
runs torch && rm -f "$out/torch.jsonl"
runs torch-compile && rm -f "$out/torch_compile.jsonl"

failures=0
log() {
  "$@" 2>&1 | tee -a "$out/bench.log"
  local status=${PIPESTATUS[0]}
  ((status == 0)) || failures=$((failures + 1))
  return "$status"
}

built() {
  log cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90a}" ${CMAKE_ARGS:-} >/dev/null &&
    log ninja -C "$build" ssa-bench >/dev/null
}
if runs ssa; then
  built || { tail -40 "$out/bench.log"; exit 1; }
fi
bench="$build/bin/ssa-bench"
torch_bench=(python3 eval/bench/bench_torch.py)
compiled=(--compile --case-timeout "${CASE_TIMEOUT:-900}" --json "$out/torch_compile.jsonl")
config_files=$(for c in $configs; do printf 'configs/%s.conf,' "$c"; done)

log echo "== $(date -u +%F) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader) (parts: $parts)"
bench_on() { [[ " $benches " == *" $1 "* ]]; }
authors=()
[[ -n "${AUTHORS_KERNEL:-}" ]] && authors=(--authors-kernel "$AUTHORS_KERNEL")
if bench_on kernels; then
  runs ssa && log "$bench" kernels --configs "${config_files%,}" --json "$out/ssa.jsonl"
  runs torch && log "${torch_bench[@]}" kernels --configs "${config_files%,}" --json "$out/torch.jsonl"
fi
if bench_on attention; then
  IFS=';' read -ra shapes <<<"${ATTENTION_SHAPES:---batch 1 --kv-heads 1}"
  for shape in "${shapes[@]}"; do
    # shellcheck disable=SC2086  # the shape is a list of flags
    runs ssa && log "$bench" attention $shape --json "$out/ssa.jsonl"
    # shellcheck disable=SC2086
    runs torch && log "${torch_bench[@]}" attention $shape "${authors[@]}" --json "$out/torch.jsonl"
    # shellcheck disable=SC2086
    runs torch-compile && log "${torch_bench[@]}" attention $shape "${compiled[@]}"
  done
fi
bench_on train || configs=""
for c in $configs; do
  if runs ssa; then
    for mode in full sparse ssa; do
      log "$bench" train --config "configs/$c.conf" --mode "$mode" --steps "$steps" \
        --json "$out/ssa.jsonl"
    done
  fi
  runs torch && log "${torch_bench[@]}" train --configs "configs/$c.conf" --modes full,sparse,ssa \
    --steps "$steps" "${authors[@]}" --json "$out/torch.jsonl"
  runs torch-compile && log "${torch_bench[@]}" train --configs "configs/$c.conf" \
    --modes full,sparse,ssa --steps "$steps" "${authors[@]}" "${compiled[@]}"
done
python3 eval/bench/compare.py "$out/ssa.jsonl" "$out/torch.jsonl" "$out/torch_compile.jsonl" \
  >"$out/tables.md"
echo "wrote $out/tables.md"
((failures == 0)) || { echo "bench.sh: $failures run(s) failed; their output is in $out/bench.log" >&2; exit 1; }
