#include <cmath>

#include "op_test_util.h"
#include "ops/linear.h"
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

TEST_CASE("swiglu_projections: equals swiglu of two linear ops, forward and every gradient") {
  // The weights as adjacent views of one buffer (the stacked weight is then a view of it) and as
  // separate tensors (a copy).
  for (bool adjacent : {true, false}) {
    CAPTURE(adjacent);
    const Tensor h = random_tensor({2, 3, 4}, 1);
    const Tensor buffer = random_tensor({2 * 5 * 4}, 2, DType::f64, false);
    Tensor w1 = adjacent ? buffer.view(0, {5, 4}) : buffer.view(0, {5, 4}).clone();
    Tensor w3 = adjacent ? buffer.view(20, {5, 4}) : buffer.view(20, {5, 4}).clone();
    w1.set_requires_grad(true);
    w3.set_requires_grad(true);
    const Tensor g = random_tensor({2, 3, 5}, 3, DType::f64, false);
    const Tensor fused = swiglu_projections(h, w1, w3);
    backward(fused, g);

    const Tensor h2 = random_tensor({2, 3, 4}, 1);
    Tensor w1_2 = buffer.view(0, {5, 4}).clone(), w3_2 = buffer.view(20, {5, 4}).clone();
    w1_2.set_requires_grad(true);
    w3_2.set_requires_grad(true);
    const Tensor plain = swiglu(linear(h2, w1_2), linear(h2, w3_2));
    backward(plain, g);
    CHECK(max_abs_diff(fused.to_vector(), plain.to_vector()) < 1e-14);
    CHECK(max_abs_diff(h.grad().to_vector(), h2.grad().to_vector()) < 1e-14);
    CHECK(max_abs_diff(w1.grad().to_vector(), w1_2.grad().to_vector()) < 1e-14);
    CHECK(max_abs_diff(w3.grad().to_vector(), w3_2.grad().to_vector()) < 1e-14);
  }
}

TEST_CASE("swiglu_projections: weights that do not fit name their shapes") {
  const Tensor h = Tensor::zeros({2, 4}, DType::f32);
  CHECK_THROWS_WITH_AS(
      swiglu_projections(h, Tensor::zeros({3, 4}, DType::f32), Tensor::zeros({2, 4}, DType::f32)),
      doctest::Contains("swiglu_projections: h [2, 4], w1 [3, 4] and w3 [2, 4] (expected h "
                        "[..., in], w1 and w3 [width, in])"),
      Error);
  CHECK_THROWS_AS(
      swiglu_projections(h, Tensor::zeros({3, 5}, DType::f32), Tensor::zeros({3, 5}, DType::f32)),
      Error);
}
