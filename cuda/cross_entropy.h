#pragma once
// Softmax cross-entropy fused with the log-softmax: one block per row streams the vocabulary
// once with an online (running max, running sum) log-sum-exp in fp32; no probability buffer is
// materialised, and the backward writes dlogits directly.
#include <cstdint>

#include "core/dtype.h"

namespace ssa::cuda {

struct CrossEntropyDims {
  int64_t rows, vocab;
  int ignore_index;
};

// lse[n] = log Σ_v exp(logits[n, v]) (f32, kept for backward); loss (a device scalar of
// loss_dtype) = Σ over rows whose target is not ignore_index of (lse[n] − logits[n, target]),
// divided by `denominator` (a loss of 0 when it is 0), the sum in double in a fixed order.
void cross_entropy_forward(const void* logits, const int32_t* targets, DType dtype,
                           const CrossEntropyDims& dims, double denominator, float* lse, void* loss,
                           DType loss_dtype);

// dlogits[n] = (softmax(logits[n]) − onehot(target[n])) · g[0] / denominator, zero rows for
// ignored targets; g is a device scalar of g_dtype.
void cross_entropy_backward(const void* logits, const int32_t* targets, const float* lse,
                            const void* g, DType g_dtype, double denominator, void* dlogits,
                            DType dtype, const CrossEntropyDims& dims);

}  // namespace ssa::cuda
