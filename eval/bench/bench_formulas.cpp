#include "eval/bench/bench_formulas.h"

#include <algorithm>

namespace ssa {

double causal_pairs(int64_t seq_len) {
  const double t = static_cast<double>(seq_len);
  return t * (t + 1) / 2;
}

double sparse_pairs(int64_t seq_len, int64_t block_size, int64_t top_k) {
  double pairs = 0;
  for (int64_t t = 0; t < seq_len; ++t) {
    const int64_t own = t / block_size;
    pairs += static_cast<double>(std::min(top_k - 1, own) * block_size + t - own * block_size + 1);
  }
  return pairs;
}

double attention_forward_flops(double pairs, int64_t heads, int64_t head_dim) {
  return 4.0 * static_cast<double>(head_dim * heads) * pairs;
}

double attention_backward_flops(double pairs, int64_t heads, int64_t head_dim) {
  return 2.5 * attention_forward_flops(pairs, heads, head_dim);
}

double gemm_flops(int64_t m, int64_t n, int64_t k) {
  return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
}

}  // namespace ssa
