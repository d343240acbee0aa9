#include "eval/placement.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "train/device.h"

namespace ssa {
namespace {

// The compute dtypes by name; an unknown name is a usage error naming `option`.
DType compute_dtype(const std::string& name, const std::string& option) {
  if (name == "f32") return DType::f32;
  if (name == "bf16") return DType::bf16;
  if (name == "f64") return DType::f64;
  usage_error("{} must be f32, bf16 or f64, got '{}'", option, name);
}

bool computes_in(Device device, DType dtype) {
  if (device == Device::cpu) return dtype == DType::f32 || dtype == DType::f64;
  return dtype == DType::f32 || dtype == DType::bf16;
}

// Why the CUDA kernels cannot run the trained model ("" when they can): the sparse path's
// kernels take head_dim 64 or 128 and blocks of a multiple of 16.
std::string cuda_shape_problem(const Config& trained) {
  const int64_t head_dim = trained.get_int("model.head_dim");
  const int64_t block_size = trained.get_int("attention.block_size");
  if ((head_dim == 64 || head_dim == 128) && block_size % 16 == 0) return "";
  return fmt::format(
      "the CUDA kernels take head_dim 64 or 128 and blocks of a multiple of 16; this model has "
      "head_dim {} and blocks of {}",
      head_dim, block_size);
}

// auto: the GPU when one is usable and its kernels take the model, else the CPU (saying why
// when a GPU was there).
Device device_from(const CommandLine& line, const Config& trained) {
  const std::string name = line.get("--device", "auto");
  if (name == "auto") {
    if (!gpu_usable()) return Device::cpu;
    const std::string problem = cuda_shape_problem(trained);
    if (problem.empty()) return Device::cuda;
    fmt::print("running on the CPU: {}\n", problem);
    return Device::cpu;
  }
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  usage_error("--device must be auto, cpu or cuda, got '{}'", name);
}

DType dtype_from(const CommandLine& line, Device device, const Config& trained) {
  const DType trained_dtype =
      compute_dtype(trained.get_string("train.dtype"), "the checkpoint's train.dtype");
  if (!line.has("--dtype")) return computes_in(device, trained_dtype) ? trained_dtype : DType::f32;
  const DType dtype = compute_dtype(line.get("--dtype"), "--dtype");
  if (!computes_in(device, dtype))
    usage_error("--dtype {} does not run on --device {} (cpu: f32 or f64; cuda: f32 or bf16)",
                dtype_name(dtype), device_name(device));
  return dtype;
}

struct Placement {
  Device device;
  DType dtype;  // what the model computes in
};

Placement placement_from(const CommandLine& line, const Config& trained) {
  const Device device = device_from(line, trained);
  require_device(device);
  return {device, dtype_from(line, device, trained)};
}

// The index of the first NaN or infinity of `values`, or -1.
template <typename T>
int64_t first_non_finite(const Tensor& values) {
  const T* data = values.data<T>();
  for (int64_t i = 0; i < values.numel(); ++i)
    if (!std::isfinite(data[i])) return i;
  return -1;
}

}  // namespace

void require_finite_weights(const Checkpoint& ckpt, const std::string& path) {
  for (const auto& [name, values] : ckpt.tensors) {
    if (!name.starts_with("params/")) continue;
    const int64_t index = values.dtype() == DType::f64 ? first_non_finite<double>(values)
                                                       : first_non_finite<float>(values);
    if (index >= 0)
      fail(
          "checkpoint {}: dataset '{}' holds a non-finite value (NaN or infinity) at index {}; "
          "its weights are unusable: use an earlier checkpoint",
          path, name, index);
  }
}

CommandLine& placement_options(CommandLine& line) {
  return line
      .option("--device", "D",
              "auto (default: the GPU when one is usable and its kernels take the model's\n"
              "head_dim and block size), cpu or cuda")
      .option("--dtype", "T",
              "what the model computes in: f32 or f64 on the CPU, f32 or bf16 (over f32\n"
              "weights) on a GPU (default: the training's train.dtype where the device\n"
              "computes in it, else f32)");
}

LoadedModel load_placed_model(const std::string& path, const CommandLine& line) {
  const Checkpoint ckpt = read_checkpoint(path);
  require_finite_weights(ckpt, path);
  const Placement placement = placement_from(line, checkpoint_config(ckpt, path));
  return load_model(ckpt, path, placement.device, placement.dtype);
}

std::string placement_name(const Decoder& model) {
  return fmt::format("{} {}", device_name(model.device()),
                     dtype_name(model.params().compute_flat().dtype()));
}

}  // namespace ssa
