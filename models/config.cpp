#include "models/config.h"

#include <fmt/format.h>

#include "core/error.h"

namespace ssa {

void ModelConfig::validate() const {
  auto positive = [](const char* name, int64_t value) {
    if (value <= 0) fail("model.{} must be positive, got {}", name, value);
  };
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("head_dim", head_dim);
  positive("ffn_dim", ffn_dim);
  positive("max_seq_len", max_seq_len);
  if (n_heads % n_kv_heads != 0)
    fail("model.n_kv_heads ({}) must divide model.n_heads ({})", n_kv_heads, n_heads);
  if (head_dim % 2 != 0) fail("model.head_dim must be even for RoPE, got {}", head_dim);
}

std::vector<std::pair<std::string, std::string>> ModelConfig::fields() const {
  return {{"model.vocab_size", fmt::format("{}", vocab_size)},
          {"model.d_model", fmt::format("{}", d_model)},
          {"model.n_layers", fmt::format("{}", n_layers)},
          {"model.n_heads", fmt::format("{}", n_heads)},
          {"model.n_kv_heads", fmt::format("{}", n_kv_heads)},
          {"model.head_dim", fmt::format("{}", head_dim)},
          {"model.ffn_dim", fmt::format("{}", ffn_dim)},
          {"model.max_seq_len", fmt::format("{}", max_seq_len)},
          {"model.rope_theta", fmt::format("{}", rope_theta)},
          {"model.norm_eps", fmt::format("{}", norm_eps)},
          {"model.tie_embeddings", tie_embeddings ? "true" : "false"},
          {"attention.gate", attention_gate ? "true" : "false"}};
}

std::vector<std::string> differing_fields(const ModelConfig& a, const ModelConfig& b) {
  std::vector<std::string> lines;
  auto fa = a.fields(), fb = b.fields();
  for (size_t i = 0; i < fa.size(); ++i)
    if (fa[i].second != fb[i].second)
      lines.push_back(fmt::format("{}: {} vs {}", fa[i].first, fa[i].second, fb[i].second));
  return lines;
}

}  // namespace ssa
