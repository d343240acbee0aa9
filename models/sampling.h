#pragma once
// Text generation by sampling: temperature and top-k over the last position's logits.
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "models/decoder.h"

namespace ssa {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: the whole vocabulary
  // Only ids below this are drawn: the tokenizer's vocabulary, when the model's is larger
  // (padded, or BPE training stopped short). 0: every id of the logits.
  int64_t decodable_ids = 0;
};

// Picks the next token from one row of logits, among the decodable ids.
int32_t sample_token(const std::vector<double>& logits, const SamplingOptions& options, Rng& rng);

// Appends `count` tokens to `prompt`, attention as `attention` says (full, or sparse at its
// top_k and block_size). With the cache: one forward pass over the prompt, then one per new
// token over that token alone (Decoder::logits_cached); without: the whole sequence again for
// each new token (the same tokens, slower; for checking). Positions go on past max_seq_len with
// RoPE unchanged.
std::vector<int32_t> generate(Decoder& model, std::vector<int32_t> prompt, int64_t count,
                              const SamplingOptions& options, Rng& rng,
                              const ForwardOptions& attention = {}, bool use_cache = true);

}  // namespace ssa
