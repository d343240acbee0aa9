#include "op_test_util.h"
#include "ops/elementwise.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("add, mul, scale: forward values") {
  Tensor a = Tensor::from({1, 2, 3}, {3}, DType::f32);
  Tensor b = Tensor::from({4, -5, 0.5}, {3}, DType::f32);
  CHECK(add(a, b).to_vector() == std::vector<double>{5, -3, 3.5});
  CHECK(mul(a, b).to_vector() == std::vector<double>{4, -10, 1.5});
  CHECK(scale(a, -2).to_vector() == std::vector<double>{-2, -4, -6});
  CHECK(sum(a).item() == 6.0);
  CHECK(mean(b).item() == doctest::Approx(-0.5 / 3));
  CHECK_THROWS_AS(add(a, Tensor::zeros({4}, DType::f32)), Error);
}
