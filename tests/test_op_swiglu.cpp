#include <cmath>

#include "core/allocator.h"
#include "op_checks.h"
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

TEST_CASE("swiglu_linear: the bits of linear(swiglu(a, b), w), values and gradients") {
  for (DType dtype : {DType::f64, DType::f32}) {
    CAPTURE(dtype_name(dtype));
    check_swiglu_linear_bits(Device::cpu, dtype, 7, 4);
    check_swiglu_linear_bits(Device::cpu, dtype, 200, 96);  // threaded products and elements
  }
}

TEST_CASE("swiglu_linear: errors name the op") {
  const Tensor a = Tensor::zeros({2, 3}, DType::f32);
  CHECK_THROWS_WITH_AS(
      swiglu_linear(a, Tensor::zeros({3, 2}, DType::f32), Tensor::zeros({4, 3}, DType::f32)),
      doctest::Contains("swiglu_linear: gate [2, 3] and up [3, 2] shapes differ"), Error);
  CHECK_THROWS_WITH_AS(swiglu_linear(a, a, Tensor::zeros({4, 2}, DType::f32)),
                       doctest::Contains("linear: x [2, 3] does not fit w [4, 2]"), Error);
}

TEST_CASE("swiglu_linear keeps only its inputs for backward, not silu(a) · b") {
  const Shape rows{4, 6, 32};
  const Tensor a = random_tensor(rows, 1, DType::f32), b = random_tensor(rows, 2, DType::f32);
  const Tensor w = random_tensor({8, 32}, 3, DType::f32);
  const size_t product_bytes = a.nbytes(), output_bytes = 4 * 6 * 8 * sizeof(float);
  const size_t before = host_memory_stats().allocated;
  {
    const Tensor y = swiglu_linear(a, b, w);
    CHECK(host_memory_stats().allocated - before == output_bytes);
  }
  const Tensor y = linear(swiglu(a, b), w);
  CHECK(host_memory_stats().allocated - before == output_bytes + product_bytes);
}
