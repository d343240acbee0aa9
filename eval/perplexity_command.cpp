// ssa-eval ppl: perplexity under full attention and under sparse attention at top-k budgets.
#include <fmt/format.h>

#include <filesystem>

#include "core/command_line.h"
#include "eval/commands.h"
#include "eval/outputs.h"
#include "eval/perplexity.h"
#include "eval/placement.h"
#include "eval/svg.h"
#include "train/log.h"
#include "train/restore.h"

namespace ssa {
namespace {

constexpr const char* kAbout =
    "Perplexity under full attention and under sparse attention at each top-k budget (blocks\n"
    "per query, its own included), whatever mode the model was trained in. Writes PREFIX.json\n"
    "(one object per line) and PREFIX.svg (perplexity vs budget).";

struct Row {
  std::string attention;
  int64_t top_k;  // 0 for full attention
  PerplexityResult result;
};

}  // namespace

int perplexity_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-eval ppl", kAbout);
  line.required("--checkpoint", "PATH", "the checkpoint to score")
      .option("--data", "GLOB",
              "shards to score (default: the data.val the model was trained with)")
      .option("--seq-len", "T", "tokens per window (default: the training data.seq_len)")
      .option("--batch", "B", "windows per forward pass (default 8)")
      .option("--max-batches", "N",
              "at most N batches (default 0: every whole batch of the shards)")
      .option("--top-k", "LIST", "budgets, comma-separated (default 1,2,4,8,16,32,64)")
      .option("--block-size", "N", "tokens per block (default: the training attention.block_size)")
      .option("--out", "PREFIX",
              "the results' path without .json and .svg (default <checkpoint>.ppl)");
  placement_options(line).parse(args);
  const std::string checkpoint = line.get("--checkpoint");
  LoadedModel loaded = load_placed_model(checkpoint, line);
  const std::string placement = placement_name(*loaded.model);
  const Config& trained = loaded.config;
  const std::string data = eval_data_glob(line, trained);
  const int64_t seq_len = line.get_size("--seq-len", trained.get_int("data.seq_len"), 1);
  const int64_t batch = line.get_size("--batch", 8, 1);
  const int64_t max_batches = line.get_int("--max-batches", 0, 0);
  ForwardOptions options;
  options.block_size = line.get_size("--block-size", trained.get_int("attention.block_size"), 1);
  const std::vector<int64_t> budgets =
      line.get_int_list("--top-k", {1, 2, 4, 8, 16, 32, 64}, 1, CommandLine::kMaxSize);
  const std::string prefix = line.get("--out", checkpoint + ".ppl");
  check_outputs("--out", {prefix + ".json", prefix + ".svg"}, model_inputs(checkpoint, data));

  std::vector<Row> rows{
      {"full", 0, perplexity(*loaded.model, data, seq_len, batch, max_batches, options)}};
  options.path = AttentionPath::sparse;
  for (int64_t top_k : budgets) {
    options.top_k = top_k;
    rows.push_back(
        {"sparse", top_k, perplexity(*loaded.model, data, seq_len, batch, max_batches, options)});
  }

  std::string json;
  Series full_line{"full", {}, {}}, sparse_line{"sparse", {}, {}};
  fmt::print("on {}\n", placement);
  fmt::print("{:<10} {:>6} {:>10} {:>12} {:>10}\n", "attention", "top_k", "loss", "perplexity",
             "tokens");
  for (const Row& row : rows) {
    fmt::print("{:<10} {:>6} {:>10.4f} {:>12.3f} {:>10}\n", row.attention,
               row.top_k > 0 ? fmt::format("{}", row.top_k) : "-", row.result.loss,
               row.result.perplexity, row.result.tokens);
    JsonLine record;
    record.add("checkpoint", checkpoint).add("data", data).add("seq_len", seq_len);
    record.add("block_size", options.block_size).add("attention", row.attention);
    record.add("top_k", row.top_k).add("loss", row.result.loss);
    record.add("perplexity", row.result.perplexity).add("tokens", row.result.tokens);
    record.add("placement", placement);
    json += record.str() + "\n";
    if (row.top_k > 0) {
      sparse_line.x.push_back(static_cast<double>(row.top_k));
      sparse_line.y.push_back(row.result.perplexity);
    }
  }
  for (double x : sparse_line.x) {  // full attention has no budget: a flat reference line
    full_line.x.push_back(x);
    full_line.y.push_back(rows[0].result.perplexity);
  }
  write_text_file(prefix + ".json", json);
  PlotOptions plot{fmt::format("Perplexity vs sparsity budget ({})",
                               std::filesystem::path(checkpoint).filename().string()),
                   "top-k blocks per query", "perplexity", true, false};
  write_text_file(prefix + ".svg", line_plot({full_line, sparse_line}, plot));
  fmt::print("wrote {0}.json and {0}.svg\n", prefix);
  return 0;
}

}  // namespace ssa
