#include <omp.h>

#include <cmath>

#include "op_test_util.h"
#include "ops/attention.h"

using namespace ssa;
using namespace ssa::test;

namespace {

struct Config {
  int64_t batch, q_len, k_len, heads, kv_heads, head_dim;
};

struct Inputs {
  Tensor q, k, v;
};

Inputs random_inputs(const Config& c, uint64_t seed, DType dtype = DType::f64,
                     bool requires_grad = true) {
  return {
      random_tensor({c.batch, c.q_len, c.heads, c.head_dim}, seed, dtype, requires_grad),
      random_tensor({c.batch, c.k_len, c.kv_heads, c.head_dim}, seed + 1, dtype, requires_grad),
      random_tensor({c.batch, c.k_len, c.kv_heads, c.head_dim}, seed + 2, dtype, requires_grad)};
}

// softmax(q kᵀ / sqrt(d)) v with query t at key position Tk − Tq + t, written out with loops.
std::vector<double> reference_attention(const Config& c, const Inputs& in) {
  const std::vector<double> q = in.q.to_vector(), k = in.k.to_vector(), v = in.v.to_vector();
  std::vector<double> out(q.size());
  auto q_at = [&](int64_t b, int64_t t, int64_t h) {
    return ((b * c.q_len + t) * c.heads + h) * c.head_dim;
  };
  auto kv_at = [&](int64_t b, int64_t t, int64_t h) {
    return ((b * c.k_len + t) * c.kv_heads + h) * c.head_dim;
  };
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.heads; ++h) {
      const int64_t kv = h / (c.heads / c.kv_heads);
      for (int64_t t = 0; t < c.q_len; ++t) {
        std::vector<double> weight(c.k_len, 0.0);
        double total = 0;
        for (int64_t s = 0; s <= c.k_len - c.q_len + t; ++s) {
          double dot = 0;
          for (int64_t j = 0; j < c.head_dim; ++j)
            dot += q[q_at(b, t, h) + j] * k[kv_at(b, s, kv) + j];
          weight[s] = std::exp(dot / std::sqrt(static_cast<double>(c.head_dim)));
          total += weight[s];
        }
        for (int64_t j = 0; j < c.head_dim; ++j) {
          double sum = 0;
          for (int64_t s = 0; s < c.k_len; ++s) sum += weight[s] / total * v[kv_at(b, s, kv) + j];
          out[q_at(b, t, h) + j] = sum;
        }
      }
    }
  }
  return out;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// Σ_x grad(x)·u_x against the central difference of Σ out·w along random directions u: a
// gradient check that stays cheap for sizes too large for the element-wise gradcheck.
void check_directional_derivative(const Config& c, const Inputs& in, uint64_t seed) {
  const Tensor weights = random_tensor(in.q.shape(), seed, DType::f64, false);
  const std::vector<double> w = weights.to_vector();
  backward(attention(in.q, in.k, in.v), weights);
  const Inputs u = random_inputs(c, seed + 1, DType::f64, false);
  double analytic = 0;
  for (auto [x, dx] : {std::pair{in.q, u.q}, std::pair{in.k, u.k}, std::pair{in.v, u.v}})
    analytic += dot(x.grad().to_vector(), dx.to_vector());
  const double eps = 1e-6;
  auto shifted_loss = [&](double step) {
    Inputs moved = in;
    for (auto [x, dx] :
         {std::pair{&moved.q, u.q}, std::pair{&moved.k, u.k}, std::pair{&moved.v, u.v}}) {
      std::vector<double> values = x->to_vector(), direction = dx.to_vector();
      for (size_t i = 0; i < values.size(); ++i) values[i] += step * direction[i];
      *x = Tensor::from(values, x->shape(), DType::f64);
    }
    return dot(attention(moved.q, moved.k, moved.v).to_vector(), w);
  };
  const double numeric = (shifted_loss(eps) - shifted_loss(-eps)) / (2 * eps);
  CHECK(analytic == doctest::Approx(numeric).epsilon(1e-6));
}

}  // namespace

TEST_CASE("attention: forward matches an explicit causal softmax") {
  for (Config c :
       {Config{2, 5, 5, 4, 4, 3}, Config{1, 3, 7, 4, 2, 5}, Config{2, 1, 6, 4, 1, 6},
        Config{1, 1, 1, 2, 2, 4}, Config{1, 70, 75, 4, 2, 5}, Config{2, 150, 150, 2, 1, 8}}) {
    CAPTURE(c.q_len);
    CAPTURE(c.k_len);
    CAPTURE(c.heads);
    CAPTURE(c.kv_heads);
    const Inputs in = random_inputs(c, 71, DType::f64, false);
    const std::vector<double> expected = reference_attention(c, in);
    const Tensor out = attention(in.q, in.k, in.v);
    REQUIRE(out.shape() == in.q.shape());
    CHECK(max_abs_diff(out.to_vector(), expected) < 1e-12);
    const Tensor out32 = attention(in.q.to(DType::f32), in.k.to(DType::f32), in.v.to(DType::f32));
    CHECK(max_abs_diff(out32.to_vector(), expected) < 1e-5);
  }
}

TEST_CASE("attention: the first query sees only the first key; one key gives v") {
  const Config c{1, 4, 4, 2, 1, 3};
  const Inputs in = random_inputs(c, 81, DType::f64, false);
  const std::vector<double> out = attention(in.q, in.k, in.v).to_vector(), v = in.v.to_vector();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t j = 0; j < 3; ++j) CHECK(out[h * 3 + j] == doctest::Approx(v[j]).epsilon(1e-15));
}

TEST_CASE("attention: gradients over several row blocks (directional check)") {
  for (Config c : {Config{1, 70, 75, 4, 2, 5}, Config{2, 130, 130, 4, 1, 7}}) {
    CAPTURE(c.q_len);
    check_directional_derivative(c, random_inputs(c, 101), 111);
  }
}

TEST_CASE("attention: forward and backward are bit-identical for any thread count") {
  const int previous = omp_get_max_threads();
  const Config c{3, 140, 140, 4, 2, 16};
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    const Inputs in = random_inputs(c, 121, DType::f32, true);
    const Tensor out = attention(in.q, in.k, in.v);
    const std::vector<double> values = out.to_vector();
    backward(out, random_tensor(out.shape(), 124, DType::f32, false));
    return std::vector{values, in.q.grad().to_vector(), in.k.grad().to_vector(),
                       in.v.grad().to_vector()};
  };
  const auto one_thread = run(1);
  const auto three_threads = run(3);
  CHECK(omp_get_max_threads() == 3);  // the single-thread setting inside the op does not leak
  omp_set_num_threads(previous);
  CHECK(one_thread == three_threads);
}

TEST_CASE("attention: errors") {
  auto zeros = [](Shape s, DType dtype = DType::f32) { return Tensor::zeros(s, dtype); };
  const Tensor q = zeros({1, 3, 4, 8}), kv = zeros({1, 3, 2, 8});
  CHECK_NOTHROW(attention(q, kv, kv));
  CHECK_THROWS_AS(attention(q, zeros({1, 3, 3, 8}), zeros({1, 3, 3, 8})), Error);  // 3 ∤ 4
  CHECK_THROWS_AS(attention(q, zeros({1, 2, 2, 8}), zeros({1, 2, 2, 8})), Error);  // Tq > Tk
  CHECK_THROWS_AS(attention(q, zeros({1, 3, 2, 4}), zeros({1, 3, 2, 4})), Error);  // head_dim
  CHECK_THROWS_AS(attention(q, zeros({2, 3, 2, 8}), zeros({2, 3, 2, 8})), Error);  // batch
  CHECK_THROWS_AS(attention(q, kv, zeros({1, 4, 2, 8})), Error);                   // k ≠ v
  CHECK_THROWS_AS(attention(q, kv, zeros({1, 3, 2, 8}, DType::f64)), Error);       // dtype
  CHECK_THROWS_AS(attention(zeros({3, 4, 8}), kv, kv), Error);                     // rank
}
