#include "train/restore.h"

#include "train/settings.h"

namespace ssa {

void load_flat_buffer(const Checkpoint& ckpt, const std::string& path, const std::string& group,
                      const Parameters& params, const Tensor& buffer) {
  for (size_t i = 0; i < params.size(); ++i) {
    const ParamSpec& spec = params.specs()[i];
    const std::string name = group + spec.name;
    const Tensor& stored = ckpt.tensor(name, path);
    if (stored.shape() != spec.shape)
      fail("checkpoint {}: tensor '{}' has shape {}, the model expects {}", path, name,
           stored.shape().str(), spec.shape.str());
    buffer.view(params.offsets()[i], spec.shape).copy_from(stored);
  }
}

Config checkpoint_config(const Checkpoint& ckpt, const std::string& path) {
  Config config = default_train_config();
  config.load_text(ckpt.text_entry("config", path), path + " (stored config)");
  return config;
}

LoadedModel load_model(const std::string& path, Device device, DType compute) {
  return load_model(read_checkpoint(path), path, device, compute);
}

LoadedModel load_model(const Checkpoint& ckpt, const std::string& path, Device device,
                       DType compute) {
  LoadedModel loaded{checkpoint_config(ckpt, path), nullptr};
  const DType master = compute == DType::f64 ? DType::f64 : DType::f32;
  loaded.model =
      std::make_unique<Decoder>(model_config_from(loaded.config), master, device, compute);
  const Parameters& params = loaded.model->params();
  load_flat_buffer(ckpt, path, "params/", params, params.flat());
  params.refresh_compute_copy();
  return loaded;
}

}  // namespace ssa
