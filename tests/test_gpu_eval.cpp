// Evaluation on the GPU against the CPU: a checkpoint loaded with load_model onto the GPU gives
// the CPU's perplexity (full and sparse), attention statistics and cached logits, in f32 to
// rounding and in bf16 to its precision.
#include <doctest/doctest.h>

#include <cmath>

#include "eval/attention_stats.h"
#include "eval/perplexity.h"
#include "models/sampling.h"
#include "train/checkpoint.h"
#include "train/restore.h"
#include "train_test_util.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// A checkpoint of the tiny job in the GPU kernels' shape (head_dim 64, blocks of 16), trained 4
// steps on the CPU with SSA attention.
std::string trained_checkpoint(const TempDir& dir) {
  write_tiny_shards(dir);
  Trainer trainer(tiny_settings(
      dir,
      kGpuShape + "[attention]\nmode = ssa\nblock_size = 16\ntop_k = 2\n[train]\nsteps = 4\n"));
  train_losses(trainer, 4);
  trainer.save_checkpoint();
  return dir.file("out/" + checkpoint_file_name(4));
}

double relative_gap(double a, double b) { return std::abs(a - b) / std::abs(b); }

// Perplexity over the val shards, 2 windows of 64 tokens per batch, 2 batches.
double val_perplexity(Decoder& model, const TempDir& dir, AttentionPath path) {
  ForwardOptions options;
  options.path = path;
  options.block_size = 16;
  options.top_k = 2;
  return perplexity(model, dir.file("val_*.bin"), 64, 2, 2, options).perplexity;
}

}  // namespace

TEST_CASE("gpu eval: perplexity, attention statistics and cached logits match the CPU") {
  TempDir dir("gpu_eval");
  const std::string ckpt = trained_checkpoint(dir);
  LoadedModel cpu = load_model(ckpt, Device::cpu);
  LoadedModel f32 = load_model(ckpt, Device::cuda, DType::f32);
  LoadedModel bf16 = load_model(ckpt, Device::cuda, DType::bf16);
  CHECK(f32.model->device() == Device::cuda);
  CHECK(bf16.model->params().compute_flat().dtype() == DType::bf16);

  for (AttentionPath path : {AttentionPath::full, AttentionPath::sparse}) {
    const double expected = val_perplexity(*cpu.model, dir, path);
    CHECK(relative_gap(val_perplexity(*f32.model, dir, path), expected) < 1e-4);
    CHECK(relative_gap(val_perplexity(*bf16.model, dir, path), expected) < 2e-2);
  }

  const std::vector<LayerStats> stats_cpu =
      shard_attention_stats(*cpu.model, dir.file("val_*.bin"), 64, 1, 2, 16, 2);
  // f32 to the CPU's rounding; bf16 (the selection made on the GPU in bf16, as the sparse path
  // makes it) to its precision.
  for (LoadedModel* gpu : {&f32, &bf16}) {
    const bool is_bf16 = gpu == &bf16;
    CAPTURE(is_bf16);
    const std::vector<LayerStats> stats_gpu =
        shard_attention_stats(*gpu->model, dir.file("val_*.bin"), 64, 1, 2, 16, 2);
    REQUIRE(stats_gpu.size() == stats_cpu.size());
    for (size_t i = 0; i < stats_cpu.size(); ++i) {
      CHECK(stats_gpu[i].rows == stats_cpu[i].rows);
      const double gap =
          std::abs(stats_gpu[i].mean_captured_mass() - stats_cpu[i].mean_captured_mass());
      CHECK(gap < (is_bf16 ? 2e-2 : 1e-4));
      CHECK(stats_gpu[i].bound_violations == 0);
    }
  }

  // 40 tokens through the GPU's KV cache in two chunks (full and sparse, 48 tokens being 3
  // blocks of 16: the top 2 drop one), against the CPU's whole-sequence logits.
  auto ids = [](int first, int count) {
    std::vector<double> tokens;
    for (int i = first; i < first + count; ++i) tokens.push_back((7 * i + 3) % kTinyVocab);
    return Tensor::from(tokens, {1, count}, DType::i32);
  };
  ForwardOptions sparse;
  sparse.path = AttentionPath::sparse;
  sparse.block_size = 16;
  sparse.top_k = 2;
  for (const ForwardOptions& options : {ForwardOptions{}, sparse}) {
    CAPTURE(static_cast<int>(options.path));
    const std::vector<double> expected = cpu.model->logits(ids(0, 48), options).to_vector();
    KvCache cache(f32.model->config().n_layers, 16);
    std::vector<double> cached = f32.model->logits_cached(ids(0, 25), cache, options).to_vector();
    const std::vector<double> rest =
        f32.model->logits_cached(ids(25, 23), cache, options).to_vector();
    cached.insert(cached.end(), rest.begin(), rest.end());
    REQUIRE(cached.size() == expected.size());
    double worst = 0;
    for (size_t i = 0; i < expected.size(); ++i)
      worst = std::max(worst, std::abs(cached[i] - expected[i]));
    CHECK(worst < 1e-3);
  }

  // Sampling on the GPU in bf16 with the cache, sparse: the tokens asked for, each a valid id.
  Rng rng(5);
  const std::vector<int32_t> sampled =
      generate(*bf16.model, {1, 2, 3}, 20, SamplingOptions{0.8, 10}, rng, sparse);
  REQUIRE(sampled.size() == 23);
  for (int32_t id : sampled) CHECK((id >= 0 && id < kTinyVocab));
}
