#!/usr/bin/env bash
# Assembles the SSA authors' Triton kernel for bench_torch.py --authors-kernel (and bench.sh's
# AUTHORS_KERNEL) from checkouts of their repository and the two it imports; none of their code
# is in this repository.
#   scripts/authors_kernel.sh SSA_CHECKOUT NSA_CHECKOUT FLA_CHECKOUT OUT_DIR
# SSA_CHECKOUT: github zhenyi4/ssa (hf_files/parallel.py, the kernel); NSA_CHECKOUT:
# fla-org/native-sparse-attention (native_sparse_attention/ops/utils.py); FLA_CHECKOUT:
# fla-org/flash-linear-attention (the fla/ package). OUT_DIR gets
# native_sparse_attention/ops/{parallel,utils}.py and fla/, as bench_torch.py expects.
set -euo pipefail
source "$(dirname "$0")/args.sh"
help_if_asked "$@"
if [[ $# -ne 4 ]]; then
  echo "usage: $0 SSA_CHECKOUT NSA_CHECKOUT FLA_CHECKOUT OUT_DIR" >&2
  exit 2
fi
ssa=$1 nsa=$2 fla=$3 out=$4
need() {
  if [[ ! -e $1 ]]; then
    echo "authors_kernel: $1 not found (expected in a checkout of $2)" >&2
    exit 1
  fi
}
need "$ssa/hf_files/parallel.py" zhenyi4/ssa
need "$nsa/native_sparse_attention/ops/utils.py" fla-org/native-sparse-attention
need "$fla/fla/__init__.py" fla-org/flash-linear-attention
mkdir -p "$out/native_sparse_attention/ops"
cp "$ssa/hf_files/parallel.py" "$out/native_sparse_attention/ops/parallel.py"
cp "$nsa/native_sparse_attention/ops/utils.py" "$out/native_sparse_attention/ops/utils.py"
rm -rf "$out/fla"
cp -r "$fla/fla" "$out/fla"
echo "authors_kernel: $out (pass it as --authors-kernel or AUTHORS_KERNEL)"
