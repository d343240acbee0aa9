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

TEST_CASE("gradcheck: add, mul, scale, sum, mean on awkward shapes") {
  for (Shape shape : {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 3, 7}}) {
    Tensor a = random_tensor(shape, 1), b = random_tensor(shape, 2);
    check_gradients([](const auto& x) { return add(x[0], x[1]); }, {a, b});
    check_gradients([](const auto& x) { return mul(x[0], x[1]); }, {a, b});
    check_gradients([](const auto& x) { return mul(x[0], x[0]); }, {a});
    check_gradients([](const auto& x) { return scale(x[0], 0.37); }, {a});
    check_gradients([](const auto& x) { return sum(mul(x[0], x[1])); }, {a, b});
    check_gradients([](const auto& x) { return mean(x[0]); }, {a});
  }
}
