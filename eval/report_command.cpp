// ssa-eval report: docs/RESULTS.md of the paper-reproduction experiment (eval/report.h).
#include <fmt/format.h>

#include <filesystem>

#include "core/command_line.h"
#include "eval/commands.h"
#include "eval/outputs.h"
#include "eval/report.h"
#include "eval/svg.h"

namespace ssa {
namespace {

constexpr const char* kAbout =
    "The report of scripts/reproduce.sh: three models trained alike but for attention.mode,\n"
    "each directory holding run.json, log.jsonl, ppl.json, stats.json and long.json. Judges the\n"
    "SSA paper's claims (PASS or FAIL with the numbers) and writes OUT (markdown) with three\n"
    "SVG plots beside it: OUT_loss.svg, OUT_budget.svg, OUT_sparsity.svg (OUT less .md).";

std::string loss_plot(const std::vector<RunResults>& runs) {
  std::vector<Series> lines;
  for (const RunResults& run : runs) {
    Series line = series_of(run.log, "ce");
    line.label = run.name;
    lines.push_back(line);
  }
  return line_plot(lines, {"Training cross-entropy", "step", "cross-entropy (nats)"});
}

std::string budget_plot(const std::vector<RunResults>& runs) {
  std::vector<Series> lines;
  for (const RunResults& run : runs) {
    Series sparse{run.name + " sparse", {}, {}}, full{run.name + " full", {}, {}};
    const double full_ppl = full_perplexity(run);
    for (int64_t k : sparse_budgets(run)) {
      sparse.x.push_back(static_cast<double>(k));
      sparse.y.push_back(sparse_perplexity(run, k));
      full.x.push_back(static_cast<double>(k));
      full.y.push_back(full_ppl);
    }
    lines.push_back(sparse);
    lines.push_back(full);
  }
  return line_plot(lines, {"Perplexity vs sparsity budget", "top-k blocks per query", "perplexity",
                           true, false});
}

std::string sparsity_plot(const std::vector<RunResults>& runs) {
  std::vector<Series> lines;
  for (const RunResults& run : runs) {
    Series line = series_of(run.stats, "attention_sparsity", "layer");
    line.label = run.name;
    lines.push_back(line);
  }
  return line_plot(lines, {"Attention sparsity per layer (full-attention pass)", "layer",
                           "mass in the selected blocks"});
}

// The files read_run reads in each of `dirs`.
std::vector<Input> run_inputs(const std::vector<std::string>& dirs) {
  std::vector<Input> inputs;
  for (const std::string& dir : dirs)
    for (const char* name : kRunFiles)
      inputs.push_back({"run file", (std::filesystem::path(dir) / name).string()});
  return inputs;
}

}  // namespace

int report_command(const std::vector<std::string>& args) {
  CommandLine line("ssa-eval report", kAbout);
  line.required("--fa", "DIR", "the model trained with full attention")
      .required("--sa", "DIR", "the model trained with sparse attention only")
      .required("--ssa", "DIR", "the model trained with SSA")
      .option("--top-k", "N", "the budget the claims compare at (default 16)")
      .option("--out", "PATH", "the markdown file (default docs/RESULTS.md)")
      .parse(args);
  const std::filesystem::path out = line.get("--out", "docs/RESULTS.md");
  const std::string stem = out.stem().string();
  const std::vector<std::string> plots{stem + "_loss.svg", stem + "_budget.svg",
                                       stem + "_sparsity.svg"};
  const std::filesystem::path dir = out.parent_path();
  check_outputs("--out",
                {out.string(), (dir / plots[0]).string(), (dir / plots[1]).string(),
                 (dir / plots[2]).string()},
                run_inputs({line.get("--fa"), line.get("--sa"), line.get("--ssa")}));
  const std::vector<RunResults> runs{read_run("FA", line.get("--fa")),
                                     read_run("SA", line.get("--sa")),
                                     read_run("SSA", line.get("--ssa"))};
  const std::vector<Claim> claims =
      paper_claims(runs[0], runs[1], runs[2], line.get_size("--top-k", 16, 1));
  write_text_file((dir / plots[0]).string(), loss_plot(runs));
  write_text_file((dir / plots[1]).string(), budget_plot(runs));
  write_text_file((dir / plots[2]).string(), sparsity_plot(runs));
  write_text_file(out.string(), results_markdown(runs, claims, plots));
  for (const Claim& claim : claims)
    fmt::print("{:<9} {}: {}\n", claim.passed ? (*claim.passed ? "PASS" : "FAIL") : "reported",
               claim.statement, claim.numbers);
  fmt::print("wrote {} and its plots\n", out.string());
  return 0;
}

}  // namespace ssa
