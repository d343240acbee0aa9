#pragma once
// The block selection of select_blocks (cuda/attention/sparse_select.h) for bf16 tensors on
// tensor cores: block scores from bf16 products with fp32 accumulation and fp32 softmax, so the
// chosen blocks equal the CPU op's except where two candidates' scores lie within that
// precision of each other; equal scores go to the lower block index.
#include <cstdint>

#include "cuda/attention/sparse_attention.h"

namespace ssa::cuda {

// Whether the kernel takes the shape: head_dim 64 or 128, 1, 2, 4, 8 or 16 query heads per KV
// head, top_k ≤ 17.
bool select_blocks_bf16_takes(const SparseDims& dims, int64_t top_k);

// dims, kbar_blocks and top_k as select_blocks takes them, already checked.
void select_blocks_bf16(const SparseDims& dims, const void* q, const void* kbar,
                        int64_t kbar_blocks, int64_t top_k, int32_t* selection);

}  // namespace ssa::cuda
