#pragma once
// What a training run is set up with (TrainSettings), and the ssa-train config that fills it:
// every key bound to the member it fills. A key's type is its member's, its default the
// member's initial value here or in ModelConfig, AttentionSettings, AdamWConfig and
// ScheduleConfig; its range, choices and meaning are on its one entry in settings.cpp.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "models/attention_options.h"
#include "models/config.h"
#include "train/config.h"
#include "train/optimizer.h"

namespace ssa {

struct RunSettings {
  std::string train_glob = "data/shards/train_*.bin";
  std::string val_glob = "data/shards/val_*.bin";  // "": no validation
  std::string tokenizer_path;
  std::string out_dir = "out";
  int64_t seq_len = 256;
  int64_t steps = 1000;  // also the cosine's length, ScheduleConfig::total_steps
  int64_t micro_batch = 8;
  int64_t grad_accum = 1;
  uint64_t seed = 1337;
  double grad_clip = 1.0;
  bool skip_nonfinite = false;  // false: stop at a non-finite loss or gradient norm
  bool recompute_ffn = false;   // train.recompute = ffn
  int64_t log_every = 1;
  int64_t val_every = 0;  // 0: never (validation also runs after the last step)
  int64_t val_batches = 8;
  int64_t sample_every = 0;
  int64_t sample_tokens = 64;
  int64_t ckpt_every = 0;  // 0: only after the last step; -1: never
  int64_t keep_last = 3;
  DType compute_dtype = DType::f32;  // bf16: mixed precision
  DType dtype = DType::f32;          // master weights, gradients and AdamW moments: f32 under bf16
  Device device = Device::cpu;
  int64_t zero = 0;             // ZeRO stage: 1 shards the AdamW state over the ranks, 0 does not
  double comm_timeout_s = 600;  // a collective running longer aborts the job
  double bucket_mb = 25;        // gradient all-reduce bucket size
};

// The attention of training (docs/METHOD.md, "Training modes"): one path, or SSA's both paths
// with alignment and a per-step draw of the path passed on.
struct TrainAttention : AttentionSettings {
  enum class Mode { full, sparse, ssa };
  Mode mode = Mode::full;
  double p_full = 0.5;  // ssa: probability that a step passes on the full path
};

struct TrainSettings {
  ModelConfig model;
  TrainAttention attention;
  AdamWConfig adamw;
  ScheduleConfig schedule;
  RunSettings run;
  std::string config_text;  // the resolved config, stored in every checkpoint
};

// One key of the ssa-train config and the TrainSettings member it fills.
struct ConfigBinding {
  ConfigEntry entry;  // default_value: the member's value in a default TrainSettings
  std::function<void(const Config&, TrainSettings&)> fill;  // the member from the key's value
  std::function<std::string(const TrainSettings&)> value;   // the member as the key's value
};

// Every key, in the order of the config's sections and of --help.
const std::vector<ConfigBinding>& train_config_bindings();
// A Config over the bound keys, every key at its default.
Config default_train_config();

// The model part of `config`, validated.
ModelConfig model_config_from(const Config& config);
// Everything the trainer needs, checked across keys; config_text is config.to_text().
TrainSettings train_settings_from(const Config& config);

}  // namespace ssa
