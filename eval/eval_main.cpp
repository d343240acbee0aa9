// ssa-eval: judge a checkpoint — validation loss and perplexity.
#include <fmt/format.h>

#include <cstdio>
#include <exception>

#include "core/command_line.h"
#include "eval/perplexity.h"
#include "eval/svg.h"
#include "train/log.h"
#include "train/restore.h"

using namespace ssa;

namespace {

constexpr const char* kUsage = R"(usage: ssa-eval --checkpoint PATH [--data GLOB] [--seq-len T] [--batch B]
                [--max-batches N] [--json PATH]

Prints the validation loss and perplexity of a checkpoint as a table, and writes them as JSON
(--json, default: next to the checkpoint, as <checkpoint>.eval.json).
  --data GLOB        shards to score (default: the data.val the model was trained with)
  --seq-len T        tokens per window (default: the training data.seq_len)
  --batch B          windows per forward pass (default 8)
  --max-batches N    at most N batches (default 0: every whole batch of the shards)
)";

int run(const std::vector<std::string>& args) {
  CommandLine line("ssa-eval", args,
                   {"--checkpoint", "--data", "--seq-len", "--batch", "--max-batches", "--json"},
                   {"--help"});
  if (line.flag("--help")) {
    fmt::print("{}", kUsage);
    return 0;
  }
  const std::string checkpoint = line.required("--checkpoint");
  LoadedModel loaded = load_model(checkpoint, Device::cpu);
  const std::string data = line.get("--data", loaded.config.get_string("data.val"));
  if (data.empty()) usage_error("the checkpoint names no data.val; pass --data GLOB");
  const int64_t seq_len = line.get_int("--seq-len", loaded.config.get_int("data.seq_len"), 1);
  PerplexityResult result = perplexity(*loaded.model, data, seq_len, line.get_int("--batch", 8, 1),
                                       line.get_int("--max-batches", 0, 0));
  fmt::print("{:<12} {:>10} {:>12} {:>12}\n", "attention", "loss", "perplexity", "tokens");
  fmt::print("{:<12} {:>10.4f} {:>12.3f} {:>12}\n", "full", result.loss, result.perplexity,
             result.tokens);
  JsonLine json;
  json.add("checkpoint", checkpoint).add("data", data).add("seq_len", seq_len);
  json.add("attention", std::string("full")).add("loss", result.loss);
  json.add("perplexity", result.perplexity).add("tokens", result.tokens);
  const std::string json_path = line.get("--json", checkpoint + ".eval.json");
  write_text_file(json_path, json.str() + "\n");
  fmt::print("wrote {}\n", json_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(arguments(argc, argv, 1));
  } catch (const UsageError& error) {
    fmt::print(stderr, "ssa-eval: {}\nrun 'ssa-eval --help' for usage\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    fmt::print(stderr, "ssa-eval: error: {}\n", error.what());
    return 1;
  }
}
