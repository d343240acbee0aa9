#!/usr/bin/env bash
# The default job, end to end: set up, train a tokenizer on a corpus, write token shards,
# pretrain a small decoder with SSA attention (on the GPU when there is one, else on the CPU),
# evaluate it under full and sparse attention and print a sample.
#
#   scripts/quickstart.sh [--out DIR] [INPUT...]
#
# INPUTs are text files or directories (every file under them is a document). Without any,
# the corpus is the .py files of this machine's python3 standard library. DIR (default
# out/quickstart) is quickstart's own: a rerun replaces its shards/ and run/, so a DIR that holds
# files an earlier quickstart did not write (no DIR/.quickstart) is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
source scripts/args.sh

out=out/quickstart
inputs=()
while (($#)); do
  case "$1" in
    --out)
      (($# >= 2)) || { echo "quickstart: --out needs a directory" >&2; exit 2; }
      out=$2
      shift 2
      ;;
    -h | --help) script_help; exit 0 ;;
    -*) echo "quickstart: unknown option $1 (usage: $0 [--out DIR] [INPUT...])" >&2; exit 2 ;;
    *) inputs+=("$1"); shift ;;
  esac
done
for input in "${inputs[@]}"; do
  [[ -e $input ]] || { echo "quickstart: input $input does not exist" >&2; exit 2; }
done
if [[ -e $out && ! -d $out ]]; then
  echo "quickstart: --out $out is not a directory" >&2
  exit 2
fi
if [[ -d $out && ! -f $out/.quickstart && -n $(ls -A "$out") ]]; then
  echo "quickstart: --out $out holds files quickstart did not write, and a run replaces its" \
    "shards/ and run/; choose a new or empty directory" >&2
  exit 2
fi

bash scripts/setup.sh
bin=$repo/build/bin
mkdir -p "$out"
out=$(cd "$out" && pwd)
touch "$out/.quickstart"
start=$(date +%s)

corpus_list=$out/corpus.txt
if ((${#inputs[@]})); then
  find "${inputs[@]}" -type f | sort >"$corpus_list"
else
  stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
  find "$stdlib" -name '*.py' -not -path '*-packages/*' | sort >"$corpus_list"
fi
[[ -s $corpus_list ]] || { echo "quickstart: no input files found" >&2; exit 1; }
echo "quickstart: corpus of $(wc -l <"$corpus_list") files"
mapfile -t files <"$corpus_list"

tokenizer=$out/tokenizer.bin
shards=$out/shards
"$bin/ssa-tokenize" train --out "$tokenizer" --vocab-size 4096 "${files[@]}"
rm -rf "$shards"
"$bin/ssa-tokenize" encode --tokenizer "$tokenizer" --out-dir "$shards" --val-fraction 0.02 \
  "${files[@]}"

device=()
if nvidia-smi -L >/dev/null 2>&1; then
  device=(--train.device=cuda --train.dtype=bf16)
fi
run_dir=$out/run
rm -rf "$run_dir"
"$bin/ssa-train" --config configs/quickstart.conf "${device[@]}" \
  --data.train="$shards/train_*.bin" --data.val="$shards/val_*.bin" \
  --data.tokenizer="$tokenizer" --train.out_dir="$run_dir"

checkpoint=$(ls "$run_dir"/ckpt_*.h5 | tail -1)
echo "quickstart: perplexity under full attention and under sparse attention at each budget:"
"$bin/ssa-eval" ppl --checkpoint "$checkpoint" --max-batches 8 --top-k 1,2,4,8,16
echo "quickstart: attention statistics per layer (sparse path: the top 4 blocks):"
"$bin/ssa-eval" stats --checkpoint "$checkpoint" --max-batches 2
"$bin/ssa-eval" plot-log "$run_dir/log.jsonl"
echo "quickstart: a sample from the model (sparse attention, 4 blocks per token):"
"$bin/ssa-generate" --checkpoint "$checkpoint" --prompt "def " --tokens 64 --seed 7 \
  --attention sparse
echo
echo "quickstart: done in $(($(date +%s) - start)) s (after setup). Outputs in $out:"
echo "  tokenizer.bin, shards/, run/log.jsonl and run/ckpt_*.h5 (the newest: $checkpoint)"
echo "  plots: run/loss.svg, $checkpoint.ppl.svg (perplexity vs budget) and .stats.svg"
echo "  resume an interrupted run:  $bin/ssa-train --config $repo/configs/quickstart.conf ${device[*]} \\"
echo "    --resume auto \\"
echo "    --data.train='$shards/train_*.bin' --data.val='$shards/val_*.bin' \\"
echo "    --data.tokenizer=$tokenizer --train.out_dir=$run_dir"
