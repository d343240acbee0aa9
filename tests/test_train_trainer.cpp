#include <cmath>
#include <filesystem>

#include "autograd/autograd.h"
#include "op_test_util.h"
#include "train/checkpoint.h"
#include "train_test_util.h"

using namespace ssa;
using namespace ssa::test;

namespace {

std::vector<float> parameters_of(Trainer& trainer) {
  std::vector<double> values = trainer.model().params().flat().to_vector();
  return {values.begin(), values.end()};
}

}  // namespace

TEST_CASE("a tiny model overfits one batch") {
  ModelConfig config{.vocab_size = 32,
                     .d_model = 32,
                     .n_layers = 2,
                     .n_heads = 2,
                     .n_kv_heads = 1,
                     .head_dim = 16,
                     .ffn_dim = 64,
                     .max_seq_len = 16};
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
  CHECK(relative_norm_error(whole.model().params().flat().to_vector(),
                            accumulated.model().params().flat().to_vector()) < 1e-6);
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

TEST_CASE("a run checkpoints at its end, unless ckpt_every = -1") {
  TempDir dir("final_checkpoint");
  write_tiny_shards(dir);
  Trainer benchmark(tiny_settings(dir, "[train]\nckpt_every = -1\n"));
  benchmark.run();
  CHECK(list_checkpoints(dir.file("out")).empty());
  Trainer trainer(tiny_settings(dir));
  trainer.run();
  CHECK(list_checkpoints(dir.file("out")).size() == 1);
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

TEST_CASE("ssa with alpha = 0 and p_full = 1 reproduces full training exactly") {
  TempDir dir("ssa_equals_full");
  write_tiny_shards(dir);
  const std::string sparse_blocks = "[attention]\nblock_size = 4\ntop_k = 2\n";
  Trainer full(tiny_settings(dir, sparse_blocks + "mode = full\n"));
  Trainer ssa(tiny_settings(dir, sparse_blocks + "mode = ssa\np_full = 1\nalign_weight = 0\n"));
  for (int step = 0; step < 3; ++step) {
    StepResult a = full.train_step(), b = ssa.train_step();
    CHECK(a.loss == b.loss);
    CHECK(b.path == AttentionPath::full);
    CHECK(b.alignment > 0);  // computed, but weighted by zero
  }
  CHECK(parameters_of(full) == parameters_of(ssa));
}

TEST_CASE("a short ssa run draws both paths and its loss falls") {
  TempDir dir("ssa_run");
  write_tiny_shards(dir);
  Trainer trainer(tiny_settings(
      dir, "[attention]\nmode = ssa\nblock_size = 4\ntop_k = 2\n[train]\nsteps = 30\n"));
  std::vector<StepResult> steps;
  for (int step = 0; step < 30; ++step) steps.push_back(trainer.train_step());
  int full_steps = 0;
  for (const StepResult& r : steps) full_steps += r.path == AttentionPath::full;
  CHECK(full_steps > 5);
  CHECK(full_steps < 25);
  auto mean = [&](size_t first, auto field) {
    double total = 0;
    for (size_t i = first; i < first + 5; ++i) total += steps[i].*field;
    return total / 5;
  };
  CHECK(mean(25, &StepResult::cross_entropy) < mean(0, &StepResult::cross_entropy) - 0.3);
  CHECK(mean(25, &StepResult::alignment) > 0);
  CHECK(trainer.validation_loss(AttentionPath::sparse) < std::log(double(kTinyVocab)));
}
