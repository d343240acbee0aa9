#pragma once
#include "core/tensor.h"

namespace ssa {

Tensor add(const Tensor& a, const Tensor& b);  // same shapes
Tensor mul(const Tensor& a, const Tensor& b);  // same shapes, elementwise
Tensor scale(const Tensor& a, double factor);
// Scalars (rank 0) summed in double in a fixed order (CPU: sequentially; CUDA: a fixed two-level
// tree), so repeated runs give the same bits; f32 for a bf16 input.
Tensor sum(const Tensor& a);
Tensor mean(const Tensor& a);

}  // namespace ssa
