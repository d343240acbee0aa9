#pragma once
#include "core/tensor.h"

namespace ssa {

// Per-head sigmoid gate: out[b,t,h,:] = o[b,t,h,:] · sigmoid(logits[b,t,h]).
// o: [B, T, H, head_dim], logits: [B, T, H].
Tensor head_gate(const Tensor& o, const Tensor& logits);

}  // namespace ssa
