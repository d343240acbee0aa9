#pragma once
#include "core/tensor.h"

namespace ssa {

// silu(a) · b, elementwise (same shapes); silu(a) = a · sigmoid(a).
Tensor swiglu(const Tensor& a, const Tensor& b);

// The feed-forward block's gate from its normed input h [..., in]: swiglu(h·w1ᵀ, h·w3ᵀ)
// [..., width], with w1 and w3 [width, in] stacked into ONE product y = h·[w1; w3]ᵀ (a view when
// w3 follows w1 in one buffer, as the model's parameters do; a copy otherwise) whose two column
// halves the gate reads. The backward writes both halves' gradients into one dy and takes
// dh = dy·[w1; w3] and the stacked weight gradient, one product each: separate linear ops would
// take two of each and sum two input gradients.
Tensor swiglu_projections(const Tensor& h, const Tensor& w1, const Tensor& w3);

}  // namespace ssa
