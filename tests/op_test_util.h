#pragma once
// Shared helpers for the op tests: random inputs, differences and a gradcheck assertion.
#include <doctest/doctest.h>

#include <functional>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace ssa::test {

// A CPU tensor of uniform(-scale, scale) values drawn from `seed`, requiring grad if asked.
Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype = DType::f64,
                     bool requires_grad = true, double scale = 1.0);
// keys [B, T, heads, d] with token t's values scaled by 1 + t / tokens_per_step, in keys'
// dtype: scores that grow along the sequence, so that a row's running max keeps moving.
Tensor grown_along_sequence(const Tensor& keys, double tokens_per_step);
// Random i32 ids in [0, n).
Tensor random_ids(const Shape& shape, int64_t n, uint64_t seed);
// Largest |a - b| over elements (same shape, or same length).
double max_abs_diff(const Tensor& a, const Tensor& b);
double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b);
// max |got − want| / max |want|; infinite when `got` holds a NaN or an infinity.
double relative_error(const std::vector<double>& got, const std::vector<double>& want);
// ‖got − want‖ / ‖want‖ (Euclidean norms over the whole vectors).
double relative_norm_error(const std::vector<double>& got, const std::vector<double>& want);

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;
// Runs gradcheck and fails the current test case with its report if it does not pass.
void check_gradients(const OpFn& f, const std::vector<Tensor>& inputs,
                     GradcheckOptions options = {});

}  // namespace ssa::test
