// ssa-generate: continue a prompt with a checkpoint's model.
#include <fmt/format.h>

#include <cstdio>
#include <exception>

#include "core/command_line.h"
#include "data/tokenizer.h"
#include "models/sampling.h"
#include "train/restore.h"

using namespace ssa;

namespace {

constexpr const char* kUsage = R"(usage: ssa-generate --checkpoint PATH [--prompt TEXT] [--tokens N] [--temperature X]
                    [--sample-top-k K] [--seed S] [--tokenizer PATH]
                    [--attention full|sparse] [--top-k N] [--block-size N] [--no-cache]

Prints the prompt followed by N sampled tokens (default 100). Keys and values of the text so
far are cached per layer, so each new token costs one position's forward pass.
  --prompt TEXT        text to continue (default: start a new document)
  --temperature X      0 is greedy (default 0.8)
  --sample-top-k K     sample among the K likeliest tokens; 0: all (default 40)
  --seed S             sampling seed (default 1)
  --tokenizer PATH     default: the data.tokenizer the model was trained with
  --attention MODE     full (default) or sparse: each token reads only its top-k blocks
  --top-k N            sparse: blocks per token, its own included (default: the training
                       attention.top_k)
  --block-size N       sparse: tokens per block (default: the training attention.block_size)
  --no-cache           recompute the whole text for every new token (same tokens, slower;
                       for checking the cache)
)";

AttentionPath attention_path(const std::string& name) {
  if (name == "full") return AttentionPath::full;
  if (name == "sparse") return AttentionPath::sparse;
  usage_error("--attention {}: expected full or sparse", name);
}

ForwardOptions attention_options(const CommandLine& line, const Config& trained) {
  ForwardOptions options;
  options.path = attention_path(line.get("--attention", "full"));
  options.top_k = line.get_int("--top-k", trained.get_int("attention.top_k"), 1);
  options.block_size = line.get_int("--block-size", trained.get_int("attention.block_size"), 1);
  return options;
}

std::vector<int32_t> prompt_ids(const Tokenizer& tokenizer, const std::string& prompt) {
  std::vector<int32_t> ids{static_cast<int32_t>(Tokenizer::kEndOfText)};
  for (uint32_t id : tokenizer.encode(prompt)) ids.push_back(static_cast<int32_t>(id));
  return ids;
}

int run(const std::vector<std::string>& args) {
  CommandLine line("ssa-generate", args,
                   {"--checkpoint", "--prompt", "--tokens", "--temperature", "--sample-top-k",
                    "--seed", "--tokenizer", "--attention", "--top-k", "--block-size"},
                   {"--help", "--no-cache"});
  if (line.flag("--help")) {
    fmt::print("{}", kUsage);
    return 0;
  }
  LoadedModel loaded = load_model(line.required("--checkpoint"), Device::cpu);
  const ForwardOptions attention = attention_options(line, loaded.config);
  const std::string tokenizer_path =
      line.get("--tokenizer", loaded.config.get_string("data.tokenizer"));
  if (tokenizer_path.empty())
    usage_error("the checkpoint names no data.tokenizer; pass --tokenizer PATH");
  Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
  const std::string prompt = line.get("--prompt", "");
  std::vector<int32_t> ids = prompt_ids(tokenizer, prompt);
  const size_t prompt_length = ids.size();
  SamplingOptions options{line.get_double("--temperature", 0.8, 0),
                          line.get_int("--sample-top-k", 40, 0), tokenizer.vocab_size()};
  Rng rng(static_cast<uint64_t>(line.get_int("--seed", 1, 0)));
  ids = generate(*loaded.model, ids, line.get_int("--tokens", 100, 0), options, rng, attention,
                 !line.flag("--no-cache"));
  std::vector<uint32_t> continuation(ids.begin() + static_cast<int64_t>(prompt_length), ids.end());
  fmt::print("{}{}\n", prompt, tokenizer.decode(continuation));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(arguments(argc, argv, 1));
  } catch (const UsageError& error) {
    fmt::print(stderr, "ssa-generate: {}\nrun 'ssa-generate --help' for usage\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    fmt::print(stderr, "ssa-generate: error: {}\n", error.what());
    return 1;
  }
}
