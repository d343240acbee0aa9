// ssa-eval: judge a checkpoint. Subcommands in eval/commands.h.
#include "core/command_line.h"
#include "eval/commands.h"

using namespace ssa;

namespace {

constexpr const char* kAbout =
    "Judges a checkpoint. Results are printed as a table and written as JSON (and SVG plots\n"
    "where the command makes them). Without a COMMAND (options first), ppl runs.";

const std::vector<Subcommand> kCommands{
    {"ppl",
     "perplexity under full attention and under sparse attention at several\n"
     "top-k budgets (the default command)",
     perplexity_command},
    {"stats",
     "per layer: attention sparsity (mass in the top-k blocks), entropy, sink\n"
     "mass, full-vs-sparse error and a check of its bound",
     stats_command},
    {"long-context", "perplexity at 1x, 2x, 4x the training length and passkey retrieval\naccuracy",
     long_context_command},
    {"plot-log", "loss curves of log.jsonl files as SVG", plot_log_command},
    {"report",
     "the paper-reproduction experiment (scripts/reproduce.sh): the SSA paper's claims\n"
     "judged on three runs, with tables and plots",
     report_command},
    {"grads",
     "the loss and every parameter's gradient on one batch, as HDF5 (for the\n"
     "PyTorch parity check, eval/reference/parity_torch.py)",
     grads_command},
};

int run(std::vector<std::string> args) {
  if (!args.empty() && args[0].starts_with("--") && args[0] != "--help")
    args.insert(args.begin(), "ppl");
  return run_subcommand("ssa-eval", kAbout, kCommands, args);
}

}  // namespace

int main(int argc, char** argv) {
  return run_tool("ssa-eval", [&] { return run(arguments(argc, argv, 1)); });
}
