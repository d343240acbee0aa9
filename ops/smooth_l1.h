#pragma once
#include "core/tensor.h"

namespace ssa {

// mean over elements of SmoothL1(a − b): ½d²/beta where |d| < beta, |d| − ½beta elsewhere
// (PyTorch's smooth_l1_loss; beta ≥ 0, beta = 0 is plain L1). Gradients flow to both a and b;
// stop one with detach(). The sum is taken in double, in a fixed order. The scalar has a's
// dtype (f32 for bf16 inputs).
Tensor smooth_l1(const Tensor& a, const Tensor& b, double beta);

// smooth_l1(a, head_gate(b, logits), beta) (ops/gate.h): SSA's alignment term between the output
// a layer passes on (a, already gated) and the other path's output before its head gate (b,
// [B, T, H, head_dim]; logits [B, T, H]). On the CPU that composition. On CUDA one pass forward
// and one backward that never store the gated b; where head_dim is a whole number of 16-byte
// packs (the attention kernels' 64 and 128) with the composition's bits, values and gradients.
Tensor gated_smooth_l1(const Tensor& a, const Tensor& b, const Tensor& logits, double beta);

}  // namespace ssa
