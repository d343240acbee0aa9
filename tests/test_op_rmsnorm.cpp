#include <cmath>

#include "op_test_util.h"
#include "ops/elementwise.h"
#include "ops/rmsnorm.h"

using namespace ssa;
using namespace ssa::test;

namespace {

struct Reference {
  std::vector<double> y, dx, dw;
};

// The formula and its derivative written out per element: r = (mean(x²) + eps)^(−1/2),
// y = x·r·w, dx_j = Σ_i g_i w_i ∂(x_i r)/∂x_j, where ∂(x_i r)/∂x_j = r[i = j] − x_i x_j r³ / D.
Reference naive_rmsnorm(const Tensor& x, const Tensor& w, const Tensor& g, double eps) {
  const int64_t dim = w.numel(), rows = x.numel() / dim;
  std::vector<double> xv = x.to_vector(), wv = w.to_vector(), gv = g.to_vector();
  Reference ref{std::vector<double>(xv.size()), std::vector<double>(xv.size()),
                std::vector<double>(dim, 0.0)};
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = &xv[r * dim];
    const double* gr = &gv[r * dim];
    double mean_square = 0;
    for (int64_t j = 0; j < dim; ++j) mean_square += xr[j] * xr[j] / dim;
    const double rs = 1 / std::sqrt(mean_square + eps);
    for (int64_t j = 0; j < dim; ++j) {
      ref.y[r * dim + j] = xr[j] * rs * wv[j];
      ref.dw[j] += gr[j] * xr[j] * rs;
      for (int64_t i = 0; i < dim; ++i)
        ref.dx[r * dim + j] += gr[i] * wv[i] * ((i == j) * rs - xr[i] * xr[j] * rs * rs * rs / dim);
    }
  }
  return ref;
}

}  // namespace

TEST_CASE("rmsnorm: forward and backward equal the formula, small and multi-threaded sizes") {
  // [257, 130] is past the threading threshold and leaves a ragged block of dw columns.
  for (Shape shape : {Shape{2, 3, 5}, Shape{257, 130}}) {
    CAPTURE(shape.str());
    Tensor x = random_tensor(shape, 1), w = random_tensor({shape.back()}, 2);
    Tensor g = random_tensor(shape, 3, DType::f64, false);
    Reference ref = naive_rmsnorm(x, w, g, 1e-5);
    Tensor y = rmsnorm(x, w, 1e-5);
    CHECK(max_abs_diff(y.to_vector(), ref.y) < 1e-12);
    backward(y, g);
    CHECK(max_abs_diff(x.grad().to_vector(), ref.dx) < 1e-10);
    CHECK(max_abs_diff(w.grad().to_vector(), ref.dw) < 1e-10);

    Tensor y32 = rmsnorm(x.to(DType::f32), w.to(DType::f32), 1e-5);
    CHECK(y32.dtype() == DType::f32);
    CHECK(max_abs_diff(y32.to_vector(), ref.y) < 1e-5);
  }
}

TEST_CASE("rmsnorm: a gradient only for inputs that require it") {
  Tensor x = random_tensor({3, 4}, 1, DType::f64, false), w = random_tensor({4}, 2);
  backward(rmsnorm(x, w, 1e-5), random_tensor({3, 4}, 3, DType::f64, false));
  CHECK(w.grad().defined());
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("rmsnorm: errors") {
  Tensor x = random_tensor({2, 5}, 1, DType::f32, false);
  CHECK_THROWS_AS(rmsnorm(x, random_tensor({4}, 2, DType::f32, false), 1e-5), Error);
  CHECK_THROWS_AS(rmsnorm(x, random_tensor({1, 5}, 2, DType::f32, false), 1e-5), Error);
  CHECK_THROWS_AS(rmsnorm(x, random_tensor({5}, 2, DType::f64, false), 1e-5), Error);
  CHECK_THROWS_AS(rmsnorm(x, random_tensor({5}, 2, DType::f32, false), -1), Error);
}

TEST_CASE("add_rmsnorm: equals add then rmsnorm, forward and every gradient") {
  Tensor x = random_tensor({3, 2, 7}, 1), r = random_tensor({3, 2, 7}, 2);
  Tensor w = random_tensor({7}, 3);
  Tensor g_sum = random_tensor({3, 2, 7}, 4, DType::f64, false);
  Tensor g_normed = random_tensor({3, 2, 7}, 5, DType::f64, false);
  const NormedSum fused = add_rmsnorm(x, r, w, 1e-5);
  backward(add(sum(mul(fused.sum, g_sum)), sum(mul(fused.normed, g_normed))));
  const std::vector<double> dx = x.grad().to_vector(), dr = r.grad().to_vector(),
                            dw = w.grad().to_vector();

  Tensor x2 = random_tensor({3, 2, 7}, 1), r2 = random_tensor({3, 2, 7}, 2);
  Tensor w2 = random_tensor({7}, 3);
  const Tensor s = add(x2, r2), y = rmsnorm(s, w2, 1e-5);
  CHECK(max_abs_diff(fused.sum.to_vector(), s.to_vector()) == 0);
  CHECK(max_abs_diff(fused.normed.to_vector(), y.to_vector()) == 0);
  backward(add(sum(mul(s, g_sum)), sum(mul(y, g_normed))));
  CHECK(max_abs_diff(dx, x2.grad().to_vector()) < 1e-12);
  CHECK(max_abs_diff(dr, r2.grad().to_vector()) < 1e-12);
  CHECK(max_abs_diff(dw, w2.grad().to_vector()) < 1e-12);
}

TEST_CASE("add_rmsnorm: the sum alone gives x and residual its gradient and the weight none") {
  Tensor x = random_tensor({2, 4}, 1), r = random_tensor({2, 4}, 2), w = random_tensor({4}, 3);
  backward(sum(add_rmsnorm(x, r, w, 1e-5).sum));
  CHECK(max_abs_diff(x.grad().to_vector(), std::vector<double>(8, 1.0)) == 0);
  CHECK(max_abs_diff(r.grad().to_vector(), std::vector<double>(8, 1.0)) == 0);
  CHECK_FALSE(w.grad().defined());
}

TEST_CASE("add_rmsnorm: errors name the shapes") {
  Tensor x = random_tensor({2, 5}, 1, DType::f32, false),
         w = random_tensor({5}, 2, DType::f32, false);
  CHECK_THROWS_WITH_AS(add_rmsnorm(x, random_tensor({5, 2}, 3, DType::f32, false), w, 1e-5),
                       doctest::Contains("residual [5, 2] for x [2, 5]"), Error);
  CHECK_THROWS_AS(add_rmsnorm(x, random_tensor({2, 5}, 3, DType::f64, false), w, 1e-5), Error);
  CHECK_THROWS_AS(add_rmsnorm(x, x, random_tensor({4}, 2, DType::f32, false), 1e-5), Error);
}
