#pragma once
#include "core/tensor.h"

namespace ssa {

// silu(a) · b, elementwise (same shapes); silu(a) = a · sigmoid(a).
Tensor swiglu(const Tensor& a, const Tensor& b);

}  // namespace ssa
