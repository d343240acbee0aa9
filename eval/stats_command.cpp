// ssa-eval stats: per-layer attention statistics of a checkpoint (eval/attention_stats.h).
#include <fmt/format.h>

#include <filesystem>

#include "core/command_line.h"
#include "eval/attention_stats.h"
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
    R"(Per layer, over every query and query head of a full-attention forward pass, in float64:
  sparsity     share of the full attention's probability mass inside the top-k blocks the
               sparse path selects (its complement is the dropped mass δ)
  entropy      of the full attention row, in bits
  sink         probability on the first block (keys 0 .. block size − 1)
  rel. error   ||o_full − o_sparse|| / ||o_full||, un-gated attention outputs
  dropping     share of rows whose selection leaves out some key
  violations   rows breaking ||o_full − o_sparse|| <= δ (max dropped ||v|| + ||o_sparse||)
               beyond float64 rounding; max lhs/rhs is the largest ratio of the two sides
The forward pass runs on --device in --dtype; the statistics of its queries, keys and values
are computed in float64 on the CPU at a cost of O(T^2) per head, hence few windows by default.
Writes PREFIX.json (one object per layer) and PREFIX.svg (sparsity per layer).)";

struct StatsRun {
  std::string checkpoint, data, placement;
  int64_t seq_len, block_size, top_k;
};

void print_row(const std::string& name, const LayerStats& s) {
  fmt::print("{:>5} {:>9.5f} {:>10.3e} {:>8.3f} {:>7.4f} {:>10.3e} {:>8.1f}% {:>10} {:>11.3e}\n",
             name, s.mean_captured_mass(), s.mean_dropped_mass(), s.mean_entropy_bits(),
             s.mean_sink_mass(), s.mean_relative_error(),
             100.0 * static_cast<double>(s.dropping_rows) / static_cast<double>(s.rows),
             s.bound_violations, s.max_bound_ratio);
}

// Every layer has the same rows, so pooling the sums gives the mean over layers.
void print_table(const std::vector<LayerStats>& layers) {
  fmt::print("{:>5} {:>9} {:>10} {:>8} {:>7} {:>10} {:>9} {:>10} {:>11}\n", "layer", "sparsity",
             "dropped δ", "entropy", "sink", "rel.error", "dropping", "violations", "max lhs/rhs");
  LayerStats all;
  for (size_t i = 0; i < layers.size(); ++i) {
    print_row(fmt::format("{}", i), layers[i]);
    all += layers[i];
  }
  print_row("mean", all);
}

std::string json_rows(const StatsRun& run, const std::vector<LayerStats>& layers) {
  std::string json;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerStats& s = layers[i];
    JsonLine record;
    record.add("checkpoint", run.checkpoint).add("data", run.data).add("seq_len", run.seq_len);
    record.add("block_size", run.block_size).add("top_k", run.top_k);
    record.add("layer", static_cast<int64_t>(i)).add("rows", s.rows);
    record.add("dropping_rows", s.dropping_rows).add("attention_sparsity", s.mean_captured_mass());
    record.add("dropped_mass", s.mean_dropped_mass()).add("entropy_bits", s.mean_entropy_bits());
    record.add("sink_mass", s.mean_sink_mass()).add("relative_error", s.mean_relative_error());
    record.add("bound_violations", s.bound_violations);
    record.add("max_bound_ratio", s.max_bound_ratio).add("placement", run.placement);
    json += record.str() + "\n";
  }
  return json;
}

std::string sparsity_plot(const StatsRun& run, const std::vector<LayerStats>& layers) {
  std::vector<std::string> labels;
  std::vector<double> values;
  for (size_t i = 0; i < layers.size(); ++i) {
    labels.push_back(fmt::format("{}", i));
    values.push_back(layers[i].mean_captured_mass());
  }
  PlotOptions plot{
      fmt::format("Attention sparsity, top-{} blocks of {} ({})", run.top_k, run.block_size,
                  std::filesystem::path(run.checkpoint).filename().string()),
      "layer", "full-attention mass in the selected blocks"};
  return bar_plot(labels, values, plot);
}

}  // namespace

int stats_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-eval stats", kAbout);
  line.required("--checkpoint", "PATH", "the checkpoint to measure")
      .option("--data", "GLOB", "shards to read (default: the data.val the model was trained with)")
      .option("--seq-len", "T", "tokens per window (default: the training data.seq_len)")
      .option("--batch", "B", "windows per forward pass (default 1)")
      .option("--max-batches", "N",
              "at most N batches (default 4; 0: every whole batch of the shards)")
      .option("--top-k", "N",
              "blocks per query, its own included\n"
              "(default: the training attention.top_k)")
      .option("--block-size", "N", "tokens per block (default: the training attention.block_size)")
      .option("--out", "PREFIX",
              "the results' path without .json and .svg (default <checkpoint>.stats)");
  placement_options(line).parse(args);
  StatsRun run;
  run.checkpoint = line.get("--checkpoint");
  LoadedModel loaded = load_placed_model(run.checkpoint, line);
  run.placement = placement_name(*loaded.model);
  const Config& trained = loaded.config;
  run.data = eval_data_glob(line, trained);
  run.seq_len = line.get_size("--seq-len", trained.get_int("data.seq_len"), 1);
  run.block_size = line.get_size("--block-size", trained.get_int("attention.block_size"), 1);
  run.top_k = line.get_size("--top-k", trained.get_int("attention.top_k"), 1);
  const int64_t batch = line.get_size("--batch", 1, 1);
  const int64_t max_batches = line.get_int("--max-batches", 4, 0);
  const std::string prefix = line.get("--out", run.checkpoint + ".stats");
  check_outputs("--out", {prefix + ".json", prefix + ".svg"},
                model_inputs(run.checkpoint, run.data));

  const std::vector<LayerStats> layers = shard_attention_stats(
      *loaded.model, run.data, run.seq_len, batch, max_batches, run.block_size, run.top_k);
  fmt::print(
      "attention statistics: {} rows per layer (query x head), {} tokens per window, "
      "top-{} blocks of {} tokens, full-attention forward on {}\n",
      layers.at(0).rows, run.seq_len, run.top_k, run.block_size, run.placement);
  print_table(layers);
  write_text_file(prefix + ".json", json_rows(run, layers));
  write_text_file(prefix + ".svg", sparsity_plot(run, layers));
  fmt::print("wrote {0}.json and {0}.svg\n", prefix);
  return 0;
}

}  // namespace ssa
