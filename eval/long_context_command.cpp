// ssa-eval long-context: perplexity at multiples of the training length and the passkey probe,
// under full attention and under sparse attention.
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <sstream>

#include "core/command_line.h"
#include "eval/commands.h"
#include "eval/long_context.h"
#include "eval/outputs.h"
#include "eval/perplexity.h"
#include "eval/placement.h"
#include "eval/svg.h"
#include "train/log.h"
#include "train/restore.h"

namespace ssa {
namespace {

constexpr const char* kAbout =
    "At each factor times the training length (RoPE unchanged), under full attention and under\n"
    "sparse attention: perplexity, and passkey retrieval (filler text with \"The pass key is\n"
    "NNNNN\" at a depth, then the question; correct when the greedily decoded answer is the\n"
    "key). Writes PREFIX.json (one object per line) and PREFIX.svg (perplexity vs length\n"
    "factor).";

// The longest context evaluated, 2^24 tokens: the passkey probe builds its prompt whole and runs
// the model over it, and a full-attention pass over 2^24 tokens already takes hours on a GPU.
constexpr int64_t kMaxContextTokens = int64_t{1} << 24;

struct Mode {
  std::string name;
  ForwardOptions options;
  int64_t top_k;  // 0 for full attention
};

struct Settings {
  std::string checkpoint, data, prefix, placement;
  std::vector<int64_t> factors;
  std::vector<double> depths;
  int64_t seq_len = 0, max_batches = 0, trials = 0;
  uint64_t seed = 0;
  std::vector<Mode> modes;
};

std::vector<double> depth_list(const CommandLine& line) {
  std::vector<double> depths;
  std::istringstream items(line.get("--depths", "0.1,0.5,0.9"));
  for (std::string item; std::getline(items, item, ',');) {
    char* end = nullptr;
    const double depth = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(depth >= 0 && depth <= 1))
      usage_error("--depths: '{}' is not a fraction in [0, 1]", item);
    depths.push_back(depth);
  }
  if (depths.empty()) usage_error("--depths: expected a comma-separated list of fractions");
  return depths;
}

std::vector<Mode> attention_modes(const CommandLine& line, const Config& trained) {
  ForwardOptions full;
  full.block_size = line.get_size("--block-size", trained.get_int("attention.block_size"), 1);
  ForwardOptions sparse = full;
  sparse.path = AttentionPath::sparse;
  sparse.top_k = line.get_size("--top-k", trained.get_int("attention.top_k"), 1);
  return {{"full", full, 0}, {"sparse", sparse, sparse.top_k}};
}

// The checkpoint, the shards and the passkey prompts' tokenizer, when there is one.
std::vector<Input> inputs_of(const Settings& s, const CommandLine& line, const Config& trained) {
  std::vector<Input> inputs = model_inputs(s.checkpoint, s.data);
  inputs.push_back({"tokenizer", line.get("--tokenizer", trained.get_string("data.tokenizer"))});
  return inputs;
}

Settings settings_of(const CommandLine& line, const Config& trained) {
  Settings s;
  s.checkpoint = line.get("--checkpoint");
  s.data = eval_data_glob(line, trained);
  s.prefix = line.get("--out", s.checkpoint + ".long");
  check_outputs("--out", {s.prefix + ".json", s.prefix + ".svg"}, inputs_of(s, line, trained));
  s.factors = line.get_int_list("--factors", {1, 2, 4}, 1, CommandLine::kMaxSize);
  s.depths = depth_list(line);
  s.seq_len = trained.get_int("data.seq_len");
  for (int64_t factor : s.factors)
    if (factor > kMaxContextTokens / s.seq_len)
      usage_error(
          "--factors: {} x the training length {} is more than the {} tokens (2^24) "
          "long-context evaluates",
          factor, s.seq_len, kMaxContextTokens);
  s.max_batches = line.get_int("--max-batches", 0, 0);
  s.trials = line.get_int("--passkey-trials", 5, 0);
  s.seed = static_cast<uint64_t>(line.get_int("--seed", 1, 0));
  s.modes = attention_modes(line, trained);
  return s;
}

// The tokenizer for the passkey prompts, or none (with a note saying why).
std::optional<Tokenizer> passkey_tokenizer(const CommandLine& line, const Config& trained,
                                           int64_t vocab_size) {
  std::string path = line.get("--tokenizer", "");
  if (path.empty()) {
    path = trained.get_string("data.tokenizer");
    if (path.empty() || !std::filesystem::exists(path)) {
      fmt::print("passkey probe skipped: {}; pass --tokenizer PATH\n",
                 path.empty() ? "the checkpoint names no data.tokenizer"
                              : fmt::format("its data.tokenizer {} does not exist", path));
      return std::nullopt;
    }
  }
  return Tokenizer::load_for_model(path, vocab_size);
}

JsonLine row_of(const Settings& s, const char* kind, int64_t factor, const Mode& mode) {
  JsonLine row;
  row.add("kind", std::string(kind)).add("checkpoint", s.checkpoint).add("factor", factor);
  row.add("seq_len", factor * s.seq_len).add("attention", mode.name).add("top_k", mode.top_k);
  row.add("block_size", mode.options.block_size).add("placement", s.placement);
  return row;
}

std::string top_k_text(const Mode& mode) {
  return mode.top_k > 0 ? fmt::format("{}", mode.top_k) : "-";
}

// Scores one factor under one mode (NaN where no shard holds a window that long), prints the
// row and adds its JSON row to `json`; the perplexity.
double perplexity_row(Decoder& model, const Settings& s, int64_t factor, const Mode& mode,
                      int64_t longest, std::string& json) {
  const int64_t length = factor * s.seq_len;
  const bool fits = longest > length;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const PerplexityResult result =
      fits ? perplexity(model, s.data, length, 1, s.max_batches, mode.options)
           : PerplexityResult{nan, nan, 0};
  fmt::print("{:>6} {:>8} {:<10} {:>6} {:>10.4f} {:>12.3f} {:>10}\n", factor, length, mode.name,
             top_k_text(mode), result.loss, result.perplexity, result.tokens);
  JsonLine row = row_of(s, "ppl", factor, mode).add("data", s.data);
  row.add("loss", result.loss).add("perplexity", result.perplexity).add("tokens", result.tokens);
  if (!fits)
    row.add("skipped",
            fmt::format("no shard holds {} tokens (the longest holds {})", length + 1, longest));
  json += row.str() + "\n";
  return result.perplexity;
}

// Scores every factor and mode; the points of one series per mode.
std::vector<Series> perplexity_rows(Decoder& model, const Settings& s, std::string& json) {
  const int64_t longest = longest_shard_tokens(s.data, model.config().vocab_size);
  std::vector<Series> lines;
  for (const Mode& mode : s.modes) lines.push_back({mode.name, {}, {}});
  fmt::print("perplexity of {}\n{:>6} {:>8} {:<10} {:>6} {:>10} {:>12} {:>10}\n", s.data, "factor",
             "tokens", "attention", "top_k", "loss", "perplexity", "scored");
  for (int64_t factor : s.factors) {
    for (size_t m = 0; m < s.modes.size(); ++m) {
      lines[m].x.push_back(static_cast<double>(factor));
      lines[m].y.push_back(perplexity_row(model, s, factor, s.modes[m], longest, json));
    }
    if (longest <= factor * s.seq_len)
      fmt::print(
          "       skipped: a window of {} tokens needs {} and no shard holds that many "
          "(the longest holds {})\n",
          factor * s.seq_len, factor * s.seq_len + 1, longest);
  }
  return lines;
}

// Runs the probe for every factor and depth, the same prompts under each mode; prints each row
// and adds the JSON rows to `json`.
void passkey_rows(Decoder& model, const Tokenizer& tokenizer, const Settings& s,
                  std::string& json) {
  Rng rng(s.seed);
  fmt::print(
      "\npasskey retrieval, {} trial(s) per row\n{:>6} {:>8} {:<10} {:>6} {:>6} {:>8} "
      "{:>9}\n",
      s.trials, "factor", "tokens", "attention", "top_k", "depth", "correct", "accuracy");
  for (int64_t factor : s.factors) {
    const int64_t tokens = factor * s.seq_len;
    for (double depth : s.depths) {
      std::vector<int64_t> correct(s.modes.size(), 0);
      int64_t prompt_tokens = 0;
      for (int64_t trial = 0; trial < s.trials; ++trial) {
        const PasskeyPrompt prompt = passkey_prompt(tokenizer, tokens, depth, draw_passkey(rng));
        prompt_tokens = static_cast<int64_t>(prompt.ids.size());
        if (prompt_tokens > tokens) break;  // the key sentences and the question alone
        for (size_t m = 0; m < s.modes.size(); ++m)
          correct[m] += passkey_correct(
              passkey_answer(model, tokenizer, prompt, s.modes[m].options), prompt.key);
      }
      const bool fits = prompt_tokens <= tokens;
      const std::string skipped = fmt::format(
          "the key sentences and the question take {} tokens, more than {}", prompt_tokens, tokens);
      for (size_t m = 0; m < s.modes.size(); ++m) {
        const double accuracy =
            fits ? static_cast<double>(correct[m]) / static_cast<double>(s.trials)
                 : std::numeric_limits<double>::quiet_NaN();
        fmt::print("{:>6} {:>8} {:<10} {:>6} {:>6.2f} {:>8} {:>9.2f}\n", factor, tokens,
                   s.modes[m].name, top_k_text(s.modes[m]), depth,
                   fits ? fmt::format("{}/{}", correct[m], s.trials) : "-", accuracy);
        JsonLine row = row_of(s, "passkey", factor, s.modes[m]).add("depth", depth);
        row.add("trials", s.trials).add("correct", correct[m]).add("accuracy", accuracy);
        if (!fits) row.add("skipped", skipped);
        json += row.str() + "\n";
      }
      if (!fits) fmt::print("       skipped: {}\n", skipped);
    }
  }
}

}  // namespace

int long_context_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-eval long-context", kAbout);
  line.required("--checkpoint", "PATH", "the checkpoint to score")
      .option("--data", "GLOB",
              "shards to score (default: the data.val the model was trained with);\n"
              "a length that no shard holds a window of is reported as skipped")
      .option("--factors", "LIST",
              "multiples of the training data.seq_len, comma-separated (default 1,2,4);\n"
              "each times data.seq_len at most 2^24 = 16777216 tokens (a longer pass\n"
              "would take days, and its passkey prompt gigabytes)")
      .option("--top-k", "N",
              "sparse path: blocks per query (default: the training attention.top_k)")
      .option("--block-size", "N", "tokens per block (default: the training attention.block_size)")
      .option("--max-batches", "N",
              "at most N windows per length, one window per batch (default 0: all)")
      .option("--passkey-trials", "N",
              "prompts per factor and depth, each with its own key (default 5; 0: none)")
      .option("--depths", "LIST",
              "where the key sits in the filler, fractions of it (default 0.1,0.5,0.9)")
      .option("--tokenizer", "PATH",
              "default: the data.tokenizer the model was trained with; without one,\n"
              "the passkey probe is skipped")
      .option("--seed", "S", "seed of the keys (default 1)")
      .option("--out", "PREFIX",
              "the results' path without .json and .svg (default <checkpoint>.long)");
  placement_options(line).parse(args);
  LoadedModel loaded = load_placed_model(line.get("--checkpoint"), line);
  Settings s = settings_of(line, loaded.config);
  s.placement = placement_name(*loaded.model);
  fmt::print("on {}\n", s.placement);
  const std::optional<Tokenizer> tokenizer =
      passkey_tokenizer(line, loaded.config, loaded.model->config().vocab_size);
  std::string json;
  const std::vector<Series> lines = perplexity_rows(*loaded.model, s, json);
  if (tokenizer && s.trials > 0) passkey_rows(*loaded.model, *tokenizer, s, json);
  write_text_file(s.prefix + ".json", json);
  PlotOptions plot{fmt::format("Perplexity vs context length ({})",
                               std::filesystem::path(s.checkpoint).filename().string()),
                   fmt::format("context length (x the training length, {} tokens)", s.seq_len),
                   "perplexity", true, false};
  write_text_file(s.prefix + ".svg", line_plot(lines, plot));
  fmt::print("wrote {0}.json and {0}.svg\n", s.prefix);
  return 0;
}

}  // namespace ssa
