#pragma once
#include "core/tensor.h"

namespace ssa {

// Softmax cross-entropy fused with the log-softmax: sum over rows n with targets[n] !=
// ignore_index of −log softmax(logits[n])[targets[n]], divided by `divisor` (0: the number of
// such rows, i.e. the mean; 0 if every row is ignored). logits: [N, V] (CPU f32/f64, CUDA
// f32/bf16), targets: i32 [N]; a target outside [0, V) that is not ignore_index is an error.
// Returns a scalar of logits' dtype (f32 for bf16 logits). Backward: dlogits = (softmax −
// onehot(target)) · g / divisor, zero rows for ignored targets, written over the logits when
// nothing else holds them (logits made by an op and not kept). CUDA streams each row once with
// an online log-sum-exp in fp32 and never materialises the probabilities (cuda/cross_entropy.h);
// checking the targets reads one value back, so the host waits for the queued work there.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double divisor = 0,
                     int ignore_index = -1);

}  // namespace ssa
