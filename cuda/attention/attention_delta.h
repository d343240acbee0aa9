#pragma once
// delta = rowsum(dO ∘ O), the first pass of the full attention backward (the sparse path's dQ
// kernel computes its own).
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// out and d_out: rows (b·Tq + t)·H + h of head_dim values (f32 or bf16); delta: one f32 per row,
// at the row's own index, or with heads_first at (b·H + h)·Tq + t.
struct DeltaRows {
  int64_t batch, q_len, heads, head_dim;
  bool heads_first;
};

void attention_delta(const void* out, const void* d_out, float* delta, DType dtype,
                     const DeltaRows& rows);

}  // namespace ssa::cuda
