#pragma once
#include "core/tensor.h"

namespace ssa {

// silu(a) · b, elementwise (same shapes); silu(a) = a · sigmoid(a).
Tensor swiglu(const Tensor& a, const Tensor& b);

// linear(swiglu(a, b), w) (ops/linear.h: w [out, hidden], a and b [..., hidden]) without keeping
// silu(a) · b for backward: the backward computes it again, to the bit, in the pass that computes
// da and db, so the feed-forward holds two [rows, hidden] tensors per layer instead of three.
// Same values and gradients as the two ops.
Tensor swiglu_linear(const Tensor& a, const Tensor& b, const Tensor& w);

}  // namespace ssa
