#include "op_test_util.h"

#include <cmath>

namespace ssa::test {

Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype, bool requires_grad,
                     double scale) {
  Tensor t = Tensor::empty(shape, dtype);
  Rng rng(seed);
  rng.fill_uniform(t, -scale, scale);
  t.set_requires_grad(requires_grad);
  return t;
}

Tensor grown_along_sequence(const Tensor& keys, double tokens_per_step) {
  std::vector<double> values = keys.to_vector();
  const int64_t token_elements = keys.dim(2) * keys.dim(3);
  for (size_t i = 0; i < values.size(); ++i) {
    const int64_t token = static_cast<int64_t>(i) / token_elements % keys.dim(1);
    values[i] *= 1.0 + static_cast<double>(token) / tokens_per_step;
  }
  return Tensor::from(values, keys.shape(), DType::f64).to(keys.dtype());
}

Tensor random_ids(const Shape& shape, int64_t n, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::i32);
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<int32_t>()[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(n)));
  return t;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  return max_abs_diff(a.to_vector(), b.to_vector());
}

double relative_error(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0, largest = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    worst = std::max(worst, std::abs(got[i] - want[i]));
    largest = std::max(largest, std::abs(want[i]));
  }
  return largest > 0 ? worst / largest : worst;
}

double relative_norm_error(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double difference = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    difference += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(difference / norm);
}

void check_gradients(const OpFn& f, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  GradcheckResult result = gradcheck(f, inputs, options);
  CHECK_MESSAGE(result.ok, result.report);
}

}  // namespace ssa::test
