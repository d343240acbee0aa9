#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ssa {

// A Llama-style decoder (docs/METHOD.md, "The decoder"): the sizes that fix the parameter table.
struct ModelConfig {
  int64_t vocab_size = 4096;
  int64_t d_model = 256;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t head_dim = 64;
  int64_t ffn_dim = 704;
  int64_t max_seq_len = 256;
  double rope_theta = 500000;
  double norm_eps = 1e-5;
  bool tie_embeddings = true;
  bool attention_gate = true;  // per-head sigmoid gate on the attention output

  // Raises a clear error for sizes that cannot form a model (e.g. n_kv_heads ∤ n_heads).
  void validate() const;
  // (config key, value) of every field, in a fixed order: printing and mismatch reports.
  std::vector<std::pair<std::string, std::string>> fields() const;
};

// The fields whose values differ, as "name: a vs b" lines (empty when equal).
std::vector<std::string> differing_fields(const ModelConfig& a, const ModelConfig& b);

}  // namespace ssa
