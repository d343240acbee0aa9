#pragma once
#include "core/tensor.h"

namespace ssa {

// Softmax cross-entropy fused with the log-softmax: sum over rows n with targets[n] !=
// ignore_index of −log softmax(logits[n])[targets[n]], divided by `divisor` (0: the number of
// such rows, i.e. the mean; 0 if every row is ignored). logits: [N, V] f32/f64, targets: i32 [N];
// a target outside [0, V) that is not ignore_index is an error. Returns a scalar of logits' dtype.
// Backward: dlogits = (softmax − onehot(target)) · g / divisor, zero rows for ignored targets.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double divisor = 0,
                     int ignore_index = -1);

}  // namespace ssa
