#include <cmath>
#include <filesystem>

#include "autograd/autograd.h"
#include "op_test_util.h"
#include "train/checkpoint.h"
#include "train_test_util.h"

using namespace ssa;
using namespace ssa::test;

namespace {

TrainSettings tiny_settings(const TempDir& dir, const std::string& overrides = "") {
  Config config = tiny_config(dir);
  if (!overrides.empty()) config.load_text(overrides, "test overrides");
  return train_settings_from(config);
}

std::vector<float> parameters_of(Trainer& trainer) {
  std::vector<double> values = trainer.model().params().flat().to_vector();
  return {values.begin(), values.end()};
}

// ‖a − b‖ / ‖b‖ over the whole vector.
double relative_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace

TEST_CASE("a tiny model overfits one batch") {
  ModelConfig config;
  config.vocab_size = 32;
  config.d_model = 32;
  config.n_layers = 2;
  config.n_heads = 2;
  config.n_kv_heads = 1;
  config.head_dim = 16;
  config.ffn_dim = 64;
  config.max_seq_len = 16;
  Decoder model(config, DType::f32, Device::cpu);
  Rng rng(5);
  model.params().initialize(rng);
  AdamW optimizer(model.params(), AdamWConfig{0.9, 0.95, 1e-8, 0.0});
  Tensor ids = random_ids({2, 16}, 32, 11), targets = random_ids({2, 16}, 32, 12);
  double loss = 0;
  for (int step = 0; step < 150; ++step) {
    model.params().zero_grad();
    Tensor l = model.loss(ids, targets);
    loss = l.item();
    backward(l);
    optimizer.step(1e-2);
  }
  CHECK(loss < 0.1);
}

TEST_CASE("gradient accumulation k x batch b gives the update of batch k*b") {
  TempDir dir("accumulation");
  write_tiny_shards(dir);
  Trainer whole(tiny_settings(dir, "[train]\nmicro_batch = 8\ngrad_accum = 1\n"));
  Trainer accumulated(tiny_settings(dir, "[train]\nmicro_batch = 2\ngrad_accum = 4\n"));
  StepResult a = whole.train_step(), b = accumulated.train_step();
  CHECK(a.loss == doctest::Approx(b.loss).epsilon(1e-6));
  CHECK(a.grad_norm == doctest::Approx(b.grad_norm).epsilon(1e-6));
  CHECK(relative_diff(parameters_of(whole), parameters_of(accumulated)) < 1e-6);
}

TEST_CASE("resuming from a checkpoint continues bit-exactly") {
  TempDir dir("resume");
  write_tiny_shards(dir);
  Trainer straight(tiny_settings(dir));
  std::vector<double> straight_losses;
  for (int step = 0; step < 6; ++step) {
    straight_losses.push_back(straight.train_step().loss);
    if (step == 2) straight.save_checkpoint();
  }
  Trainer resumed(tiny_settings(dir));
  resumed.resume_from(dir.file("out/" + checkpoint_file_name(3)));
  CHECK(resumed.step() == 3);
  for (int step = 3; step < 6; ++step) CHECK(resumed.train_step().loss == straight_losses[step]);
  CHECK(parameters_of(resumed) == parameters_of(straight));
}

TEST_CASE("a non-finite loss stops before the update, or is skipped and counted") {
  TempDir dir("nonfinite");
  write_tiny_shards(dir);
  auto poison = [](Trainer& trainer) {
    trainer.model().params().get("final_norm").fill(std::nan(""));
  };
  SUBCASE("stop (the default): an error naming the step, parameters untouched") {
    Trainer trainer(tiny_settings(dir));
    poison(trainer);
    std::vector<float> before = parameters_of(trainer);
    std::string message = error_of([&] { trainer.run(); });
    CHECK(message.find("step 1: non-finite loss") != std::string::npos);
    CHECK(list_checkpoints(dir.file("out")).empty());
    std::vector<float> after = parameters_of(trainer);
    CHECK(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0);
  }
  SUBCASE("skip: the step is counted and no update happens") {
    Trainer trainer(tiny_settings(dir, "[train]\non_nonfinite = skip\n"));
    poison(trainer);
    std::vector<float> before = parameters_of(trainer);
    StepResult result = trainer.train_step();
    CHECK(result.skipped);
    CHECK(trainer.step() == 1);
    std::vector<float> after = parameters_of(trainer);
    CHECK(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0);
  }
}
