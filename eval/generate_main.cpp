// ssa-generate: continue a prompt with a checkpoint's model.
#include <fmt/format.h>

#include "core/command_line.h"
#include "data/tokenizer.h"
#include "eval/placement.h"
#include "models/sampling.h"
#include "train/restore.h"

using namespace ssa;

namespace {

constexpr const char* kAbout =
    "Prints the prompt followed by N sampled tokens. Keys and values of the text so far are\n"
    "cached per layer, so each new token costs one position's forward pass.";

AttentionPath attention_path(const std::string& name) {
  if (name == "full") return AttentionPath::full;
  if (name == "sparse") return AttentionPath::sparse;
  usage_error("--attention {}: expected full or sparse", name);
}

ForwardOptions attention_options(const CommandLine& line, const Config& trained) {
  ForwardOptions options;
  options.path = attention_path(line.get("--attention", "full"));
  options.top_k = line.get_size("--top-k", trained.get_int("attention.top_k"), 1);
  options.block_size = line.get_size("--block-size", trained.get_int("attention.block_size"), 1);
  return options;
}

std::vector<int32_t> prompt_ids(const Tokenizer& tokenizer, const std::string& prompt) {
  std::vector<int32_t> ids{static_cast<int32_t>(Tokenizer::kEndOfText)};
  for (uint32_t id : tokenizer.encode(prompt)) ids.push_back(static_cast<int32_t>(id));
  return ids;
}

// --tokenizer, or the data.tokenizer of the checkpoint's run (named as such when it is gone).
Tokenizer model_tokenizer(const CommandLine& line, const Config& trained) {
  const int64_t vocab_size = trained.get_int("model.vocab_size");
  if (line.has("--tokenizer")) {
    const std::string path = line.get("--tokenizer");
    if (path.empty()) usage_error("--tokenizer is empty; pass the tokenizer's path");
    return Tokenizer::load_for_model(path, vocab_size);
  }
  const std::string path = trained.get_string("data.tokenizer");
  if (path.empty()) usage_error("the checkpoint names no data.tokenizer; pass --tokenizer PATH");
  try {
    return Tokenizer::load_for_model(path, vocab_size);
  } catch (const Error& error) {
    fail("{} (the checkpoint's data.tokenizer; pass --tokenizer PATH for one elsewhere)",
         error.what());
  }
}

int run(const std::vector<std::string>& args) {
  CommandLine line("ssa-generate", kAbout);
  line.required("--checkpoint", "PATH", "the checkpoint whose model continues the prompt")
      .option("--prompt", "TEXT", "text to continue (default: start a new document)")
      .option("--tokens", "N", "tokens to sample (default 100)")
      .option("--temperature", "X", "0 is greedy (default 0.8)")
      .option("--sample-top-k", "K", "sample among the K likeliest tokens; 0: all (default 40)")
      .option("--seed", "S", "sampling seed (default 1)")
      .option("--tokenizer", "PATH", "default: the data.tokenizer the model was trained with")
      .option("--attention", "MODE",
              "full (default) or sparse: each token reads only its top-k blocks")
      .option("--top-k", "N",
              "sparse: blocks per token, its own included\n"
              "(default: the training attention.top_k)")
      .option("--block-size", "N",
              "sparse: tokens per block (default: the training attention.block_size)")
      .flag("--no-cache",
            "recompute the whole text for every new token (same tokens, slower;\n"
            "for checking the cache)");
  placement_options(line).parse(args);
  LoadedModel loaded = load_placed_model(line.get("--checkpoint"), line);
  const ForwardOptions attention = attention_options(line, loaded.config);
  const Tokenizer tokenizer = model_tokenizer(line, loaded.config);
  const std::string prompt = line.get("--prompt", "");
  std::vector<int32_t> ids = prompt_ids(tokenizer, prompt);
  const size_t prompt_length = ids.size();
  SamplingOptions options{line.get_double("--temperature", 0.8, 0),
                          line.get_int("--sample-top-k", 40, 0), tokenizer.vocab_size()};
  Rng rng(static_cast<uint64_t>(line.get_int("--seed", 1, 0)));
  ids = generate(*loaded.model, ids, line.get_size("--tokens", 100, 0), options, rng, attention,
                 !line.has("--no-cache"));
  std::vector<uint32_t> continuation(ids.begin() + static_cast<int64_t>(prompt_length), ids.end());
  fmt::print("{}{}\n", prompt, tokenizer.decode(continuation));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_tool("ssa-generate", [&] { return run(arguments(argc, argv, 1)); });
}
