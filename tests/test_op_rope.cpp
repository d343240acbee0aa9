#include <cmath>

#include "op_test_util.h"
#include "ops/rope.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// rope written from the header's formula, angles computed here, x [B, T, H, hd] in f64.
std::vector<double> rope_formula(const Tensor& x, double theta, int64_t offset) {
  const int64_t seq = x.dim(1), heads = x.dim(2), hd = x.dim(3), half = hd / 2;
  std::vector<double> in = x.to_vector(), out(in.size());
  for (int64_t row = 0; row < x.numel() / hd; ++row) {
    const double position = static_cast<double>(offset + (row / heads) % seq);
    for (int64_t i = 0; i < half; ++i) {
      const double angle = position / std::pow(theta, 2.0 * i / hd);
      const double a = in[row * hd + i], b = in[row * hd + i + half];
      out[row * hd + i] = a * std::cos(angle) - b * std::sin(angle);
      out[row * hd + i + half] = b * std::cos(angle) + a * std::sin(angle);
    }
  }
  return out;
}

// q·k with q roped at position m and k at position n (one head, one token each).
double roped_dot(const Tensor& q, const Tensor& k, const RopeTable& table, int64_t m, int64_t n) {
  std::vector<double> a = rope(q, table, m).to_vector(), b = rope(k, table, n).to_vector();
  double dot = 0;
  for (size_t i = 0; i < a.size(); ++i) dot += a[i] * b[i];
  return dot;
}

}  // namespace

TEST_CASE("rope_table: cos and sin of p · theta^(-2i/hd)") {
  RopeTable table = rope_table(9, 6, 500000.0, DType::f64);
  REQUIRE(table.cos.shape() == Shape{9, 3});
  REQUIRE(table.max_positions() == 9);
  for (int64_t p : {0, 1, 8}) {
    for (int64_t i = 0; i < 3; ++i) {
      const double angle = static_cast<double>(p) * std::pow(500000.0, -2.0 * i / 6.0);
      CHECK(table.cos.at(p * 3 + i) == doctest::Approx(std::cos(angle)).epsilon(1e-15));
      CHECK(table.sin.at(p * 3 + i) == doctest::Approx(std::sin(angle)).epsilon(1e-15));
    }
  }
  RopeTable single = rope_table(9, 6, 500000.0, DType::f32);
  CHECK(single.cos.dtype() == DType::f32);
  CHECK(max_abs_diff(single.sin.to_vector(), table.sin.to_vector()) < 1e-7);
}

TEST_CASE("rope: forward matches the formula, f64 and f32, with position offsets") {
  const double theta = 10000.0;
  RopeTable table64 = rope_table(16, 6, theta, DType::f64);
  RopeTable table32 = rope_table(16, 6, theta, DType::f32);
  for (int64_t offset : {0, 3, 10}) {
    CAPTURE(offset);
    Tensor x = random_tensor({2, 5, 3, 6}, 11 + offset, DType::f64, false);
    const std::vector<double> expected = rope_formula(x, theta, offset);
    CHECK(max_abs_diff(rope(x, table64, offset).to_vector(), expected) < 1e-12);
    CHECK(max_abs_diff(rope(x.to(DType::f32), table32, offset).to_vector(), expected) < 1e-6);
  }
}

TEST_CASE("rope: each rotated pair keeps its norm") {
  RopeTable table = rope_table(8, 10, 500000.0, DType::f64);
  Tensor x = random_tensor({1, 7, 2, 10}, 5, DType::f64, false);
  std::vector<double> in = x.to_vector(), out = rope(x, table, 1).to_vector();
  CHECK(max_abs_diff(in, out) > 0.01);  // it did rotate
  for (size_t row = 0; row < in.size() / 10; ++row) {
    for (size_t i = 0; i < 5; ++i) {
      const size_t a = row * 10 + i, b = a + 5;
      CHECK(std::hypot(out[a], out[b]) == doctest::Approx(std::hypot(in[a], in[b])).epsilon(1e-13));
    }
  }
}

TEST_CASE("rope: q·k depends only on the position difference") {
  RopeTable table = rope_table(64, 8, 10000.0, DType::f64);
  Tensor q = random_tensor({1, 1, 1, 8}, 21, DType::f64, false);
  Tensor k = random_tensor({1, 1, 1, 8}, 22, DType::f64, false);
  const double at_distance_2 = roped_dot(q, k, table, 5, 3);
  CHECK(roped_dot(q, k, table, 2, 0) == doctest::Approx(at_distance_2).epsilon(1e-12));
  CHECK(roped_dot(q, k, table, 63, 61) == doctest::Approx(at_distance_2).epsilon(1e-12));
  CHECK(std::abs(roped_dot(q, k, table, 5, 4) - at_distance_2) > 1e-3);
}

TEST_CASE("rope: errors") {
  CHECK_THROWS_AS(rope_table(8, 5, 10000.0, DType::f32), Error);
  CHECK_THROWS_AS(rope_table(8, 4, 0.0, DType::f32), Error);
  RopeTable table = rope_table(8, 4, 10000.0, DType::f32);
  Tensor x = Tensor::zeros({1, 3, 2, 4}, DType::f32);
  CHECK_THROWS_WITH_AS(rope(x, table, 6), doctest::Contains("position 8"), Error);
  CHECK_THROWS_WITH_AS(rope(x, table, 6), doctest::Contains("8 positions"), Error);
  CHECK_NOTHROW(rope(x, table, 5));
  CHECK_THROWS_AS(rope(x, table, -1), Error);
  CHECK_THROWS_AS(rope(Tensor::zeros({1, 3, 2, 6}, DType::f32), table), Error);  // head_dim
  CHECK_THROWS_AS(rope(Tensor::zeros({3, 2, 4}, DType::f32), table), Error);     // rank
  CHECK_THROWS_AS(rope(x.to(DType::f64), table), Error);                         // dtype
}
