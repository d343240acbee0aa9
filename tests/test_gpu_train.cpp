// Training on the GPU against the CPU reference: one step's loss and every parameter gradient,
// 50 steps of the quickstart model's shape, determinism, and exact resume — in fp32 and in
// bf16 mixed precision, with full and SSA attention.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "autograd/autograd.h"
#include "op_test_util.h"
#include "train/checkpoint.h"
#include "train_test_util.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// fp32 on the GPU runs the CPU's math in another order: rounding differences only.
constexpr double kF32Tolerance = 1e-4;
// bf16 compute rounds weights and activations to 8-bit mantissas (relative step 2^-8): one
// step's loss moves by about that, gradients by a few times more through the layers.
constexpr double kBf16LossTolerance = 1e-2;
constexpr double kBf16GradTolerance = 5e-2;

TrainSettings settings_for(const TempDir& dir, const std::string& overrides) {
  return tiny_settings(dir, kGpuShape + overrides);
}

const std::string kSsa = "[attention]\nmode = ssa\nblock_size = 16\ntop_k = 2\n";

// One forward and backward on the same batch; the loss, and each parameter's gradient.
struct Gradients {
  double loss;
  std::vector<std::vector<double>> per_parameter;
};

// The buffer holds NaNs before zero_grad(): a gradient added to it instead of overwriting it, or
// a slice left unwritten, shows.
Gradients gradients_of(Trainer& trainer, const Batch& batch, const ForwardOptions& options) {
  Decoder& model = trainer.model();
  model.params().flat_grad().fill(std::nan(""));
  model.params().zero_grad();
  Tensor loss = model.loss(batch.inputs, batch.targets, 0, options);
  backward(loss);
  Gradients result{loss.item(), {}};
  const Parameters& params = model.params();
  Tensor grads = params.flat_grad().to(Device::cpu).to(DType::f64);
  for (size_t i = 0; i < params.size(); ++i)
    result.per_parameter.push_back(grads.view(params.offsets()[i], params[i].shape()).to_vector());
  return result;
}

// path: the attention path the layers pass on (in ssa mode the other runs too, and its backward
// first).
void check_gradients_match(const std::string& gpu_overrides, const std::string& attention,
                           double loss_tolerance, double grad_tolerance,
                           AttentionPath path = AttentionPath::full) {
  TempDir dir("gpu_gradients");
  write_tiny_shards(dir);
  Trainer cpu(settings_for(dir, attention));
  Trainer gpu(settings_for(dir, attention + gpu_overrides));
  gpu.model().params().flat().copy_from(cpu.model().params().flat());
  gpu.model().params().refresh_compute_copy();
  Loader loader(expand_glob(dir.file("train_*.bin")), 64, kTinyVocab, 3, true);
  Batch batch = loader.next_batch(4);
  ForwardOptions options;
  options.block_size = 16;
  options.top_k = 2;
  options.align = attention.find("ssa") != std::string::npos;
  options.path = path;
  Gradients expected = gradients_of(cpu, batch, options), got = gradients_of(gpu, batch, options);
  CHECK(got.loss == doctest::Approx(expected.loss).epsilon(loss_tolerance));
  const Parameters& params = cpu.model().params();
  double worst = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const double error = relative_norm_error(got.per_parameter[i], expected.per_parameter[i]);
    CHECK_MESSAGE(error < grad_tolerance, params.specs()[i].name, ": relative error ", error);
    worst = std::max(worst, error);
  }
  std::printf("gpu vs cpu, %s%s, %s path: loss %.6f vs %.6f, worst gradient relative error %.2e\n",
              gpu_overrides.find("bf16") != std::string::npos ? "bf16" : "f32",
              options.align ? " ssa" : "", path_name(path), got.loss, expected.loss, worst);
}

std::vector<double> master_weights(Trainer& trainer) {
  return trainer.model().params().flat().to_vector();
}

// The quickstart model's shape (configs/quickstart.conf) on the tiny synthetic shards.
const std::string kQuickstartShape = R"([model]
vocab_size = 4096
d_model = 256
n_layers = 4
n_heads = 4
n_kv_heads = 2
head_dim = 64
ffn_dim = 704
max_seq_len = 64
[data]
seq_len = 64
[optim]
lr = 0.0015
min_lr = 0.00015
warmup_steps = 10
[train]
steps = 50
micro_batch = 8
)";

}  // namespace

TEST_CASE("gpu training: one step's loss and every parameter gradient match the CPU") {
  check_gradients_match(kCudaF32, "", kF32Tolerance, kF32Tolerance);
  check_gradients_match(kCudaF32, kSsa, kF32Tolerance, kF32Tolerance);
  check_gradients_match(kCudaBf16, "", kBf16LossTolerance, kBf16GradTolerance);
  check_gradients_match(kCudaBf16, kSsa, kBf16LossTolerance, kBf16GradTolerance);
  check_gradients_match(kCudaF32, kSsa, kF32Tolerance, kF32Tolerance, AttentionPath::sparse);
  check_gradients_match(kCudaBf16, kSsa, kBf16LossTolerance, kBf16GradTolerance,
                        AttentionPath::sparse);
}

TEST_CASE("gpu training: 50 steps of the quickstart shape follow the CPU's loss curve") {
  TempDir dir("gpu_curve");
  write_tiny_shards(dir);
  Trainer cpu(tiny_settings(dir, kQuickstartShape));
  Trainer gpu_f32(tiny_settings(dir, kQuickstartShape + "device = cuda\n"));
  Trainer gpu_bf16(tiny_settings(dir, kQuickstartShape + "device = cuda\ndtype = bf16\n"));
  std::vector<double> expected = train_losses(cpu, 50);
  std::vector<double> f32 = train_losses(gpu_f32, 50), bf16 = train_losses(gpu_bf16, 50);
  double worst_f32 = 0, worst_bf16 = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    worst_f32 = std::max(worst_f32, std::abs(f32[i] - expected[i]) / expected[i]);
    worst_bf16 = std::max(worst_bf16, std::abs(bf16[i] - expected[i]) / expected[i]);
  }
  std::printf(
      "50 steps: loss %.4f -> %.4f (cpu), %.4f (gpu f32), %.4f (gpu bf16); worst "
      "relative gap f32 %.2e, bf16 %.2e\n",
      expected.front(), expected.back(), f32.back(), bf16.back(), worst_f32, worst_bf16);
  CHECK(expected.back() < expected.front() - 1.0);
  CHECK(worst_f32 < 1e-3);
  CHECK(worst_bf16 < 3e-2);
}

TEST_CASE("gpu training is deterministic: two runs give bit-identical losses and weights") {
  TempDir dir("gpu_determinism");
  write_tiny_shards(dir);
  for (const std::string& overrides : {kCudaF32, kCudaBf16, kSsa + kCudaBf16}) {
    Trainer first(settings_for(dir, overrides)), second(settings_for(dir, overrides));
    CHECK(train_losses(first, 6) == train_losses(second, 6));
    CHECK(master_weights(first) == master_weights(second));
  }
}

TEST_CASE("gpu training resumes from a checkpoint bit-exactly (bf16 mixed precision)") {
  TempDir dir("gpu_resume");
  write_tiny_shards(dir);
  const std::string overrides = kSsa + kCudaBf16;
  Trainer straight(settings_for(dir, overrides));
  std::vector<double> losses = train_losses(straight, 3);
  straight.save_checkpoint();
  std::vector<double> rest = train_losses(straight, 3);
  Trainer resumed(settings_for(dir, overrides));
  resumed.resume_from(dir.file("out/" + checkpoint_file_name(3)));
  CHECK(train_losses(resumed, 3) == rest);
  CHECK(master_weights(resumed) == master_weights(straight));
}

TEST_CASE(
    "gpu training with train.recompute = ffn gives the same losses and weights, bit for bit") {
  TempDir dir("gpu_recompute");
  write_tiny_shards(dir);
  const std::string overrides = kSsa + kCudaBf16;
  Trainer kept(settings_for(dir, overrides)),
      recomputed(settings_for(dir, overrides + "recompute = ffn\n"));
  CHECK(train_losses(kept, 3) == train_losses(recomputed, 3));
  CHECK(master_weights(kept) == master_weights(recomputed));
}
