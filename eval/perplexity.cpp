#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "data/loader.h"
#include "train/trainer.h"

namespace ssa {

std::string eval_data_glob(const CommandLine& line, const Config& trained) {
  if (line.has("--data")) {
    const std::string data = line.get("--data");
    if (data.empty()) usage_error("--data is empty; pass a glob of shards");
    return data;
  }
  const std::string data = trained.get_string("data.val");
  if (data.empty()) usage_error("the checkpoint names no data.val; pass --data GLOB");
  try {
    expand_glob(data);
  } catch (const Error& error) {
    fail("{} (the checkpoint's data.val; pass --data GLOB to read shards elsewhere)", error.what());
  }
  return data;
}

EvalWindows eval_windows(const std::string& glob, int64_t seq_len, int64_t vocab_size,
                         int64_t batch, int64_t max_batches) {
  Loader loader(expand_glob(glob), seq_len, vocab_size, 0, false);
  const int64_t whole_batch = std::min(batch, loader.windows_per_epoch());
  int64_t batches = loader.windows_per_epoch() / whole_batch;
  if (max_batches > 0) batches = std::min(batches, max_batches);
  return {std::move(loader), whole_batch, batches};
}

PerplexityResult perplexity(Decoder& model, const std::string& glob, int64_t seq_len, int64_t batch,
                            int64_t max_batches, const ForwardOptions& options) {
  EvalWindows windows = eval_windows(glob, seq_len, model.config().vocab_size, batch, max_batches);
  PerplexityResult result;
  result.loss = mean_loss(model, windows.loader, windows.batches, windows.batch, options);
  result.perplexity = std::exp(result.loss);
  result.tokens = windows.batches * windows.batch * seq_len;
  return result;
}

}  // namespace ssa
