#pragma once
// The report of the paper-reproduction experiment (scripts/reproduce.sh): three models trained
// alike but for attention.mode — FA (full), SA (sparse), SSA (ssa) — each evaluated with
// ssa-eval ppl, stats and long-context. Reads each run's directory, judges the SSA paper's
// claims on the numbers and writes the tables; docs/REPRODUCE.md says what each claim means.
#include <optional>
#include <string>
#include <vector>

#include "eval/jsonl.h"

namespace ssa {

// One model's files: DIR/run.json (what reproduce.sh ran: one object), DIR/log.jsonl
// (ssa-train's log), DIR/ppl.json, DIR/stats.json, DIR/long.json (the eval outputs).
struct RunResults {
  std::string name, dir;
  JsonRecord meta;
  std::vector<JsonRecord> log, ppl, stats, long_context;
};

// The files of a run's directory, those named above.
inline constexpr const char* kRunFiles[] = {"run.json", "log.jsonl", "ppl.json", "stats.json",
                                            "long.json"};

// Reads the run in `dir`; a missing file is an error naming it.
RunResults read_run(const std::string& name, const std::string& dir);

// Perplexity under full attention, and under sparse attention at top_k (an error naming the
// file when the run has no such row).
double full_perplexity(const RunResults& run);
double sparse_perplexity(const RunResults& run, int64_t top_k);
// The top_k of the run's sparse perplexity rows, ascending.
std::vector<int64_t> sparse_budgets(const RunResults& run);
// The mean over layers of the captured mass (stats at the run's top_k, full-attention pass).
double mean_sparsity(const RunResults& run);

struct Claim {
  std::string statement;
  std::optional<bool> passed;  // none: reported without a pass bar
  std::string numbers;
};

// The paper's claims 1-5 on FA, SA and SSA at `top_k`, and the long-context figures (6).
std::vector<Claim> paper_claims(const RunResults& fa, const RunResults& sa, const RunResults& ssa,
                                int64_t top_k);

// docs/RESULTS.md's text: claims, tables and the run details; `plots` are the SVG file names
// (loss curves, perplexity vs budget, sparsity per layer) next to it.
std::string results_markdown(const std::vector<RunResults>& runs, const std::vector<Claim>& claims,
                             const std::vector<std::string>& plots);

}  // namespace ssa
