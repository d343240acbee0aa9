#!/usr/bin/env bash
# Gradient parity with PyTorch: trains a small ssa-mode model 3 steps on the CPU, then for each
# attention mode (full, sparse, ssa) and each precision (cpu f64, cuda f32, cuda bf16) writes
# the loss and every gradient on one batch with `ssa-eval grads` and checks them against
# PyTorch autograd with eval/reference/parity_torch.py (per-tensor tolerances: its docstring).
#   scripts/parity.sh [OUT_DIR]     (default $OUT/parity, or out/parity)
# Writes OUT_DIR/summary.md (one row per mode and precision: the largest relative error and
# the verdict), OUT_DIR/parity.log (every per-tensor table) and OUT_DIR/build.log.
# Environment: BUILD_DIR (default build-gpu), CMAKE_ARGS (more configure options), PRECISIONS
# (default "cpu:f64 cuda:f32 cuda:bf16"; "cpu:f64" alone where there is no GPU), MODES
# (default "full sparse ssa"), TOP_K (sparse path budget, default 4 of the 8 blocks), SCRATCH
# (default /tmp/ssa_parity). Data: synthetic shards of uniform random tokens.
# Needs python3 with torch and h5py.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/args.sh
optional_out_dir parity.sh "$@"
python3 -c 'import torch, h5py' 2>/dev/null ||
  { echo "parity.sh: python3 cannot import torch and h5py, which the comparison needs" >&2; exit 1; }
out=${1:-${OUT:-out}/parity}
build=${BUILD_DIR:-build-gpu}
scratch=${SCRATCH:-/tmp/ssa_parity}
modes=${MODES:-full sparse ssa}
top_k=${TOP_K:-4}
if [[ -z ${PRECISIONS:-} ]]; then
  PRECISIONS="cpu:f64"
  nvidia-smi -L >/dev/null 2>&1 && PRECISIONS="cpu:f64 cuda:f32 cuda:bf16"
fi
mkdir -p "$out" "$scratch/data"
out=$(cd "$out" && pwd)

echo "parity: building into $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >"$out/build.log" 2>&1 &&
  ninja -C "$build" ssa-train ssa-eval >>"$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log"; exit 1; }
bin="$(pwd)/$build/bin"

# 64K training and 8K validation tokens of a 512-token vocabulary (version-1 shards).
python3 - "$scratch/data" <<'EOF'
import array, os, random, sys
random.seed(5)
for name, count in (("train_000000.bin", 1 << 16), ("val_000000.bin", 1 << 13)):
    header = array.array("i", [0] * 256)
    header[0], header[1], header[2] = 20240520, 1, count
    tokens = array.array("H", (random.randrange(512) for _ in range(count)))
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        header.tofile(f)
        tokens.tofile(f)
EOF

rm -rf "${scratch:?}/run"
echo "parity: training the small model 3 steps (cpu)"
"$bin/ssa-train" --model.vocab_size=512 --model.d_model=128 --model.n_layers=2 --model.n_heads=4 \
  --model.n_kv_heads=2 --model.head_dim=64 --model.ffn_dim=352 --model.max_seq_len=128 \
  --data.seq_len=128 --data.train="$scratch/data/train_*.bin" --data.val="$scratch/data/val_*.bin" \
  --attention.mode=ssa --attention.block_size=16 --attention.top_k="$top_k" --train.steps=3 \
  --train.micro_batch=4 --train.out_dir="$scratch/run" >"$out/train.log" 2>&1 ||
  { echo "parity: training failed:"; tail -20 "$out/train.log"; exit 1; }
ckpt="$scratch/run/ckpt_00000003.h5"

: >"$out/parity.log"
rows=()
failures=0
for precision in $PRECISIONS; do
  device=${precision%%:*} dtype=${precision#*:}
  for mode in $modes; do
    grads="$scratch/grads_${mode}_${device}_${dtype}.h5"
    echo "parity: $mode attention, $dtype on $device"
    {
      echo "=== $mode attention, ssa-eval grads --device $device --dtype $dtype ==="
      "$bin/ssa-eval" grads --checkpoint "$ckpt" --batch 2 --attention "$mode" --device "$device" \
        --dtype "$dtype" --out "$grads" 2>&1 &&
        python3 eval/reference/parity_torch.py "$ckpt" "$grads" 2>&1
    } >"$scratch/last.log"
    status=$?
    cat "$scratch/last.log" >>"$out/parity.log"
    echo >>"$out/parity.log"
    worst=$(grep -o 'max rel.error [^;]*' "$scratch/last.log" | sed 's/max rel.error //')
    if ((status == 0)); then verdict=pass; else verdict=FAIL; failures=$((failures + 1)); fi
    rows+=("| $mode | $device | $dtype | ${worst:-no result} | $verdict |")
  done
done

{
  echo "# Gradient parity with PyTorch"
  echo
  echo "Model: vocab 512, d_model 128, 2 layers, 4 heads (2 KV heads) of 64, ffn 352, trained 3"
  echo "steps in ssa mode (cpu, f32); batch 2 x 128 tokens of the validation shard; sparse path"
  echo "top-$top_k blocks of 16. PyTorch: $(python3 -c 'import torch; print(torch.__version__)')."
  echo "Error: max|ours - torch| / max|torch| per tensor (loss, cross-entropy, alignment and every"
  echo "gradient); the table gives each run's largest. Tolerances: f64 1e-10, f32 1e-4, bf16 3e-2"
  echo "(or ours within twice PyTorch bf16's own error from PyTorch f64); per-tensor tables in"
  echo "parity.log."
  echo
  echo "| attention | device | dtype | max relative error (tensor) | result |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out/summary.md"
echo "parity: wrote $out/summary.md ($failures failed)"
((failures == 0))
