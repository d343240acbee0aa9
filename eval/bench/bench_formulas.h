#pragma once
// The operation counts ssa-bench reports rates against (docs/PERF.md prints them). The same
// formulas are in eval/bench/bench_torch.py, so both sides divide by the same numbers.
#include <cstdint>

namespace ssa {

// (query, key) pairs causal attention over T tokens scores: Σ_t (t + 1) = T(T + 1)/2.
double causal_pairs(int64_t seq_len);

// Pairs the sparse path scores when each query keeps top_k blocks of block_size tokens, its own
// block included: Σ_t min(top_k − 1, o_t)·bs + (t − o_t·bs + 1) with o_t = t / bs (the own
// block up to the query, and the complete earlier blocks it keeps). The selection's scoring is
// not counted. Equals causal_pairs when every block is kept.
double sparse_pairs(int64_t seq_len, int64_t block_size, int64_t top_k);

// Attention FLOPs per batch row: forward 4·d·H per pair (QKᵀ and PV, 2·d each); backward 2.5×
// the forward (five products of that size instead of two, as FlashAttention-2 counts).
double attention_forward_flops(double pairs, int64_t heads, int64_t head_dim);
double attention_backward_flops(double pairs, int64_t heads, int64_t head_dim);

// A GEMM [m, k]·[k, n]: 2·m·n·k.
double gemm_flops(int64_t m, int64_t n, int64_t k);

}  // namespace ssa
