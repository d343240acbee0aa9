#pragma once
// Per-head sigmoid gate: o viewed as `heads` rows of head_dim, one logit per row; fp32 math.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// out[r, :] = o[r, :] · sigmoid(logits[r]).
void head_gate_forward(const void* o, const void* logits, void* out, DType dtype, int64_t heads,
                       int64_t head_dim);
// d_o = dout · s;  d_logits[r] = s · (1 − s) · Σ_j dout[r, j] · o[r, j].
void head_gate_backward(const void* o, const void* logits, const void* dout, void* d_o,
                        void* d_logits, DType dtype, int64_t heads, int64_t head_dim);

}  // namespace ssa::cuda
