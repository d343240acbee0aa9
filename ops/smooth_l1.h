#pragma once
#include "core/tensor.h"

namespace ssa {

// mean over elements of SmoothL1(a − b): ½d²/beta where |d| < beta, |d| − ½beta elsewhere
// (PyTorch's smooth_l1_loss; beta ≥ 0, beta = 0 is plain L1). Gradients flow to both a and b;
// stop one with detach(). The sum is taken in double, in a fixed order. The scalar has a's
// dtype (f32 for bf16 inputs).
Tensor smooth_l1(const Tensor& a, const Tensor& b, double beta);

}  // namespace ssa
