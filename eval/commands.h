#pragma once
// The subcommands of ssa-eval, one file each (eval/<name>_command.cpp). Each takes the
// arguments after its name and returns the exit code; its CommandLine (core/command_line.h)
// raises HelpRequested for --help and UsageError for a mistake.
#include <string>
#include <vector>

namespace ssa {

// ppl: perplexity under full attention and under sparse attention at a list of budgets.
int perplexity_command(const std::vector<std::string>& args);
// stats: per-layer attention statistics (captured mass, entropy, sink mass, error, bound).
int stats_command(const std::vector<std::string>& args);
// long-context: perplexity at 1x/2x/4x the training length and the passkey probe.
int long_context_command(const std::vector<std::string>& args);
// plot-log: loss curves of log.jsonl files as SVG.
int plot_log_command(const std::vector<std::string>& args);
// report: the paper-reproduction experiment's claims, tables and plots (eval/report.h).
int report_command(const std::vector<std::string>& args);
// grads: the loss and every parameter's gradient on one batch, for the PyTorch parity check.
int grads_command(const std::vector<std::string>& args);

}  // namespace ssa
