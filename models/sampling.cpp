#include "models/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/autograd.h"

namespace ssa {

int32_t sample_token(const std::vector<double>& logits, const SamplingOptions& options, Rng& rng) {
  SSA_CHECK(!logits.empty(), "sampling from empty logits");
  const size_t usable = options.decodable_ids > 0
                            ? std::min(logits.size(), static_cast<size_t>(options.decodable_ids))
                            : logits.size();
  if (options.temperature <= 0)
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.begin() + usable) -
                                logits.begin());
  std::vector<int32_t> candidates(usable);
  std::iota(candidates.begin(), candidates.end(), 0);
  const size_t keep =
      options.top_k > 0 ? std::min(usable, static_cast<size_t>(options.top_k)) : usable;
  // Highest logits first; ties by lower id, so the candidate list is deterministic.
  std::partial_sort(
      candidates.begin(), candidates.begin() + static_cast<ptrdiff_t>(keep), candidates.end(),
      [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; });
  candidates.resize(keep);
  const double top = logits[candidates[0]];
  std::vector<double> weights;
  double total = 0;
  for (int32_t id : candidates) {
    weights.push_back(std::exp((logits[id] - top) / options.temperature));
    total += weights.back();
  }
  double target = rng.uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    target -= weights[i];
    if (target <= 0) return candidates[i];
  }
  return candidates[keep - 1];
}

namespace {

// Tokens first .. end of `tokens` as i32 ids [1, n].
Tensor token_ids(const std::vector<int32_t>& tokens, size_t first) {
  const std::vector<double> values(tokens.begin() + static_cast<ptrdiff_t>(first), tokens.end());
  return Tensor::from(values, {1, static_cast<int64_t>(values.size())}, DType::i32);
}

// The last row of logits [1, T, vocab].
std::vector<double> last_logits(const Tensor& logits) {
  const int64_t vocab = logits.dim(2);
  return logits.view((logits.dim(1) - 1) * vocab, {vocab}).to_vector();
}

}  // namespace

std::vector<int32_t> generate(Decoder& model, std::vector<int32_t> prompt, int64_t count,
                              const SamplingOptions& options, Rng& rng,
                              const ForwardOptions& attention, bool use_cache) {
  SSA_CHECK(!prompt.empty(), "generation needs at least one prompt token");
  NoGrad no_grad;
  KvCache cache(model.config().n_layers, attention.block_size);
  for (int64_t i = 0; i < count; ++i) {
    const Tensor logits =
        use_cache ? model.logits_cached(token_ids(prompt, static_cast<size_t>(cache.length())),
                                        cache, attention)
                  : model.logits(token_ids(prompt, 0), attention);
    prompt.push_back(sample_token(last_logits(logits), options, rng));
  }
  return prompt;
}

}  // namespace ssa
