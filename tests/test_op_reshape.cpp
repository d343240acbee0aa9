#include "op_test_util.h"
#include "ops/elementwise.h"
#include "ops/reshape.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("reshape keeps the data and passes the gradient back in the input's shape") {
  Tensor x = random_tensor({2, 3, 5}, 11);
  Tensor y = reshape(x, {6, 5});
  CHECK(y.shape() == Shape{6, 5});
  CHECK(y.at(17) == x.at(17));
  CHECK_THROWS_AS(reshape(x, {7, 5}), Error);
  Tensor w = random_tensor({6, 5}, 12, DType::f64, false);
  check_gradients([&](const auto& in) { return mul(reshape(in[0], {6, 5}), w); }, {x});
}
