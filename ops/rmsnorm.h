#pragma once
#include "core/tensor.h"

namespace ssa {

// y = x / sqrt(mean(x², last axis) + eps) · weight. x: [..., D], weight: [D].
Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps);

}  // namespace ssa
