#include <cmath>

#include "op_test_util.h"
#include "ops/gate.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("head_gate: each head scaled by the sigmoid of its logit") {
  Tensor o = random_tensor({2, 3, 2, 5}, 51, DType::f64, false);
  Tensor logits = random_tensor({2, 3, 2}, 52, DType::f64, false, 3.0);
  for (DType dtype : {DType::f64, DType::f32}) {
    std::vector<double> out = head_gate(o.to(dtype), logits.to(dtype)).to_vector();
    std::vector<double> in = o.to_vector(), z = logits.to_vector();
    for (size_t i = 0; i < in.size(); ++i)
      CHECK(out[i] == doctest::Approx(in[i] / (1 + std::exp(-z[i / 5]))).epsilon(1e-6));
  }
}

TEST_CASE("head_gate: errors") {
  Tensor o = Tensor::zeros({1, 2, 3, 4}, DType::f32);
  CHECK_THROWS_AS(head_gate(o, Tensor::zeros({1, 2, 4}, DType::f32)), Error);
  CHECK_THROWS_AS(head_gate(o, Tensor::zeros({1, 2, 3, 1}, DType::f32)), Error);
  CHECK_THROWS_AS(head_gate(o, Tensor::zeros({1, 2, 3}, DType::f64)), Error);
  CHECK_THROWS_AS(
      head_gate(Tensor::zeros({2, 3, 4}, DType::f32), Tensor::zeros({2, 3}, DType::f32)), Error);
}
