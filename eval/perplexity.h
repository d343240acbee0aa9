#pragma once
// Next-token loss and perplexity of a model over token shards.
#include <string>

#include "models/decoder.h"

namespace ssa {

struct PerplexityResult {
  double loss = 0;        // mean cross-entropy per target token (nats)
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // target tokens scored
};

// Scores the windows of seq_len + 1 tokens of the shards `glob` matches, in file order,
// `batch` windows at a time, at most `max_batches` batches (0: every whole batch; at least one).
PerplexityResult perplexity(Decoder& model, const std::string& glob, int64_t seq_len,
                            int64_t batch, int64_t max_batches);

}  // namespace ssa
