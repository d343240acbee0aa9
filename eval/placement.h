#pragma once
// Where the eval commands and ssa-generate run a checkpoint's model: --device auto|cpu|cuda
// (auto: the GPU when one is usable and its kernels take the model: head_dim 64 or 128, blocks
// of a multiple of 16) and --dtype f32|bf16|f64 (default: the training's
// train.dtype where the device computes in it, else f32). The CPU computes in f32 or f64, a GPU
// in f32 or bf16 (bf16 over f32 weights, as in mixed-precision training).
#include <string>

#include "core/command_line.h"
#include "train/restore.h"

namespace ssa {

// Declares --device and --dtype on `line`.
CommandLine& placement_options(CommandLine& line);
// Fails naming the checkpoint and its first 'params/' dataset that holds a NaN or an infinity:
// such weights give results that look valid (entropy 0, NUL bytes generated).
void require_finite_weights(const Checkpoint& ckpt, const std::string& path);
// The checkpoint's model where the parsed line puts it; a device this machine lacks or a dtype
// the device does not compute in is an error naming the option, non-finite weights one naming
// the dataset.
LoadedModel load_placed_model(const std::string& path, const CommandLine& line);
// "cuda bf16", "cpu f32": where the model runs and what it computes in.
std::string placement_name(const Decoder& model);

}  // namespace ssa
