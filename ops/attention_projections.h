#pragma once
#include "core/tensor.h"
#include "ops/rope.h"

namespace ssa {

// A layer's attention weights, each [out, d_model]: wq [H·head_dim], wk and wv [Hkv·head_dim],
// and the head gate's wg [H] (undefined in a model without the gate).
struct AttentionWeights {
  Tensor wq, wk, wv, wg;
};

// What attention reads: q [B, T, H, head_dim] and k [B, T, Hkv, head_dim] with RoPE applied,
// v [B, T, Hkv, head_dim], and gate_logits [B, T, H] (undefined without wg).
struct AttentionInputs {
  Tensor q, k, v, gate_logits;
};

// The projections of h [B, T, d_model] as ONE product with the stacked weight W = [wq; wk; wv; wg]
// (a view when the weights lie in this order in one buffer, as the model's parameters do; a copy
// otherwise):
//   y = h·Wᵀ;  q = rope(y's wq columns), k = rope(y's wk columns), v and gate_logits: the rest,
// at positions position_offset.. (ops/rope.h). The backward writes the four gradients into one dy
// (rotating dq and dk back) and takes dh = dy·W and dW = dyᵀ·h, one product each: separate
// linear ops would take four of each and sum four input gradients.
AttentionInputs attention_projections(const Tensor& h, const AttentionWeights& weights,
                                      int64_t head_dim, const RopeTable& table,
                                      int64_t position_offset = 0);

}  // namespace ssa
