#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "data/loader.h"
#include "train/trainer.h"

namespace ssa {

EvalWindows eval_windows(const std::string& glob, int64_t seq_len, int64_t vocab_size,
                         int64_t batch, int64_t max_batches) {
  Loader loader(expand_glob(glob), seq_len, vocab_size, 0, false);
  int64_t batches = std::max<int64_t>(1, loader.windows_per_epoch() / batch);
  if (max_batches > 0) batches = std::min(batches, max_batches);
  return {std::move(loader), batches};
}

PerplexityResult perplexity(Decoder& model, const std::string& glob, int64_t seq_len, int64_t batch,
                            int64_t max_batches, const ForwardOptions& options) {
  EvalWindows windows = eval_windows(glob, seq_len, model.config().vocab_size, batch, max_batches);
  PerplexityResult result;
  result.loss = mean_loss(model, windows.loader, windows.batches, batch, options);
  result.perplexity = std::exp(result.loss);
  result.tokens = windows.batches * batch * seq_len;
  return result;
}

}  // namespace ssa
