#include <omp.h>

#include "op_test_util.h"
#include "ops/elementwise.h"
#include "ops/linear.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// op(a)[i, p] of a row-major [rows, cols] matrix stored at `a`.
double entry(const std::vector<double>& a, int64_t cols, bool transposed, int64_t i, int64_t p,
             int64_t offset) {
  return transposed ? a[offset + p * cols + i] : a[offset + i * cols + p];
}

// c = op(a)·op(b) by the textbook triple loop, batched over dim 0 when the inputs are 3-D.
std::vector<double> naive_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t batch = a.rank() == 3 ? a.dim(0) : 1;
  const int64_t m = ta ? a.dim(-1) : a.dim(-2), k = ta ? a.dim(-2) : a.dim(-1);
  const int64_t n = tb ? b.dim(-2) : b.dim(-1);
  std::vector<double> av = a.to_vector(), bv = b.to_vector(), c(batch * m * n, 0.0);
  for (int64_t s = 0; s < batch; ++s)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < k; ++p)
          c[(s * m + i) * n + j] +=
              entry(av, a.dim(-1), ta, i, p, s * m * k) * entry(bv, b.dim(-1), tb, p, j, s * k * n);
  return c;
}

}  // namespace

TEST_CASE("linear: forward equals the triple loop, leading dims flattened") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const double tolerance = dtype == DType::f64 ? 1e-12 : 1e-4;
    for (auto [x_shape, w_shape] :
         {std::pair{Shape{2, 3, 5}, Shape{7, 5}}, std::pair{Shape{4}, Shape{3, 4}},
          std::pair{Shape{130, 67}, Shape{70, 67}}}) {
      Tensor x = random_tensor(x_shape, 1, dtype, false),
             w = random_tensor(w_shape, 2, dtype, false);
      Tensor y = linear(x, w);
      Shape expected = x_shape;
      expected.dims[expected.rank - 1] = w_shape[0];
      REQUIRE(y.shape() == expected);
      Tensor x2 = x.reshape({x.numel() / x_shape.back(), x_shape.back()});
      CHECK(max_abs_diff(y.to_vector(), naive_matmul(x2, w, false, true)) < tolerance);
    }
  }
}

TEST_CASE("matmul: forward equals the triple loop for every transpose, 2-D and batched") {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      const int64_t m = 70, k = 9, n = 131;  // several 64-wide tiles, ragged edges
      Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, 3, DType::f64, false);
      Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, 4, DType::f64, false);
      Tensor c = matmul(a, b, ta, tb);
      REQUIRE(c.shape() == Shape{m, n});
      CHECK(max_abs_diff(c.to_vector(), naive_matmul(a, b, ta, tb)) < 1e-12);

      // Enough matrices for the 128-wide tile grid; 130 rows leave a ragged edge.
      Tensor a_many =
          random_tensor(ta ? Shape{32, 7, 130} : Shape{32, 130, 7}, 7, DType::f64, false);
      Tensor b_many = random_tensor(tb ? Shape{32, 5, 7} : Shape{32, 7, 5}, 8, DType::f64, false);
      CHECK(max_abs_diff(matmul(a_many, b_many, ta, tb).to_vector(),
                         naive_matmul(a_many, b_many, ta, tb)) < 1e-12);

      Tensor a3 = random_tensor(ta ? Shape{3, 5, 2} : Shape{3, 2, 5}, 5, DType::f32, false);
      Tensor b3 = random_tensor(tb ? Shape{3, 1, 5} : Shape{3, 5, 1}, 6, DType::f32, false);
      Tensor c3 = matmul(a3, b3, ta, tb);
      REQUIRE(c3.shape() == Shape{3, 2, 1});
      CHECK(max_abs_diff(c3.to_vector(), naive_matmul(a3, b3, ta, tb)) < 1e-5);
    }
  }
}

TEST_CASE("matmul: results are bit-identical for any thread count") {
  const int previous = omp_get_max_threads();
  // k beyond Eigen's k-blocking, so a thread-count-dependent blocking would show; the second
  // pair has enough matrices for the large tile grid.
  for (auto [a_shape, b_shape] : {std::pair{Shape{150, 700}, Shape{700, 190}},
                                  std::pair{Shape{40, 130, 300}, Shape{40, 300, 20}}}) {
    CAPTURE(a_shape.str());
    Tensor a = random_tensor(a_shape, 7, DType::f32, false);
    Tensor b = random_tensor(b_shape, 8, DType::f32, false);
    omp_set_num_threads(1);
    std::vector<double> one_thread = matmul(a, b).to_vector();
    omp_set_num_threads(4);
    std::vector<double> four_threads = matmul(a, b).to_vector();
    matmul(random_tensor({3, 2}, 9, DType::f32, false),
           random_tensor({2, 3}, 10, DType::f32, false));
    CHECK(omp_get_max_threads() == 4);  // neither a threaded nor a small product changes it
    CHECK(one_thread == four_threads);
  }
  omp_set_num_threads(previous);
}

TEST_CASE("linear and matmul: a gradient only for inputs that require it") {
  Tensor x = random_tensor({3, 4}, 1), w = random_tensor({2, 4}, 2, DType::f64, false);
  backward(sum(linear(x, w)));
  CHECK(x.grad().defined());
  CHECK_FALSE(w.grad().defined());

  Tensor a = random_tensor({3, 4}, 3, DType::f64, false), b = random_tensor({4, 2}, 4);
  backward(sum(matmul(a, b)));
  CHECK_FALSE(a.grad().defined());
  // d sum(a·b)/db[p, j] = Σ_i a[i, p]
  for (int64_t p = 0; p < 4; ++p) {
    double column_sum = 0;
    for (int64_t i = 0; i < 3; ++i) column_sum += a.at(i * 4 + p);
    CHECK(b.grad().at(p * 2) == doctest::Approx(column_sum));
    CHECK(b.grad().at(p * 2 + 1) == doctest::Approx(column_sum));
  }
}

TEST_CASE("linear: two products of one activation sum their input gradients") {
  // loss = Σ (h·w1ᵀ + h·w3ᵀ) with h = x ⊙ x: dh[r, j] = Σ_o w1[o, j] + w3[o, j], dx = 2x ⊙ dh.
  // The second product's backward adds its dh into the first's (pending_gradient).
  Tensor x = random_tensor({3, 4}, 5), w1 = random_tensor({2, 4}, 6), w3 = random_tensor({5, 4}, 7);
  const Tensor h = mul(x, x);
  backward(add(sum(linear(h, w1)), sum(linear(h, w3))));
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t j = 0; j < 4; ++j) {
      double dh = 0;
      for (int64_t o = 0; o < 2; ++o) dh += w1.at(o * 4 + j);
      for (int64_t o = 0; o < 5; ++o) dh += w3.at(o * 4 + j);
      CHECK(x.grad().at(r * 4 + j) == doctest::Approx(2 * x.at(r * 4 + j) * dh).epsilon(1e-12));
    }
}

TEST_CASE("linear and matmul: shape and dtype errors") {
  Tensor x = random_tensor({2, 5}, 1, DType::f64, false);
  CHECK_THROWS_AS(linear(x, random_tensor({3, 4}, 2, DType::f64, false)), Error);
  CHECK_THROWS_AS(linear(x, random_tensor({5}, 2, DType::f64, false)), Error);
  CHECK_THROWS_AS(linear(x, random_tensor({3, 5}, 2, DType::f32, false)), Error);
  CHECK_THROWS_AS(matmul(x, random_tensor({4, 3}, 2, DType::f64, false)), Error);
  CHECK_THROWS_AS(matmul(x, random_tensor({2, 3}, 2, DType::f64, false), false, true), Error);
  CHECK_THROWS_AS(matmul(x, random_tensor({2, 5, 3}, 2, DType::f64, false)), Error);
  CHECK_THROWS_AS(matmul(random_tensor({2, 2, 5}, 3, DType::f64, false),
                         random_tensor({3, 5, 4}, 4, DType::f64, false)),
                  Error);
  CHECK_NOTHROW(matmul(x, random_tensor({3, 5}, 2, DType::f64, false), false, true));
}
