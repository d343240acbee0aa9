// ssa-eval plot-log: curves of training logs (log.jsonl) as one SVG line plot.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <sstream>

#include "core/command_line.h"
#include "eval/commands.h"
#include "eval/jsonl.h"
#include "eval/outputs.h"
#include "eval/svg.h"

namespace ssa {
namespace {

constexpr const char* kAbout =
    "One line per log and key (the logged value against the step), labelled by the log's\n"
    "directory name and the key; a log must hold at least one of the keys.";

std::vector<std::string> key_list(const CommandLine& line) {
  std::vector<std::string> keys;
  std::istringstream items(line.get("--keys", "loss,val_loss"));
  for (std::string key; std::getline(items, key, ',');)
    if (!key.empty()) keys.push_back(key);
  if (keys.empty()) usage_error("--keys: expected a comma-separated list of logged keys");
  return keys;
}

// The name of the directory that holds `log` (the run's out_dir).
std::string run_name(const std::string& log) {
  return std::filesystem::absolute(log).parent_path().filename().string();
}

// One series per key that `log` holds a (step, value) of; none at all is an error.
std::vector<Series> curves_of(const std::string& log, const std::vector<std::string>& keys) {
  const std::vector<JsonRecord> records = read_jsonl(log);
  std::vector<Series> curves;
  for (const std::string& key : keys) {
    Series curve = series_of(records, key);
    if (curve.x.empty()) continue;
    curve.label = run_name(log) + " " + key;
    curves.push_back(std::move(curve));
  }
  if (curves.empty())
    fail("{}: no record holds a step and a number under the key {}", log, fmt::join(keys, " or "));
  return curves;
}

}  // namespace

int plot_log_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-eval plot-log", kAbout);
  line.positionals("LOG.jsonl", "the training logs to draw")
      .option("--out", "FILE.svg", "default: loss.svg beside the first log")
      .option("--keys", "LIST", "logged values, comma-separated (default loss,val_loss)")
      .parse(args);
  const std::vector<std::string>& logs = line.positional();
  if (logs.empty()) usage_error("expected at least one LOG.jsonl");
  const std::vector<std::string> keys = key_list(line);
  std::vector<Series> curves;
  for (const std::string& log : logs)
    for (Series& curve : curves_of(log, keys)) curves.push_back(std::move(curve));
  const std::string out =
      line.get("--out", (std::filesystem::path(logs[0]).parent_path() / "loss.svg").string());
  std::vector<Input> inputs;
  for (const std::string& log : logs) inputs.push_back({"log", log});
  check_outputs("--out", {out}, inputs);
  PlotOptions plot{"Training curves", "step", fmt::format("{}", fmt::join(keys, ", ")), false,
                   false};
  write_text_file(out, line_plot(curves, plot));
  fmt::print("wrote {} ({} curves)\n", out, curves.size());
  return 0;
}

}  // namespace ssa
