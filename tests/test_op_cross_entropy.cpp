#include <cmath>

#include "op_test_util.h"
#include "ops/cross_entropy.h"
#include "ops/linear.h"

using namespace ssa;
using namespace ssa::test;

namespace {

Tensor targets_of(const std::vector<double>& values) {
  return Tensor::from(values, {static_cast<int64_t>(values.size())}, DType::i32);
}

// Σ over rows with target != ignore of log Σ_v exp(x[v]) − x[target], by hand, then / divisor.
double naive_loss(const Tensor& logits, const Tensor& targets, double divisor, int ignore) {
  const int64_t vocab = logits.dim(1);
  double total = 0;
  int counted = 0;
  for (int64_t n = 0; n < logits.dim(0); ++n) {
    const int target = static_cast<int>(targets.at(n));
    if (target == ignore) continue;
    double sum_exp = 0;
    for (int64_t v = 0; v < vocab; ++v) sum_exp += std::exp(logits.at(n * vocab + v));
    total += std::log(sum_exp) - logits.at(n * vocab + target);
    ++counted;
  }
  return total / (divisor == 0 ? counted : divisor);
}

}  // namespace

TEST_CASE("cross_entropy: forward equals log-sum-exp by hand, with ignore_index and divisor") {
  Tensor logits = random_tensor({4, 5}, 1, DType::f64, false, 3.0);
  Tensor targets = targets_of({1, -1, 4, 0});
  CHECK(cross_entropy(logits, targets).item() ==
        doctest::Approx(naive_loss(logits, targets, 0, -1)).epsilon(1e-12));
  CHECK(cross_entropy(logits, targets, 10).item() ==
        doctest::Approx(naive_loss(logits, targets, 10, -1)).epsilon(1e-12));
  Tensor with_two = targets_of({2, 3, 2, 2});
  CHECK(cross_entropy(logits, with_two, 0, 2).item() ==
        doctest::Approx(naive_loss(logits, with_two, 0, 2)).epsilon(1e-12));
  Tensor logits32 = logits.to(DType::f32);
  CHECK(cross_entropy(logits32, targets).dtype() == DType::f32);
  CHECK(cross_entropy(logits32, targets).item() ==
        doctest::Approx(naive_loss(logits, targets, 0, -1)).epsilon(1e-6));
}

TEST_CASE("cross_entropy: large logits stay finite (max subtracted)") {
  Tensor logits = Tensor::from({1000, 1001, 999, -1000, 0, 1000}, {2, 3}, DType::f32);
  const double row0 = std::log(std::exp(-1.0) + 1 + std::exp(-2.0));  // target 1: max − max
  const double row1 = 2000;  // target 0: lse = 1000 + log(1 + e⁻¹⁰⁰⁰ + e⁻²⁰⁰⁰), minus −1000
  CHECK(cross_entropy(logits, targets_of({1, 0})).item() ==
        doctest::Approx((row0 + row1) / 2).epsilon(1e-6));
}

TEST_CASE("cross_entropy: all rows ignored gives loss 0 and a zero gradient") {
  Tensor logits = random_tensor({3, 4}, 2);
  Tensor loss = cross_entropy(logits, targets_of({-1, -1, -1}));
  CHECK(loss.item() == 0.0);
  backward(loss);
  CHECK(logits.grad().to_vector() == std::vector<double>(12, 0.0));
}

TEST_CASE("cross_entropy: gradient rows are softmax − onehot, zero for ignored rows") {
  Tensor logits = random_tensor({2, 3}, 3);
  backward(cross_entropy(logits, targets_of({2, -1}), 4), Tensor::scalar(2.0, DType::f64));
  double sum_exp = 0;
  for (int64_t v = 0; v < 3; ++v) sum_exp += std::exp(logits.at(v));
  for (int64_t v = 0; v < 3; ++v) {
    const double expected = (std::exp(logits.at(v)) / sum_exp - (v == 2)) * 2.0 / 4;
    CHECK(logits.grad().at(v) == doctest::Approx(expected).epsilon(1e-12));
    CHECK(logits.grad().at(3 + v) == 0.0);
  }
}

TEST_CASE("cross_entropy: the gradient overwrites logits nothing else holds, and only those") {
  Tensor held = random_tensor({3, 5}, 4);
  const std::vector<double> before = held.to_vector();
  backward(cross_entropy(held, targets_of({1, 0, 4})));
  CHECK(held.to_vector() == before);

  Tensor x = random_tensor({3, 4}, 5), w = random_tensor({5, 4}, 6);
  Tensor logits = linear(x, w);
  backward(cross_entropy(logits, targets_of({1, 0, 4})));
  const std::vector<double> kept = logits.to_vector(), dx = x.grad().to_vector(),
                            dw = w.grad().to_vector();
  CHECK(kept == linear(x, w).to_vector());
  x.set_grad(Tensor());
  w.set_grad(Tensor());
  Tensor loss = cross_entropy(linear(x, w), targets_of({1, 0, 4}));  // logits: the node's alone
  backward(loss);
  CHECK(x.grad().to_vector() == dx);
  CHECK(w.grad().to_vector() == dw);
}

TEST_CASE("cross_entropy: errors") {
  Tensor logits = random_tensor({3, 4}, 1, DType::f32, false);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, targets_of({0, 4, 1})),
                       doctest::Contains("target 4 of row 1 is outside [0, 4)"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, targets_of({0, 1, -2})),
                       doctest::Contains("target -2 of row 2"), Error);
  CHECK_NOTHROW(cross_entropy(logits, targets_of({0, 7, 1}), 0, 7));
  CHECK_THROWS_AS(cross_entropy(logits, targets_of({0, 1})), Error);
  CHECK_THROWS_AS(cross_entropy(logits, Tensor::from({0, 1, 2}, {3}, DType::f32)), Error);
  CHECK_THROWS_AS(cross_entropy(logits.reshape({12}), targets_of({0})), Error);
  CHECK_THROWS_AS(cross_entropy(logits, targets_of({0, 1, 2}), -1), Error);
}
