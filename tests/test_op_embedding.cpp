#include "op_test_util.h"
#include "ops/embedding.h"

using namespace ssa;
using namespace ssa::test;

namespace {

Tensor ids_of(const std::vector<double>& values, const Shape& shape) {
  return Tensor::from(values, shape, DType::i32);
}

}  // namespace

TEST_CASE("embedding: each output row is the table row of its id") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor table = random_tensor({6, 3}, 1, dtype, false);
    Tensor ids = ids_of({5, 0, 5, 2, 1, 5}, {2, 3});
    Tensor out = embedding(ids, table);
    REQUIRE(out.shape() == Shape{2, 3, 3});
    for (int64_t t = 0; t < ids.numel(); ++t)
      for (int64_t j = 0; j < 3; ++j)
        CHECK(out.at(t * 3 + j) == table.at(static_cast<int64_t>(ids.at(t)) * 3 + j));
  }
}

TEST_CASE("embedding: backward sums repeated ids and leaves unused rows zero") {
  Tensor table = random_tensor({4, 2}, 1);
  Tensor ids = ids_of({3, 1, 3}, {3});
  Tensor grad_out = Tensor::from({1, 2, 10, 20, 100, 200}, {3, 2}, DType::f64);
  backward(embedding(ids, table), grad_out);
  CHECK(table.grad().to_vector() == std::vector<double>{0, 0, 10, 20, 0, 0, 101, 202});
}

TEST_CASE("embedding: errors") {
  Tensor table = random_tensor({5, 3}, 1, DType::f32, false);
  CHECK_THROWS_WITH_AS(embedding(ids_of({0, 1, 2, 5}, {2, 2}), table),
                       doctest::Contains("id 5 at position 3 of ids [2, 2] is outside the "
                                         "vocabulary [0, 5)"),
                       Error);
  CHECK_THROWS_WITH_AS(embedding(ids_of({-1}, {1}), table),
                       doctest::Contains("id -1 at position 0"), Error);
  CHECK_THROWS_AS(embedding(Tensor::from({0, 1}, {2}, DType::f32), table), Error);
  CHECK_THROWS_AS(embedding(ids_of({0}, {1}), random_tensor({5}, 2, DType::f32, false)), Error);
}
