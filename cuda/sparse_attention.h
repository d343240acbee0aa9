#pragma once
// The sparse path of ops/sparse_attention.h on the GPU: block means, block selection, and
// attention over the selected blocks with its backward. Raw device pointers; all work on
// cuda::compute_stream(). Same layouts and results as the CPU op (see there): q, out, d_out
// [B, Tq, H, d]; k, v [B, Tk, Hkv, d]; selection i32 [B, Tq, Hkv, W]; query t sits at key
// position Tk − Tq + t. Deterministic: no floating-point atomics, every sum in a fixed order.
// f32 or bf16 tensors; head_dim 64 or 128 (block_means takes any); anything else raises an error
// naming the op.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

struct SparseDims {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim, block_size, width;
};

// means[b, j, :] = mean over s < block_size of k[b, j·block_size + s, :] for j < k_len / bs,
// summed in double; row = Hkv·d values per key position.
void block_means(const void* k, void* means, DType dtype, int64_t batch, int64_t k_len,
                 int64_t row, int64_t block_size);

// The selection of select_blocks (dims.k_len keys, dims.width = min(top_k, ceil(k_len / bs))),
// scores in double as on the CPU, so the same blocks win, ties to the lower index. kbar holds
// kbar_blocks ≥ (k_len − 1) / bs blocks per batch row.
void select_blocks(const SparseDims& dims, DType dtype, const void* q, const void* kbar,
                   int64_t kbar_blocks, int64_t top_k, int32_t* selection);

// The first selection row (b·Tq + t)·Hkv + kv that is not strictly ascending blocks ≤ the own
// block, at least one, then −1 padding; −1 when all are valid. Synchronizes: the host needs it.
int64_t first_invalid_selection_row(const SparseDims& dims, const int32_t* selection);

struct SparseForward {
  const void *q, *k, *v;
  const int32_t* selection;
  void* out;
  float* lse;  // [B, Tq, H]: natural-log log-sum-exp of each query row's scaled scores
};

struct SparseBackward {
  const void *q, *k, *v, *out, *d_out;
  const int32_t* selection;
  const float* lse;  // as written by the forward
  void *dq, *dk, *dv;  // written, not accumulated
};

// dtype f32: fp32 arithmetic throughout (the testing mode). bf16: tensor cores (mma.sync,
// fp32 accumulation), probabilities rounded to bf16 before their products. block_size a
// multiple of 16; pointers 16-byte aligned.
void sparse_attention_forward(const SparseDims& dims, DType dtype, const SparseForward& args);
void sparse_attention_backward(const SparseDims& dims, DType dtype, const SparseBackward& args);

}  // namespace ssa::cuda
