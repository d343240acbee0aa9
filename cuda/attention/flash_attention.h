#pragma once
// Flash attention: causal grouped-query attention in tiles with an online softmax, never
// materialising the Tq × Tk scores. Raw device pointers; all work on cuda::compute_stream().
// Deterministic: no atomics; every sum runs in a fixed order.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// q, out, d_out: [B, Tq, H, d]; k, v: [B, Tk, Hkv, d]; lse, delta: f32 [B, H, Tq].
// Query t sits at key position Tk − Tq + t and sees keys 0 ..= Tk − Tq + t; query head i reads
// KV head i / (H / Hkv). Scale 1/sqrt(d).
struct FlashDims {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim;
};

struct FlashForward {
  const void *q, *k, *v;
  void* out;
  float* lse;  // natural-log log-sum-exp of each query row's scaled scores
};

struct FlashBackward {
  const void *q, *k, *v, *out, *d_out;
  const float* lse;    // as written by the forward
  float* delta;        // workspace, filled here: rowsum(dO ∘ O)
  void *dq, *dk, *dv;  // written, except dq when add_dq
  // dq is added into (the gradient already summed for q): this one rounded to the dtype, then
  // the sum, as autograd adds two gradients; the separate sum kernel is not needed.
  bool add_dq = false;
};

// dtype f32: CUDA-core kernels in full fp32, any head_dim ≤ 128. dtype bf16: tensor-core kernels
// (mma.sync m16n8k16, fp32 accumulation), head_dim 64 or 128, pointers 16-byte aligned.
// Anything else raises an error naming the attention op.
void flash_attention_forward(const FlashDims& dims, DType dtype, const FlashForward& args);
void flash_attention_backward(const FlashDims& dims, DType dtype, const FlashBackward& args);

}  // namespace ssa::cuda
