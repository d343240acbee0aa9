// bf16 products on CUDA: a shape's first product (where cuda/runtime/blas.cu times the
// candidate algorithms and keeps one) and every later one give the same bits, written or added
// into c, and the result is the product.
#include <doctest/doctest.h>

#include "op_test_util.h"
#include "ops/linear.h"

using namespace ssa;
using namespace ssa::test;

namespace {

Tensor on_gpu(const Shape& shape, uint64_t seed, DType dtype) {
  return random_tensor(shape, seed, DType::f32, false).to(Device::cuda).to(dtype);
}

std::vector<double> values(const Tensor& t) { return t.to(Device::cpu).to(DType::f64).to_vector(); }

struct ProductCase {
  const char* what;
  int64_t m, n, k;
  bool transpose_a, transpose_b, add;
  DType c_dtype;
};

}  // namespace

TEST_CASE("gpu: a bf16 product has the same bits on its first call and after, written or added") {
  // The three products of a linear layer's step, at shapes no other test uses (each one's first
  // call here chooses its algorithm).
  for (const ProductCase& c :
       {ProductCase{"forward x·wᵀ", 384, 640, 256, false, true, false, DType::bf16},
        ProductCase{"dx = dy·w, added", 384, 256, 640, false, false, true, DType::bf16},
        ProductCase{"dw = dyᵀ·x into f32", 640, 256, 384, true, false, false, DType::f32}}) {
    CAPTURE(c.what);
    const Tensor a = on_gpu(c.transpose_a ? Shape{c.k, c.m} : Shape{c.m, c.k}, 21, DType::bf16);
    const Tensor b = on_gpu(c.transpose_b ? Shape{c.n, c.k} : Shape{c.k, c.n}, 22, DType::bf16);
    const Tensor start = on_gpu({c.m, c.n}, 23, c.c_dtype);
    std::vector<double> got[2];
    for (std::vector<double>& result : got) {
      const Tensor out = start.clone();
      matrix_product_into(out, a, b, c.transpose_a, c.transpose_b, c.add);
      result = values(out);
    }
    CHECK(got[0] == got[1]);

    const Tensor a64 = a.to(Device::cpu).to(DType::f64), b64 = b.to(Device::cpu).to(DType::f64);
    std::vector<double> want = values(matrix_product(a64, b64, c.transpose_a, c.transpose_b));
    if (c.add) {
      const std::vector<double> before = values(start);
      for (size_t i = 0; i < want.size(); ++i) want[i] += before[i];
    }
    CHECK(relative_error(got[0], want) < 1e-2);  // c rounded once to its dtype
  }
}
