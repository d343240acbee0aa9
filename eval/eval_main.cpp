// ssa-eval: judge a checkpoint. Subcommands in eval/commands.h.
#include <fmt/format.h>

#include <cstdio>
#include <exception>

#include "core/command_line.h"
#include "eval/commands.h"

using namespace ssa;

namespace {

constexpr const char* kUsage = R"(usage: ssa-eval [COMMAND] --checkpoint PATH [options]   (ssa-eval COMMAND --help for each)

  ppl            perplexity under full attention and under sparse attention at several
                 top-k budgets (the default command)
  stats          per layer: attention sparsity (mass in the top-k blocks), entropy, sink mass,
                 full-vs-sparse error and a check of its bound
  long-context   perplexity at 1x, 2x, 4x the training length and passkey retrieval accuracy
  plot-log       loss curves of log.jsonl files as SVG
  grads          the loss and every parameter's gradient on one batch, as HDF5 (for the
                 PyTorch parity check, eval/reference/parity_torch.py)

Results are printed as a table and written as JSON (and SVG plots where the command makes them).
)";

int run(std::vector<std::string> args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    fmt::print("{}", kUsage);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0].starts_with("--") ? "ppl" : args[0];
  if (!args[0].starts_with("--")) args.erase(args.begin());
  if (command == "ppl") return perplexity_command(args);
  if (command == "stats") return stats_command(args);
  if (command == "long-context") return long_context_command(args);
  if (command == "plot-log") return plot_log_command(args);
  if (command == "grads") return grads_command(args);
  usage_error("unknown command '{}' (expected ppl, stats, long-context, plot-log or grads)",
              command);
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
