#pragma once
// The optimizer's passes over the flat fp32 parameter and gradient buffers.
#include <cstdint>

namespace ssa::cuda {

struct AdamWStep {
  double lr, beta1, beta2, eps, weight_decay;
  double bias1, bias2;  // 1 − beta^step, for the bias correction
  double grad_scale;    // each gradient is read as float(gradient · grad_scale): the clipping
};

// One fused AdamW update of n fp32 parameters, m and v updated in place. It computes in float
// (correctly rounded operations; the CPU version computes in double and rounds once, so the two
// differ by a few float ulps): a double division and square root per parameter made the pass
// compute-bound. Parameter i decays where bit i % 32 of decay_bits[i / 32] is set. When bf16_param
// is not null it receives the updated parameters rounded to bf16 (mixed precision's working copy).
void adamw_update(float* param, const float* grad, float* m, float* v, const uint32_t* decay_bits,
                  int64_t n, const AdamWStep& step, void* bf16_param);

// Σ x[i]² in double, in a fixed order; returned to the host (synchronizes).
double sum_squares(const float* x, int64_t n);

}  // namespace ssa::cuda
