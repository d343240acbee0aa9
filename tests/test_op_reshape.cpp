#include "op_test_util.h"
#include "ops/reshape.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("reshape keeps the data; another element count is an error (gradient: the op table)") {
  Tensor x = random_tensor({2, 3, 5}, 11);
  Tensor y = reshape(x, {6, 5});
  CHECK(y.shape() == Shape{6, 5});
  CHECK(y.at(17) == x.at(17));
  CHECK_THROWS_AS(reshape(x, {7, 5}), Error);
}
