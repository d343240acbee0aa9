#pragma once
#include "core/tensor.h"

namespace ssa {

// y = x / sqrt(mean(x², last axis) + eps) · weight. x: [..., D], weight: [D].
Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps);

struct NormedSum {
  Tensor sum;     // x + residual
  Tensor normed;  // rmsnorm(sum, weight, eps)
};
// A residual stream's add and the norm after it, in one pass each way: the same bits as
// add(x, residual) followed by rmsnorm, forward and backward. Its backward adds sum's own
// gradient to the norm's input gradient (rounded to the dtype first, as autograd's sum of the
// two) as it writes it.
NormedSum add_rmsnorm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps);

}  // namespace ssa
