#pragma once
// The shape both block-selection kernels take (select_blocks_f64.cu, select_blocks_bf16.cu), in
// int: select_blocks (sparse_select.cu) has checked that every field fits.
#include <cstdint>

#include "cuda/attention/sparse_attention.h"

namespace ssa::cuda {

struct SelectShape {
  int q_len, k_len, heads, kv_heads, block_size, width, top_k, kbar_blocks;
  // The block holding query t's key position.
  __host__ __device__ int own_block(int t) const { return (k_len - q_len + t) / block_size; }
};

inline SelectShape select_shape(const SparseDims& dims, int64_t kbar_blocks, int64_t top_k) {
  return {static_cast<int>(dims.q_len),      static_cast<int>(dims.k_len),
          static_cast<int>(dims.heads),      static_cast<int>(dims.kv_heads),
          static_cast<int>(dims.block_size), static_cast<int>(dims.width),
          static_cast<int>(top_k),           static_cast<int>(kbar_blocks)};
}

}  // namespace ssa::cuda
