#pragma once
// SmoothL1 (PyTorch's smooth_l1_loss, mean reduction): fp32 elementwise math, the sum in double
// in a fixed order.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

// loss (a device scalar of loss_dtype) = mean over n elements of SmoothL1(a − b).
void smooth_l1_forward(const void* a, const void* b, DType dtype, int64_t n, double beta,
                       void* loss, DType loss_dtype);
// Which gradient of the backward is added into the values at its pointer (the gradient already
// summed there) instead of written: rounded to the dtype first, then the sum, as autograd adds
// two gradients.
enum class AddInto { none, da, db };

// da = g[0] / n · slope(a − b), db = −da; g is a device scalar of g_dtype.
void smooth_l1_backward(const void* a, const void* b, const void* g, DType g_dtype, void* da,
                        void* db, DType dtype, int64_t n, double beta,
                        AddInto add_into = AddInto::none);

}  // namespace ssa::cuda
