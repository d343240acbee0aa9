#include <doctest/doctest.h>

#include "eval/bench/bench_formulas.h"

namespace ssa {

TEST_CASE("bench formulas: causal pairs") {
  CHECK(causal_pairs(1) == 1);
  CHECK(causal_pairs(4) == 10);  // 1 + 2 + 3 + 4
  CHECK(causal_pairs(4096) == 4096.0 * 4097 / 2);
}

TEST_CASE("bench formulas: sparse pairs count the selected keys") {
  // Blocks of 2, top-2: t = 0, 1 see their own block (1, 2 keys); t = 2, 3 add block 0 (3, 4);
  // t = 4, 5 keep one earlier block and their own (2 + 1, 2 + 2).
  CHECK(sparse_pairs(6, 2, 2) == 1 + 2 + 3 + 4 + 3 + 4);
  // Top-1 keeps the own block only.
  CHECK(sparse_pairs(8, 4, 1) == 2 * (1 + 2 + 3 + 4));
  // Every block kept: full causal attention.
  CHECK(sparse_pairs(64, 16, 4) == causal_pairs(64));
  CHECK(sparse_pairs(64, 16, 100) == causal_pairs(64));
  // Long sequences: about top_k · bs keys per query, far below T/2.
  const double per_query = sparse_pairs(32768, 16, 16) / 32768;
  CHECK(per_query > 240);
  CHECK(per_query < 256);
}

TEST_CASE("bench formulas: FLOPs") {
  CHECK(attention_forward_flops(10, 16, 64) == 4.0 * 64 * 16 * 10);
  CHECK(attention_backward_flops(10, 16, 64) == 2.5 * attention_forward_flops(10, 16, 64));
  CHECK(gemm_flops(2, 3, 4) == 48);
}

}  // namespace ssa
