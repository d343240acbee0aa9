#pragma once
// The block selection of select_blocks (cuda/attention/sparse_select.h) with every score in
// double, as the CPU op computes it, so both pick the same blocks: the kernel for f32 tensors,
// and for bf16 shapes the tensor-core kernel does not take. One warp per query position.
#include <cstdint>

#include "cuda/attention/sparse_attention.h"

namespace ssa::cuda {

// dims, kbar_blocks and top_k as select_blocks takes them, already checked; head_dim 64 or 128.
void select_blocks_f64(const SparseDims& dims, DType dtype, const void* q, const void* kbar,
                       int64_t kbar_blocks, int64_t top_k, int32_t* selection);

}  // namespace ssa::cuda
