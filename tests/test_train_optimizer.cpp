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

TEST_CASE("global gradient norm and the clipping factor") {
  Tensor g = Tensor::from({3, 4, 0, 0}, {4}, DType::f32);
  CHECK(gradient_norm(g) == doctest::Approx(5.0));
  CHECK(clip_factor(5.0, 1.0) == doctest::Approx(0.2));
  CHECK(clip_factor(1.0, 2.0) == 1.0);  // below the limit
  CHECK(clip_factor(5.0, 0.0) == 1.0);  // no limit
}

TEST_CASE("AdamW with grad_scale equals AdamW on the gradient scaled first, bit for bit") {
  const std::vector<ParamSpec> specs{{"w", {3, 5}}, {"norm", {4}, Init::ones, 0, false}};
  Parameters scaled_in_step(specs, DType::f32, Device::cpu),
      scaled_first(specs, DType::f32, Device::cpu);
  Rng rng(4);
  scaled_in_step.initialize(rng);
  scaled_first.flat().copy_from(scaled_in_step.flat());
  AdamW in_step(scaled_in_step, {}), first(scaled_first, {});
  const double scale = 1.0 / 3.0;
  for (int step = 0; step < 2; ++step) {
    const Tensor grad = Tensor::from({0.1, -0.7, 0.3, 1.9, -2.5, 0.01, 0.6, -0.2, 0.9, 1.1, -1.3,
                                      0.4, 0.05, -0.8, 2.2, 0.3, -0.6, 0.7, 0.2},
                                     {19}, DType::f32);
    scaled_in_step.flat_grad().copy_from(grad);
    in_step.step(0.01, Tensor(), scale);
    std::vector<double> values = grad.to_vector();
    for (double& value : values) value = static_cast<float>(static_cast<float>(value) * scale);
    scaled_first.flat_grad().copy_from(Tensor::from(values, {19}, DType::f32));
    first.step(0.01);
  }
  CHECK(scaled_in_step.flat().to_vector() == scaled_first.flat().to_vector());
  CHECK(in_step.first_moment().to_vector() == first.first_moment().to_vector());
  CHECK(in_step.second_moment().to_vector() == first.second_moment().to_vector());
}
