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

// The alignment term against a gated output that is never stored: SmoothL1(a − b ⊙ σ(logit))
// over `rows` rows of head_dim elements (the row of an element: its (b, t, h); logits holds one
// per row). b ⊙ σ is rounded to the dtype as head_gate_forward rounds it, so the loss, da and
// the gradients of b and the logits have the bits of head_gate followed by smooth_l1.
void gated_smooth_l1_forward(const void* a, const void* b, const void* logits, DType dtype,
                             int64_t rows, int64_t head_dim, double beta, void* loss,
                             DType loss_dtype);
// da as smooth_l1_backward's (added into the values at da with add_into_da); d_b and d_logits as
// head_gate_backward's for the gated side's gradient.
void gated_smooth_l1_backward(const void* a, const void* b, const void* logits, const void* g,
                              DType g_dtype, void* da, void* d_b, void* d_logits, DType dtype,
                              int64_t rows, int64_t head_dim, double beta, bool add_into_da);

}  // namespace ssa::cuda
