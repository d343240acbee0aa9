#!/usr/bin/env bash
# Data-parallel measurements on one host with 2 NVIDIA GPUs, CUDA, NCCL and MPI (mpirun):
#  1. equivalence: a small ssa-mode model in bf16 on 2 GPUs (NCCL, micro-batch 8) against
#     1 GPU with 2 micro-steps of 8, and ZeRO-1 against plain all-reduce on 2 GPUs: the logged
#     losses must agree to bf16 tolerance (max relative difference < 1e-2);
#  2. throughput: tokens/s per GPU for bench-160m (configs/bench-160m.conf, ssa mode) on
#     1 GPU and on 2 GPUs, plain and ZeRO-1;
#  3. memory: optimizer state per rank (the startup table) and peak GPU memory, with and
#     without ZeRO-1.
#   scripts/multi_gpu.sh [OUT_DIR]     (default $OUT/multi_gpu, or out/multi_gpu)
# Writes OUT_DIR/summary.md, OUT_DIR/NAME.log (each run's output) and OUT_DIR/NAME.jsonl (its
# log.jsonl); shards and checkpoints stay in SCRATCH (default /tmp/ssa_multi_gpu).
# Environment: BUILD_DIR (default build-multi-gpu), STEPS (bench-160m steps, default 30; the
# first 5 are not timed), CMAKE_ARGS (more configure options). Data: synthetic shards of
# uniform random tokens (nothing is downloaded).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-out}/multi_gpu}
build=${BUILD_DIR:-build-multi-gpu}
steps=${STEPS:-30}
scratch=${SCRATCH:-/tmp/ssa_multi_gpu}
mkdir -p "$out" "$scratch/data"
out=$(cd "$out" && pwd)

command -v mpirun >/dev/null || { echo "multi_gpu: no mpirun (install openmpi-bin libopenmpi-dev)"; exit 1; }
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
((gpus >= 2)) || { echo "multi_gpu: needs 2 GPUs, found $gpus"; exit 1; }

echo "multi_gpu: building into $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSA_CUDA=ON -DSSA_MPI=ON \
  -DSSA_NCCL=ON ${CMAKE_ARGS:-} >"$out/build.log" 2>&1 &&
  ninja -C "$build" ssa-train >>"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
train="$(pwd)/$build/bin/ssa-train"

# 16M random tokens of a 32000-token vocabulary (version-1 shard: uint16 tokens).
python3 - "$scratch/data/train_000000.bin" <<'EOF'
import array, os, sys
count, vocab = 16 << 20, 32000
header = array.array("i", [0] * 256)
header[0], header[1], header[2] = 20240520, 1, count
tokens = array.array("H", os.urandom(2 * count))
tokens = array.array("H", (t % vocab for t in tokens))
with open(sys.argv[1], "wb") as f:
    header.tofile(f)
    tokens.tofile(f)
EOF
data=(--data.train="$scratch/data/train_*.bin" --data.val= --model.vocab_size=32000)

# run NAME RANKS ARGS...: ssa-train on RANKS processes (one GPU each), output in NAME.log.
run() {
  local name=$1 ranks=$2
  shift 2
  rm -rf "${scratch:?}/$name"
  echo "multi_gpu: $name on $ranks GPU(s)"
  mpirun --allow-run-as-root --bind-to none -x OMP_NUM_THREADS=4 -np "$ranks" "$train" \
    "${data[@]}" --train.out_dir="$scratch/$name" "$@" >"$out/$name.log" 2>&1 ||
    { echo "multi_gpu: $name failed:"; tail -20 "$out/$name.log"; }
  cp "$scratch/$name/log.jsonl" "$out/$name.jsonl" 2>/dev/null
  rm -rf "${scratch:?}/$name"
}

small=(--model.d_model=256 --model.n_layers=4 --model.n_heads=4 --model.n_kv_heads=2
  --model.head_dim=64 --model.ffn_dim=704 --model.max_seq_len=512 --data.seq_len=512
  --attention.mode=ssa --attention.block_size=16 --attention.top_k=4 --train.device=cuda
  --train.dtype=bf16 --train.steps=20 --optim.lr=0.001 --optim.warmup_steps=5)
run equal_1gpu_accum2 1 "${small[@]}" --train.micro_batch=8 --train.grad_accum=2
run equal_2gpu 2 "${small[@]}" --train.micro_batch=8
run equal_2gpu_zero 2 "${small[@]}" --train.micro_batch=8 --train.zero=1

bench=(--config configs/bench-160m.conf --train.steps="$steps" --train.log_every=1
  --train.val_every=0 --train.ckpt_every=0 --train.keep_last=1)
run bench_1gpu 1 "${bench[@]}"
run bench_2gpu 2 "${bench[@]}"
run bench_2gpu_zero 2 "${bench[@]}" --train.zero=1

python3 - "$out" <<'EOF' | tee "$out/summary.md"
import json, os, re, sys
out = sys.argv[1]

def records(name):
    path = os.path.join(out, name + ".jsonl")
    if not os.path.exists(path):
        return []
    return [r for r in map(json.loads, open(path)) if "loss" in r]

def startup(name, key):
    path = os.path.join(out, name + ".log")
    text = open(path).read() if os.path.exists(path) else ""
    m = re.search(r"^%s\s+(.*)$" % re.escape(key), text, re.M)
    return m.group(1) if m else "?"

print("# Data parallel on 2 GPUs\n")
print("## Equivalence (bf16, ssa mode, 20 steps, small model)\n")
reference = [r["loss"] for r in records("equal_1gpu_accum2")]
print("| run | steps | max relative loss difference vs 1 GPU x 2 micro-steps | within 1e-2 |")
print("|---|---|---|---|")
for name in ["equal_2gpu", "equal_2gpu_zero"]:
    losses = [r["loss"] for r in records(name)]
    if not losses or len(losses) != len(reference):
        print(f"| {name} | {len(losses)} | run failed or incomplete | no |")
        continue
    diff = max(abs(a - b) / abs(b) for a, b in zip(losses, reference))
    print(f"| {name} | {len(losses)} | {diff:.2e} | {'yes' if diff < 1e-2 else 'NO'} |")

print("\n## bench-160m, ssa mode, bf16 (tokens/s after the first 5 steps)\n")
print("| run | GPUs | tokens/s (all) | tokens/s per GPU | scaling per GPU | optimizer state | peak GPU memory |")
print("|---|---|---|---|---|---|---|")
base = None
for name, gpus in [("bench_1gpu", 1), ("bench_2gpu", 2), ("bench_2gpu_zero", 2)]:
    rs = [r for r in records(name) if r["step"] > 5]
    if not rs:
        print(f"| {name} | {gpus} | failed | | | | |")
        continue
    tps = sum(r["tokens_per_s"] for r in rs) / len(rs)
    per_gpu = tps / gpus
    base = base or per_gpu
    peak = max(r.get("peak_bytes", 0) for r in rs) / 2**30
    print(f"| {name} | {gpus} | {tps:,.0f} | {per_gpu:,.0f} | {per_gpu / base:.2f} | "
          f"{startup(name, 'optimizer state')} | {peak:.1f} GiB |")
EOF
echo "multi_gpu: wrote $out/summary.md"
