#pragma once
// A tiny training job for the trainer and end-to-end tests: synthetic shards in a scratch
// directory and a config small enough to train in milliseconds.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "core/rng.h"
#include "data/shard.h"
#include "test_data_util.h"
#include "train/settings.h"
#include "train/trainer.h"

namespace ssa::test {

constexpr int64_t kTinyVocab = 48;

// A token stream with structure a small model can learn: runs of a repeating pattern whose
// phase is drawn at random, so loss falls but not to zero.
inline std::vector<uint32_t> tiny_corpus(int64_t count, uint64_t seed) {
  std::vector<uint32_t> tokens;
  Rng rng(seed);
  while (static_cast<int64_t>(tokens.size()) < count) {
    uint32_t start = static_cast<uint32_t>(rng.below(kTinyVocab));
    for (uint32_t i = 0; i < 12; ++i) tokens.push_back((start + 3 * i) % kTinyVocab);
  }
  tokens.resize(static_cast<size_t>(count));
  return tokens;
}

// Writes train_000000.bin (and val_000000.bin) under `dir`.
inline void write_tiny_shards(const TempDir& dir) {
  std::vector<uint32_t> train = tiny_corpus(4000, 1), val = tiny_corpus(600, 2);
  write_shard(dir.file("train_000000.bin"), train);
  write_shard(dir.file("val_000000.bin"), val);
}

// The config text of the tiny job, reading shards from and writing to `dir`.
inline std::string tiny_config_text(const TempDir& dir) {
  return fmt::format(R"([model]
vocab_size = {}
d_model = 32
n_layers = 2
n_heads = 4
n_kv_heads = 2
head_dim = 8
ffn_dim = 48
max_seq_len = 32
[data]
train = "{}"
val = "{}"
seq_len = 16
[optim]
lr = 0.003
min_lr = 0.0003
warmup_steps = 2
[train]
steps = 6
micro_batch = 4
out_dir = "{}"
val_batches = 2
)",
                     kTinyVocab, dir.file("train_*.bin"), dir.file("val_*.bin"), dir.file("out"));
}

inline Config tiny_config(const TempDir& dir) {
  Config config = default_train_config();
  config.load_text(tiny_config_text(dir), "tiny config");
  return config;
}

// The tiny job's settings with `overrides` (config text) applied, and out_dir when given.
inline TrainSettings tiny_settings(const TempDir& dir, const std::string& overrides = "",
                                   const std::string& out_dir = "") {
  Config config = tiny_config(dir);
  if (!overrides.empty()) config.load_text(overrides, "test overrides");
  if (!out_dir.empty())
    config.load_text(fmt::format("[train]\nout_dir = \"{}\"\n", out_dir), "out_dir override");
  return train_settings_from(config);
}

// The losses of `steps` training steps.
inline std::vector<double> train_losses(Trainer& trainer, int steps) {
  std::vector<double> losses;
  for (int i = 0; i < steps; ++i) losses.push_back(trainer.train_step().loss);
  return losses;
}

// Overrides for the GPU: the tiny job in the shape the CUDA attention kernels take (head_dim
// 64, blocks of 16), and the device and compute dtype.
inline const std::string kGpuShape =
    "[model]\nhead_dim = 64\nmax_seq_len = 64\n[data]\nseq_len = 64\n";
inline const std::string kCudaF32 = "[train]\ndevice = cuda\ndtype = f32\n";
inline const std::string kCudaBf16 = "[train]\ndevice = cuda\ndtype = bf16\n";

}  // namespace ssa::test
