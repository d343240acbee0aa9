#pragma once
// The sparse path's block means, block selection and selection check on the GPU
// (ops/sparse_attention.h). Raw device pointers; all work on cuda::compute_stream().
#include <cstdint>

#include "cuda/attention/sparse_attention.h"

namespace ssa::cuda {

// means[b, j, :] = mean over s < block_size of k[b, j·block_size + s, :] for j < k_len / bs,
// summed in double; row = Hkv·d values per key position.
void block_means(const void* k, void* means, DType dtype, int64_t batch, int64_t k_len, int64_t row,
                 int64_t block_size);

// The selection of select_blocks (dims.k_len keys, dims.width = min(top_k, ceil(k_len / bs))),
// ties to the lower block index. f32: scores in double, as on the CPU, so the same blocks win.
// bf16: on tensor cores where select_blocks_bf16_takes the shape (the same blocks as the CPU
// except between candidates whose scores agree to fp32 precision), else in double. kbar holds
// kbar_blocks ≥ (k_len − 1) / bs blocks per batch row.
void select_blocks(const SparseDims& dims, DType dtype, const void* q, const void* kbar,
                   int64_t kbar_blocks, int64_t top_k, int32_t* selection);

// The first selection row (b·Tq + t)·Hkv + kv that is not strictly ascending blocks ≤ the own
// block, at least one, then −1 padding; −1 when all are valid. Synchronizes: the host needs it.
int64_t first_invalid_selection_row(const SparseDims& dims, const int32_t* selection);

}  // namespace ssa::cuda
