#include <omp.h>

#include <cmath>

#include "op_test_util.h"
#include "ops/smooth_l1.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("smooth_l1: hand values on both sides of beta") {
  // d = a − b = {0.5, −2, 2, −0.25}
  const std::vector<double> a{0.5, -2, 3, 0}, b{0, 0, 1, 0.25};
  for (DType dtype : {DType::f64, DType::f32}) {
    Tensor ta = Tensor::from(a, {4}, dtype), tb = Tensor::from(b, {4}, dtype);
    // beta 1: ½d² inside (0.125, 0.03125), |d| − ½ outside (1.5, 1.5)
    CHECK(smooth_l1(ta, tb, 1.0).item() == doctest::Approx(3.15625 / 4));
    // beta 4: all inside, ½d²/4
    CHECK(smooth_l1(ta, tb, 4.0).item() == doctest::Approx(1.0390625 / 4));
    // beta 0: plain L1
    CHECK(smooth_l1(ta, tb, 0.0).item() == doctest::Approx(4.75 / 4));
  }
}

TEST_CASE("smooth_l1: gradients are slope / n for a and the negative for b") {
  Tensor a = Tensor::from({0.5, -2, 3, 0}, {4}, DType::f64).set_requires_grad(true);
  Tensor b = Tensor::from({0, 0, 1, 0.25}, {4}, DType::f64).set_requires_grad(true);
  backward(smooth_l1(a, b, 1.0));
  CHECK(a.grad().to_vector() == std::vector<double>{0.125, -0.25, 0.25, -0.0625});
  CHECK(b.grad().to_vector() == std::vector<double>{-0.125, 0.25, -0.25, 0.0625});
}

TEST_CASE("smooth_l1: large sums match a plain sum and do not depend on the thread count") {
  const int previous = omp_get_max_threads();
  Tensor a = random_tensor({100003}, 63, DType::f32, false, 3.0);
  Tensor b = random_tensor({100003}, 64, DType::f32, false, 3.0);
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  double plain = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = std::abs(x[i] - y[i]);
    plain += d < 1 ? 0.5 * d * d : d - 0.5;
  }
  omp_set_num_threads(1);
  const double one_thread = smooth_l1(a, b, 1.0).item();
  omp_set_num_threads(3);
  const double three_threads = smooth_l1(a, b, 1.0).item();
  omp_set_num_threads(previous);
  CHECK(one_thread == three_threads);
  CHECK(one_thread == doctest::Approx(plain / 100003).epsilon(1e-7));
}

TEST_CASE("smooth_l1: errors") {
  Tensor a = Tensor::zeros({3}, DType::f32);
  CHECK_THROWS_AS(smooth_l1(a, Tensor::zeros({4}, DType::f32), 1.0), Error);
  CHECK_THROWS_AS(smooth_l1(a, Tensor::zeros({3}, DType::f64), 1.0), Error);
  CHECK_THROWS_AS(smooth_l1(a, a, -1.0), Error);
  CHECK_THROWS_AS(smooth_l1(Tensor::zeros({0}, DType::f32), Tensor::zeros({0}, DType::f32), 1.0),
                  Error);
}
