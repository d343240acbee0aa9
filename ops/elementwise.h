#pragma once
#include "core/tensor.h"

namespace ssa {

Tensor add(const Tensor& a, const Tensor& b);  // same shapes
Tensor mul(const Tensor& a, const Tensor& b);  // same shapes, elementwise
Tensor scale(const Tensor& a, double factor);
Tensor sum(const Tensor& a);   // scalar (rank 0), accumulated in double on CPU
Tensor mean(const Tensor& a);  // scalar

}  // namespace ssa
