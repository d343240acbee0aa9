#pragma once
// Next-token loss and perplexity of a model over token shards.
#include <string>

#include "core/command_line.h"
#include "data/loader.h"
#include "models/decoder.h"
#include "train/config.h"

namespace ssa {

// The shards an eval command reads: its --data, or else the data.val of the checkpoint's run
// (`trained`), checked to match a file, so that shards moved since are named as the
// checkpoint's.
std::string eval_data_glob(const CommandLine& line, const Config& trained);

struct PerplexityResult {
  double loss = 0;        // mean cross-entropy per target token (nats)
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // target tokens scored
};

// The windows of seq_len + 1 tokens of the shards `glob` matches, in file order, and how many
// batches of `batch` windows eval reads: every whole batch (at least one), at most max_batches
// (0: no limit). Shards of fewer than `batch` windows give one batch of all of them: no window
// is read twice.
struct EvalWindows {
  Loader loader;
  int64_t batch;
  int64_t batches;
};
EvalWindows eval_windows(const std::string& glob, int64_t seq_len, int64_t vocab_size,
                         int64_t batch, int64_t max_batches);

// Scores the windows of seq_len + 1 tokens of the shards `glob` matches, in file order,
// `batch` windows at a time, at most `max_batches` batches (0: every whole batch; at least one).
// Attention as `options` say (full, or sparse at a top_k).
PerplexityResult perplexity(Decoder& model, const std::string& glob, int64_t seq_len, int64_t batch,
                            int64_t max_batches, const ForwardOptions& options = {});

}  // namespace ssa
