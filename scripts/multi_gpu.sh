#!/usr/bin/env bash
# Data-parallel measurements on the NVIDIA GPUs of one host, with CUDA, NCCL and MPI (mpirun):
#  1. equivalence (needs 2 GPUs or more): a small ssa-mode model in bf16 on the most GPUs W of
#     GPUS (NCCL, micro-batch 8), plain and ZeRO-1, against 1 GPU with W micro-steps of 8; the
#     logged losses must agree to bf16 tolerance (max relative difference < 1e-2);
#  2. throughput: each config of CONFIGS in each mode of MODES on each GPU count of GPUS
#     (plain, and ZeRO-1 as well for the configs of ZERO_CONFIGS above 1 GPU): tokens/s, per
#     GPU, scaling efficiency (per-GPU tokens/s over the 1-GPU run's), the share of step time
#     spent in communication not hidden behind compute (log.jsonl's comm_exposed_ms over ms,
#     rank 0), optimizer state per rank (the startup table) and peak GPU memory.
#   scripts/multi_gpu.sh [OUT_DIR]     (default $OUT/multi_gpu, or out/multi_gpu)
# Writes OUT_DIR/summary.md, OUT_DIR/NAME.log (each run's output) and OUT_DIR/NAME.jsonl (its
# log.jsonl); shards stay in SCRATCH (default /tmp/ssa_multi_gpu); no checkpoint is written.
# Environment: GPUS (default: 1 2 4 8, those the host has), CONFIGS (default bench-160m, files
# configs/NAME.conf), MODES (default ssa), ZERO_CONFIGS (default: CONFIGS), STEPS (throughput
# steps, default 30; the first 5 are not timed), EQUAL_STEPS (default 20), BUILD_DIR (default
# build-multi-gpu), CMAKE_ARGS (more configure options). Data: synthetic shards of uniform
# random tokens of each config's vocabulary (nothing is downloaded).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/args.sh
optional_out_dir multi_gpu.sh "$@"
out=${1:-${OUT:-out}/multi_gpu}
build=${BUILD_DIR:-build-multi-gpu}
steps=${STEPS:-30}
equal_steps=${EQUAL_STEPS:-20}
configs=${CONFIGS:-bench-160m}
modes=${MODES:-ssa}
zero_configs=${ZERO_CONFIGS:-$configs}
scratch=${SCRATCH:-/tmp/ssa_multi_gpu}
# shellcheck disable=SC2086  # GPUS is a list
positive_integers multi_gpu.sh STEPS="$steps" EQUAL_STEPS="$equal_steps" $(printf 'GPUS=%s ' ${GPUS:-1 2 4 8})
for c in $configs $zero_configs; do
  [[ -f configs/$c.conf ]] ||
    { echo "multi_gpu.sh: CONFIGS or ZERO_CONFIGS names $c, but configs/$c.conf does not exist" >&2; exit 2; }
done
command -v mpirun >/dev/null ||
  { echo "multi_gpu.sh: no mpirun (install openmpi-bin libopenmpi-dev)" >&2; exit 1; }
present=$(nvidia-smi -L 2>/dev/null | wc -l)
((present >= 1)) || { echo "multi_gpu.sh: no GPU found (nvidia-smi -L)" >&2; exit 1; }
gpu_counts=()
for g in ${GPUS:-1 2 4 8}; do ((g <= present)) && gpu_counts+=("$g"); done
((${#gpu_counts[@]})) ||
  { echo "multi_gpu.sh: none of GPUS (${GPUS:-}) is available: $present GPU(s) present" >&2; exit 1; }
most=${gpu_counts[-1]}
mkdir -p "$out" "$scratch"
out=$(cd "$out" && pwd)
echo "multi_gpu: $present GPU(s) present; runs on ${gpu_counts[*]}"

echo "multi_gpu: building into $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSA_CUDA=ON -DSSA_MPI=ON \
  -DSSA_NCCL=ON ${CMAKE_ARGS:-} >"$out/build.log" 2>&1 &&
  ninja -C "$build" ssa-train >>"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
train="$(pwd)/$build/bin/ssa-train"

# shards VOCAB: the directory of a shard of 16M uniform random tokens below VOCAB (written once;
# version 2, uint32 tokens).
shards() {
  local dir="$scratch/data_$1"
  [[ -f "$dir/train_000000.bin" ]] || {
    mkdir -p "$dir"
    python3 - "$dir/train_000000.bin" "$1" <<'EOF'
import array, os, sys
count, vocab = 16 << 20, int(sys.argv[2])
header = array.array("i", [0] * 256)
header[0], header[1], header[2] = 20240520, 2, count
try:
    import numpy
    tokens = numpy.random.default_rng().integers(0, vocab, count, dtype=numpy.uint32).tobytes()
except ImportError:
    tokens = array.array("I", (t % vocab for t in array.array("I", os.urandom(4 * count))))
with open(sys.argv[1], "wb") as f:
    header.tofile(f)
    f.write(tokens)
EOF
  }
  echo "$dir"
}
vocab_of() { sed -n 's/^vocab_size *= *\([0-9]*\).*/\1/p' "configs/$1.conf" | head -1; }

# run NAME RANKS ARGS...: ssa-train on RANKS processes (one GPU each), output in NAME.log.
failures=0
run() {
  local name=$1 ranks=$2
  shift 2
  rm -rf "${scratch:?}/$name"
  echo "multi_gpu: $name on $ranks GPU(s)"
  SECONDS=0
  mpirun --allow-run-as-root --bind-to none -x OMP_NUM_THREADS=4 -np "$ranks" "$train" \
    --data.val= --train.ckpt_every=-1 --train.out_dir="$scratch/$name" "$@" \
    >"$out/$name.log" 2>&1 || {
    failures=$((failures + 1))
    echo "multi_gpu: $name failed:"
    tail -20 "$out/$name.log"
  }
  echo "multi_gpu: $name took $SECONDS s"
  cp "$scratch/$name/log.jsonl" "$out/$name.jsonl" 2>/dev/null
  rm -rf "${scratch:?}/$name"
}

rm -f "$out/runs.tsv"
if ((most >= 2)); then
  small=(--data.train="$(shards 32000)/train_*.bin" --model.vocab_size=32000 --model.d_model=256
    --model.n_layers=4 --model.n_heads=4 --model.n_kv_heads=2 --model.head_dim=64
    --model.ffn_dim=704 --model.max_seq_len=512 --data.seq_len=512 --attention.mode=ssa
    --attention.block_size=16 --attention.top_k=4 --train.device=cuda --train.dtype=bf16
    --train.steps="$equal_steps" --train.micro_batch=8 --optim.lr=0.001 --optim.warmup_steps=5)
  run equal_1gpu_accum"$most" 1 "${small[@]}" --train.grad_accum="$most"
  run equal_"$most"gpu "$most" "${small[@]}"
  run equal_"$most"gpu_zero "$most" "${small[@]}" --train.zero=1
fi

for config in $configs; do
  data=(--data.train="$(shards "$(vocab_of "$config")")/train_*.bin")
  for mode in $modes; do
    for gpus in "${gpu_counts[@]}"; do
      zeros=0
      [[ " $zero_configs " == *" $config "* ]] && ((gpus > 1)) && zeros="0 1"
      for zero in $zeros; do
        name="${config}_${mode}_${gpus}gpu$( ((zero)) && echo _zero)"
        run "$name" "$gpus" --config "configs/$config.conf" "${data[@]}" \
          --attention.mode="$mode" --train.zero="$zero" --train.steps="$steps" \
          --train.log_every=1 --train.val_every=0
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$config" "$mode" "$gpus" "$zero" >>"$out/runs.tsv"
      done
    done
  done
done

python3 - "$out" "$most" "$equal_steps" <<'EOF' | tee "$out/summary.md"
import json, os, re, sys
out, most, equal_steps = sys.argv[1], int(sys.argv[2]), sys.argv[3]

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

print("# Data parallel on %d GPU(s)\n" % most)
if most >= 2:
    print("## Equivalence (bf16, ssa mode, %s steps, small model)\n" % equal_steps)
    reference = [r["loss"] for r in records("equal_1gpu_accum%d" % most)]
    print("| run | steps | max relative loss difference vs 1 GPU x %d micro-steps | within 1e-2 |" % most)
    print("|---|---|---|---|")
    for name in ["equal_%dgpu" % most, "equal_%dgpu_zero" % most]:
        losses = [r["loss"] for r in records(name)]
        if not losses or len(losses) != len(reference):
            print(f"| {name} | {len(losses)} | run failed or incomplete | no |")
            continue
        diff = max(abs(a - b) / abs(b) for a, b in zip(losses, reference))
        print(f"| {name} | {len(losses)} | {diff:.2e} | {'yes' if diff < 1e-2 else 'NO'} |")
    print()

print("## Throughput, bf16 (means over the steps after the first 5)\n")
print("| config | mode | ZeRO-1 | GPUs | tokens/s (all) | tokens/s per GPU | scaling efficiency "
      "| comm not hidden | optimizer state | peak GPU memory |")
print("|---|---|---|---|---|---|---|---|---|---|")
base = {}
runs = [line.rstrip("\n").split("\t") for line in open(os.path.join(out, "runs.tsv"))]
for name, config, mode, gpus, zero in runs:
    gpus, zero = int(gpus), zero == "1"
    rs = [r for r in records(name) if r["step"] > 5]
    if not rs:
        print(f"| {config} | {mode} | {'yes' if zero else 'no'} | {gpus} | failed | | | | | |")
        continue
    tps = sum(r["tokens_per_s"] for r in rs) / len(rs)
    per_gpu = tps / gpus
    if gpus == 1:
        base[(config, mode)] = per_gpu
    one = base.get((config, mode))
    efficiency = f"{per_gpu / one:.0%}" if one else "?"
    step_ms = sum(r["ms"] for r in rs)
    exposed = sum(r.get("comm_exposed_ms", 0) for r in rs) / step_ms if gpus > 1 else 0
    peak = max(r.get("peak_bytes", 0) for r in rs) / 2**30
    print(f"| {config} | {mode} | {'yes' if zero else 'no'} | {gpus} | {tps:,.0f} | {per_gpu:,.0f} "
          f"| {efficiency} | {exposed:.1%} | {startup(name, 'optimizer state')} | {peak:.1f} GiB |")
EOF
echo "multi_gpu: wrote $out/summary.md"
((failures == 0)) || { echo "multi_gpu.sh: $failures run(s) failed (their NAME.log in $out)" >&2; exit 1; }
