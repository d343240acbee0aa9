#include <cmath>

#include "op_test_util.h"
#include "train/optimizer.h"

using namespace ssa;

TEST_CASE("schedule: linear warmup, cosine to min_lr, flat after the end") {
  ScheduleConfig s{.lr = 1.0, .min_lr = 0.1, .warmup_steps = 10, .total_steps = 110};
  CHECK(learning_rate(s, 0) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 9) == doctest::Approx(1.0));
  CHECK(learning_rate(s, 10) == doctest::Approx(1.0));
  CHECK(learning_rate(s, 60) == doctest::Approx(0.55));
  CHECK(learning_rate(s, 110) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 500) == doctest::Approx(0.1));
}

TEST_CASE("AdamW matches the formula, decays matrices only") {
  Parameters params({{"w", {2, 2}}, {"norm", {3}, Init::ones, 0, false}}, DType::f64, Device::cpu);
  params.get("w").copy_from(Tensor::from({1, -2, 3, 0.5}, {2, 2}, DType::f64));
  params.flat_grad().copy_from(Tensor::from({0.1, 0.2, -0.3, 0.0, 0.5, -1, 2}, {7}, DType::f64));
  AdamW adam(params, AdamWConfig{.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
  adam.step(0.01);
  // Step 1: m̂ = g, v̂ = g², update = g/(|g| + eps) = sign(g).
  CHECK(params.flat().at(0) == doctest::Approx(1 - 0.01 * (1 + 0.1 * 1)));
  CHECK(params.flat().at(1) == doctest::Approx(-2 - 0.01 * (1 + 0.1 * -2)));
  CHECK(params.flat().at(3) == doctest::Approx(0.5 - 0.01 * (0 + 0.1 * 0.5)));
  CHECK(params.flat().at(4) == doctest::Approx(0 - 0.01));  // norm weight 0 + no decay
  CHECK(params.flat().at(5) == doctest::Approx(0 + 0.01));
  CHECK(adam.step_count() == 1);
}

TEST_CASE("global gradient norm and clipping") {
  Tensor g = Tensor::from({3, 4, 0, 0}, {4}, DType::f32);
  CHECK(gradient_norm(g) == doctest::Approx(5.0));
  clip_gradient(g, 5.0, 1.0);
  CHECK(gradient_norm(g) == doctest::Approx(1.0));
  CHECK(g.at(0) == doctest::Approx(0.6));
  clip_gradient(g, 1.0, 2.0);  // below the limit: unchanged
  CHECK(g.at(1) == doctest::Approx(0.8));
}
