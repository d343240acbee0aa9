#pragma once
// The sparse path of ops/sparse_attention.h on the GPU: attention over the selected blocks and
// its backward (the selection itself: cuda/attention/sparse_select.h). Raw device pointers; all
// work on cuda::compute_stream(). Same layouts and results as the CPU op (see there): q, out, d_out
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

struct SparseForward {
  const void *q, *k, *v;
  const int32_t* selection;
  void* out;
  float* lse;  // [B, Tq, H]: natural-log log-sum-exp of each query row's scaled scores
};

struct SparseBackward {
  const void *q, *k, *v, *out, *d_out;
  const int32_t* selection;
  const float* lse;     // as written by the forward
  void *dq, *dk, *dv;   // written, except dq when add_dq
  bool add_dq = false;  // dq added into, as FlashBackward's (cuda/attention/flash_attention.h)
};

// dtype f32: fp32 arithmetic throughout (the testing mode). bf16: tensor cores (mma.sync,
// fp32 accumulation), probabilities rounded to bf16 before their products. block_size a
// multiple of 16; pointers 16-byte aligned.
void sparse_attention_forward(const SparseDims& dims, DType dtype, const SparseForward& args);
void sparse_attention_backward(const SparseDims& dims, DType dtype, const SparseBackward& args);

}  // namespace ssa::cuda
