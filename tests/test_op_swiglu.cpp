#include <cmath>

#include "op_test_util.h"
#include "ops/swiglu.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("swiglu: forward is a · sigmoid(a) · b") {
  const std::vector<double> a{-3, -0.5, 0, 0.7, 4, -800}, b{2, -1, 5, 0.3, -0.25, 1};
  for (DType dtype : {DType::f64, DType::f32}) {
    std::vector<double> out =
        swiglu(Tensor::from(a, {2, 3}, dtype), Tensor::from(b, {2, 3}, dtype)).to_vector();
    for (size_t i = 0; i < a.size(); ++i)
      CHECK(out[i] == doctest::Approx(a[i] / (1 + std::exp(-a[i])) * b[i]).epsilon(1e-6));
  }
}

TEST_CASE("swiglu: errors") {
  Tensor a = Tensor::zeros({2, 3}, DType::f32);
  CHECK_THROWS_AS(swiglu(a, Tensor::zeros({3, 2}, DType::f32)), Error);
  CHECK_THROWS_AS(swiglu(a, Tensor::zeros({2, 3}, DType::f64)), Error);
  CHECK_THROWS_AS(swiglu(Tensor::zeros({2}, DType::i32), Tensor::zeros({2}, DType::i32)), Error);
}
