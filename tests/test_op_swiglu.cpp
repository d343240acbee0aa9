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

TEST_CASE("gradcheck: swiglu on awkward shapes") {
  for (Shape shape : {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 3, 11}}) {
    Tensor a = random_tensor(shape, 41, DType::f64, true, 4.0), b = random_tensor(shape, 42);
    check_gradients([](const auto& x) { return swiglu(x[0], x[1]); }, {a, b});
    check_gradients([](const auto& x) { return swiglu(x[0], x[0]); }, {a});
  }
}

TEST_CASE("swiglu: errors") {
  Tensor a = Tensor::zeros({2, 3}, DType::f32);
  CHECK_THROWS_AS(swiglu(a, Tensor::zeros({3, 2}, DType::f32)), Error);
  CHECK_THROWS_AS(swiglu(a, Tensor::zeros({2, 3}, DType::f64)), Error);
  CHECK_THROWS_AS(swiglu(Tensor::zeros({2}, DType::i32), Tensor::zeros({2}, DType::i32)), Error);
}
