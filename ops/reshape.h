#pragma once
#include "core/tensor.h"

namespace ssa {

// The same data under another shape (same numel), differentiable: the gradient is reshaped back.
Tensor reshape(const Tensor& x, const Shape& shape);

}  // namespace ssa
