#!/usr/bin/env bash
# The SSA paper's claims at small scale (docs/REPRODUCE.md): three models identical but for
# attention.mode — fa (full), sa (sparse), ssa — trained on the same tokens of real text (every
# .py file of this machine's Python installations) and evaluated with ssa-eval; then
# docs/RESULTS.md.
#   scripts/reproduce.sh                  everything: data, the three models, the report
#   scripts/reproduce.sh fa [sa] [ssa]    data (once), then those models: train and evaluate
#   scripts/reproduce.sh data             only the data: corpus, tokenizer, shards
#   scripts/reproduce.sh --report         docs/RESULTS.md from the JSON files alone
# Each model's small files (run.json, log.jsonl and the eval JSON/SVG) go to RESULTS/<model>/;
# data and checkpoints stay in WORK. Environment: WORK (default runs/reproduce), RESULTS
# (default docs/results), REPORT (default docs/RESULTS.md), TOKENS (training tokens per model,
# default 100000000), CONFIG (default configs/reproduce.conf), CORPUS (directories of .py
# files; default the standard library and site-packages of python3 and the directory of its
# torch package), VOCAB (default 8192), SAMPLE_MB (tokenizer training sample, default 20),
# TRAIN_ARGS (more ssa-train overrides), EVAL_ARGS (more flags for every ssa-eval command, e.g.
# --device cpu), BUILD=0 (use the binaries as they are instead of running scripts/setup.sh),
# BIN (where the binaries are, default build/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/args.sh
work=${WORK:-runs/reproduce}
results=${RESULTS:-docs/results}
report=${REPORT:-docs/RESULTS.md}
tokens=${TOKENS:-100000000}
config=${CONFIG:-configs/reproduce.conf}
vocab=${VOCAB:-8192}
bin=${BIN:-build/bin}
read -r -a train_args <<<"${TRAIN_ARGS:-}"
read -r -a eval_args <<<"${EVAL_ARGS:-}"

write_report() {
  "$bin/ssa-eval" report --fa "$results/fa" --sa "$results/sa" --ssa "$results/ssa" \
    --out "$report"
}

# The directories whose .py files make the corpus, one per line, none inside another.
corpus_dirs() {
  if [[ -n "${CORPUS:-}" ]]; then
    tr ' ' '\n' <<<"$CORPUS"
  else
    python3 - <<'EOF'
import importlib.util, os, site, sysconfig
dirs = {sysconfig.get_paths()["stdlib"], *site.getsitepackages()}
spec = importlib.util.find_spec("torch")
if spec and spec.origin:
    dirs.add(os.path.dirname(os.path.dirname(spec.origin)))
for d in sorted(os.path.realpath(d) for d in dirs if os.path.isdir(d)):
    print(d)
EOF
  fi | sort -u | awk 'NF && !(prev != "" && index($0, prev "/") == 1) { print; prev = $0 }'
}

# WORK/data: the corpus listing, the tokenizer (trained on a sample of whole files) and the
# shards (whole files held out for validation). Done once; later calls reuse it.
prepare_data() {
  local data=$work/data
  [[ -f $data/done ]] && return
  rm -rf "$data" && mkdir -p "$data/sample"
  mapfile -t dirs < <(corpus_dirs)
  find "${dirs[@]}" -name '*.py' -type f -print0 | sort -z >"$data/files"
  local files bytes
  files=$(tr -cd '\0' <"$data/files" | wc -c)
  bytes=$(xargs -0 cat <"$data/files" | wc -c)
  echo "reproduce: corpus: $files .py files, $bytes bytes, in ${dirs[*]}"
  printf '{"corpus_files": %d, "corpus_bytes": %d, "corpus_dirs": "%s"}\n' \
    "$files" "$bytes" "${dirs[*]}" >"$data/corpus.json"
  # Every k-th file, k chosen so that the sample holds about SAMPLE_MB.
  local every=$(((bytes + ${SAMPLE_MB:-20} * 1000000 - 1) / (${SAMPLE_MB:-20} * 1000000)))
  tr '\0' '\n' <"$data/files" | awk -v k="$every" 'NR % k == 1 || k == 1' | {
    local n=0
    while IFS= read -r f; do cp "$f" "$data/sample/$((++n)).py"; done
  }
  "$bin/ssa-tokenize" train --out "$data/tok.bin" --vocab-size "$vocab" "$data/sample"
  "$bin/ssa-tokenize" encode --tokenizer "$data/tok.bin" --out-dir "$data/shards" \
    --val-fraction 0.01 --glob '*.py' "${dirs[@]}"
  touch "$data/done"
}

mode_of() {
  case "$1" in
    fa) echo full ;;
    sa) echo sparse ;;
    ssa) echo ssa ;;
    *) echo "reproduce: unknown model '$1' (expected fa, sa or ssa)" >&2; exit 2 ;;
  esac
}

config_value() {  # config_value KEY: the resolved value of KEY for this experiment's config
  "$bin/ssa-train" --config "$config" "${train_args[@]}" --print-config |
    awk -F' = ' -v section="[${1%%.*}]" -v key="${1#*.}" \
      '$0 == section { inside = 1; next } /^\[/ { inside = 0 } inside && $1 == key { print $2 }'
}

# Trains and evaluates one model; its small files go to RESULTS/<model>/.
run_model() {
  local model=$1 mode out=$work/$1 dest=$results/$1
  mode=$(mode_of "$model")
  local seq micro steps
  seq=$(config_value data.seq_len)
  micro=$(config_value train.micro_batch)
  steps=$(((tokens + seq * micro - 1) / (seq * micro)))
  rm -rf "$out" "$dest" && mkdir -p "$dest"
  local train=("$bin/ssa-train" --config "$config" --attention.mode="$mode"
    --data.train="$work/data/shards/train_*.bin" --data.val="$work/data/shards/val_*.bin"
    --data.tokenizer="$work/data/tok.bin" --train.steps="$steps" --train.out_dir="$out"
    "${train_args[@]}")
  echo "reproduce: $model: ${train[*]}"
  local start=$SECONDS
  "${train[@]}" | tee "$dest/train.txt"
  local train_s=$((SECONDS - start)) ckpt
  ckpt=$(ls "$out"/ckpt_*.h5 | tail -1)
  start=$SECONDS
  "$bin/ssa-eval" ppl --checkpoint "$ckpt" --batch 8 --max-batches 16 --out "$dest/ppl" \
    "${eval_args[@]}"
  "$bin/ssa-eval" stats --checkpoint "$ckpt" --max-batches 4 --out "$dest/stats" "${eval_args[@]}"
  "$bin/ssa-eval" long-context --checkpoint "$ckpt" --max-batches 4 --out "$dest/long" \
    "${eval_args[@]}"
  local eval_s=$((SECONDS - start))
  cp "$out/log.jsonl" "$dest/log.jsonl"
  local device parameters
  device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
  parameters=$(awk '/^parameters/ { print $2 }' "$dest/train.txt")
  rm "$dest/train.txt"
  printf '{"model": "%s", "attention_mode": "%s", "tokens": %d, "steps": %d, "seq_len": %d, ' \
    "$model" "$mode" "$((steps * seq * micro))" "$steps" "$seq" >"$dest/run.json"
  printf '"parameters": %d, "train_s": %d, "eval_s": %d, "device": "%s", "date": "%s", ' \
    "$parameters" "$train_s" "$eval_s" "${device:-cpu}" "$(date -u +%F)" >>"$dest/run.json"
  printf '"commit": "%s", "config": "%s", "train_args": "%s", "vocab_size": %d, %s\n' \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$config" "${TRAIN_ARGS:-}" \
    "$vocab" "$(sed 's/^{//' "$work/data/corpus.json")" >>"$dest/run.json"
  echo "reproduce: $model: trained in ${train_s} s, evaluated in ${eval_s} s; files in $dest"
}

case ${1:-} in
  -h | --help) script_help; exit 0 ;;
  --report | data)
    (($# == 1)) || { echo "reproduce: $1 takes no more arguments, got: ${*:2}" >&2; exit 2; } ;;
  -*) echo "reproduce: unknown option $1 (see --help)" >&2; exit 2 ;;
esac
positive_integers reproduce TOKENS="$tokens" VOCAB="$vocab" SAMPLE_MB="${SAMPLE_MB:-20}"
if [[ ${1:-} == --report ]]; then
  write_report
  exit 0
fi
models=("$@")
[[ ${1:-} == data ]] && models=()
for model in "${models[@]}"; do mode_of "$model" >/dev/null; done
[[ ${BUILD:-1} == 0 ]] || scripts/setup.sh
if [[ ${1:-} == data ]]; then
  prepare_data
  exit 0
fi
((${#models[@]})) || models=(fa sa ssa)
prepare_data
for model in "${models[@]}"; do run_model "$model"; done
if [[ -f $results/fa/run.json && -f $results/sa/run.json && -f $results/ssa/run.json ]]; then
  write_report
fi
