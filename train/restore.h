#pragma once
// Reading model state back from a checkpoint: by training (resume) and by eval/generation.
#include <memory>
#include <string>

#include "models/decoder.h"
#include "train/checkpoint.h"
#include "train/config.h"

namespace ssa {

// Copies the tensors stored under `group` ("params/", "adam_m/", ...) into `buffer`, a flat
// buffer laid out like `params`; a missing tensor or a wrong shape names the checkpoint.
void load_flat_buffer(const Checkpoint& ckpt, const std::string& path, const std::string& group,
                      const Parameters& params, const Tensor& buffer);

// The resolved ssa-train config a checkpoint was trained with.
Config checkpoint_config(const Checkpoint& ckpt, const std::string& path);

struct LoadedModel {
  Config config;
  std::unique_ptr<Decoder> model;
};
// The model of a checkpoint, its parameters loaded (f32 or f64, on `device`), computing in
// `compute` (bf16: a bf16 copy of f32 weights, as in mixed-precision training).
LoadedModel load_model(const std::string& path, Device device, DType compute = DType::f32);
// The same from a checkpoint already read from `path`.
LoadedModel load_model(const Checkpoint& ckpt, const std::string& path, Device device,
                       DType compute);

}  // namespace ssa
