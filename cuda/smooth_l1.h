#pragma once
// SmoothL1 (PyTorch's smooth_l1_loss, mean reduction): fp32 elementwise math, the sum in double
// in a fixed order.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// loss (a device scalar of loss_dtype) = mean over n elements of SmoothL1(a − b).
void smooth_l1_forward(const void* a, const void* b, DType dtype, int64_t n, double beta,
                       void* loss, DType loss_dtype);
// da = g[0] / n · slope(a − b), db = −da; g is a device scalar of g_dtype.
void smooth_l1_backward(const void* a, const void* b, const void* g, DType g_dtype, void* da,
                        void* db, DType dtype, int64_t n, double beta);

}  // namespace ssa::cuda
