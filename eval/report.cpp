#include "eval/report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"

namespace ssa {
namespace {

std::vector<JsonRecord> read_file(const std::string& dir, const std::string& name) {
  const std::string path = fmt::format("{}/{}", dir, name);
  if (!std::filesystem::exists(path)) fail("report: {} is missing", path);
  return read_jsonl(path);
}

const double* number_at(const JsonRecord& record, const std::string& key) {
  const auto found = record.find(key);
  return found == record.end() ? nullptr : std::get_if<double>(&found->second);
}

std::string text_at(const JsonRecord& record, const std::string& key) {
  const auto found = record.find(key);
  if (found == record.end()) return "";
  if (const auto* text = std::get_if<std::string>(&found->second)) return *text;
  if (const auto* number = std::get_if<double>(&found->second)) return fmt::format("{:g}", *number);
  return "";
}

// The perplexity of the ppl row with this attention and top_k.
double perplexity_of(const RunResults& run, const std::string& attention, int64_t top_k) {
  for (const JsonRecord& row : run.ppl) {
    const double* k = number_at(row, "top_k");
    const double* ppl = number_at(row, "perplexity");
    if (text_at(row, "attention") == attention && k && *k == static_cast<double>(top_k) && ppl)
      return *ppl;
  }
  fail("report: {}/ppl.json has no {} row{} with a perplexity", run.dir, attention,
       top_k > 0 ? fmt::format(" at top_k {}", top_k) : "");
}

std::string verdict(const std::optional<bool>& passed) {
  return passed ? (*passed ? "**PASS**" : "**FAIL**") : "reported";
}

Claim sparse_gap_claim(const RunResults& fa, const RunResults& ssa, int64_t top_k) {
  auto gap = [&](const RunResults& run) {
    return sparse_perplexity(run, top_k) - full_perplexity(run);
  };
  return {fmt::format("FA's gap between sparse (top_k {}) and full inference perplexity is larger "
                      "than SSA's",
                      top_k),
          gap(fa) > gap(ssa),
          fmt::format("FA {:.3f} − {:.3f} = {:.3f}; SSA {:.3f} − {:.3f} = {:.3f}",
                      sparse_perplexity(fa, top_k), full_perplexity(fa), gap(fa),
                      sparse_perplexity(ssa, top_k), full_perplexity(ssa), gap(ssa))};
}

Claim sparse_inference_claim(const RunResults& sa, const RunResults& ssa, int64_t top_k) {
  const double a = sparse_perplexity(sa, top_k), s = sparse_perplexity(ssa, top_k);
  return {fmt::format("SSA's sparse-inference perplexity (top_k {}) ≤ SA's", top_k), s <= a,
          fmt::format("SSA {:.3f}, SA {:.3f}", s, a)};
}

Claim full_inference_claim(const RunResults& fa, const RunResults& ssa) {
  const double f = full_perplexity(fa), s = full_perplexity(ssa);
  return {"SSA's full-inference perplexity is within 2% of FA's (at most 1.02 × FA's)",
          s <= 1.02 * f, fmt::format("SSA {:.3f}, FA {:.3f} ({:+.2f}%)", s, f, 100 * (s / f - 1))};
}

Claim sparsity_claim(const RunResults& fa, const RunResults& sa, const RunResults& ssa,
                     int64_t top_k) {
  const double f = mean_sparsity(fa), a = mean_sparsity(sa), s = mean_sparsity(ssa);
  return {fmt::format("SSA's attention sparsity (mass in the top-{} blocks under full attention, "
                      "mean over layers) is the highest of the three",
                      top_k),
          s > f && s > a, fmt::format("SSA {:.4f}, FA {:.4f}, SA {:.4f}", s, f, a)};
}

Claim monotone_claim(const RunResults& ssa) {
  const std::vector<int64_t> budgets = sparse_budgets(ssa);
  bool falls = budgets.size() >= 2;
  std::string numbers;
  double previous = 0;
  for (size_t i = 0; i < budgets.size(); ++i) {
    const double ppl = sparse_perplexity(ssa, budgets[i]);
    if (i > 0 && ppl > previous) falls = false;
    numbers += fmt::format("{}{}: {:.3f}", i > 0 ? ", " : "", budgets[i], ppl);
    previous = ppl;
  }
  return {"SSA's sparse-inference perplexity falls monotonically as top_k grows", falls,
          fmt::format("top_k {}", numbers)};
}

// A markdown table's header separator line for `columns` columns.
std::string separator(size_t columns) {
  std::string line = "|";
  for (size_t i = 0; i < columns; ++i) line += "---|";
  line += "\n";
  return line;
}

std::string claims_table(const std::vector<Claim>& claims) {
  std::string text = "| # | claim | result | numbers |\n|---|---|---|---|\n";
  for (size_t i = 0; i < claims.size(); ++i)
    text += fmt::format("| {} | {} | {} | {} |\n", i + 1, claims[i].statement,
                        verdict(claims[i].passed), claims[i].numbers);
  return text;
}

std::string perplexity_table(const std::vector<RunResults>& runs) {
  const std::vector<int64_t> budgets = sparse_budgets(runs.at(0));
  std::string text = "| model | full |";
  for (int64_t k : budgets) text += fmt::format(" top-{} |", k);
  text += fmt::format("\n{}", separator(2 + budgets.size()));
  for (const RunResults& run : runs) {
    text += fmt::format("| {} | {:.3f} |", run.name, full_perplexity(run));
    for (int64_t k : budgets) text += fmt::format(" {:.3f} |", sparse_perplexity(run, k));
    text += "\n";
  }
  return text;
}

std::string sparsity_table(const std::vector<RunResults>& runs) {
  const size_t layers = runs.at(0).stats.size();
  std::string text = "| model | mean |";
  for (size_t i = 0; i < layers; ++i) text += fmt::format(" layer {} |", i);
  text += fmt::format("\n{}", separator(2 + layers));
  for (const RunResults& run : runs) {
    text += fmt::format("| {} | {:.4f} |", run.name, mean_sparsity(run));
    for (const JsonRecord& row : run.stats) {
      const double* value = number_at(row, "attention_sparsity");
      text += value ? fmt::format(" {:.4f} |", *value) : " - |";
    }
    text += "\n";
  }
  return text;
}

// One row per key of the runs' run.json files (their union), one column per run.
std::string runs_table(const std::vector<RunResults>& runs) {
  std::set<std::string> keys;
  std::string text = "| |";
  for (const RunResults& run : runs) {
    text += fmt::format(" {} |", run.name);
    for (const auto& [key, value] : run.meta) keys.insert(key);
  }
  text += fmt::format("\n{}", separator(1 + runs.size()));
  for (const std::string& key : keys) {
    text += fmt::format("| {} |", key);
    for (const RunResults& run : runs) text += fmt::format(" {} |", text_at(run.meta, key));
    text += "\n";
  }
  return text;
}

// The last logged value of `key` in the run's log, as text ("-" when never logged).
std::string last_logged(const RunResults& run, const std::string& key) {
  for (auto it = run.log.rbegin(); it != run.log.rend(); ++it)
    if (const double* value = number_at(*it, key)) return fmt::format("{:.4g}", *value);
  return "-";
}

std::string training_table(const std::vector<RunResults>& runs) {
  std::string text = fmt::format(
      "| model | last step | last ce | val ppl (full) | val ppl (sparse) | tokens/s |\n{}",
      separator(6));
  for (const RunResults& run : runs)
    text += fmt::format("| {} | {} | {} | {} | {} | {} |\n", run.name, last_logged(run, "step"),
                        last_logged(run, "ce"), last_logged(run, "val_ppl"),
                        last_logged(run, "val_ppl_sparse"), last_logged(run, "tokens_per_s"));
  return text;
}

// Per run and attention: perplexity at each length factor, then passkey accuracy per factor
// (over its depths).
// " 12.345 |": the mean of `key` over the run's long-context rows of this kind, attention and
// length factor (the passkey rows: one per depth); " - |" where there is none.
std::string long_context_cell(const RunResults& run, const std::string& kind,
                              const std::string& attention, double factor) {
  const std::string key = kind == "ppl" ? "perplexity" : "accuracy";
  double sum = 0;
  int count = 0;
  for (const JsonRecord& row : run.long_context) {
    const double* at_factor = number_at(row, "factor");
    const double* value = number_at(row, key);
    if (!at_factor || *at_factor != factor || !value || text_at(row, "kind") != kind ||
        text_at(row, "attention") != attention)
      continue;
    sum += *value;
    ++count;
  }
  return count ? fmt::format(" {:.3f} |", sum / count) : " - |";
}

std::string long_context_table(const std::vector<RunResults>& runs) {
  std::set<double> factors;
  for (const JsonRecord& row : runs.at(0).long_context)
    if (const double* factor = number_at(row, "factor")) factors.insert(*factor);
  std::string text = "| model | attention |";
  for (double f : factors) text += fmt::format(" ppl {}× |", f);
  for (double f : factors) text += fmt::format(" passkey {}× |", f);
  text += fmt::format("\n{}", separator(2 + 2 * factors.size()));
  for (const RunResults& run : runs)
    for (const char* attention : {"full", "sparse"}) {
      text += fmt::format("| {} | {} |", run.name, attention);
      for (const char* kind : {"ppl", "passkey"})
        for (double f : factors) text += long_context_cell(run, kind, attention, f);
      text += "\n";
    }
  return text;
}

}  // namespace

RunResults read_run(const std::string& name, const std::string& dir) {
  RunResults run{name, dir, {}, {}, {}, {}, {}};
  const std::vector<JsonRecord> meta = read_file(dir, "run.json");
  if (meta.empty()) fail("report: {}/run.json holds no object", dir);
  run.meta = meta.front();
  run.log = read_file(dir, "log.jsonl");
  run.ppl = read_file(dir, "ppl.json");
  run.stats = read_file(dir, "stats.json");
  run.long_context = read_file(dir, "long.json");
  return run;
}

std::vector<int64_t> sparse_budgets(const RunResults& run) {
  std::set<int64_t> budgets;
  for (const JsonRecord& row : run.ppl)
    if (const double* k = number_at(row, "top_k"); k && text_at(row, "attention") == "sparse")
      budgets.insert(static_cast<int64_t>(*k));
  return {budgets.begin(), budgets.end()};
}

double full_perplexity(const RunResults& run) { return perplexity_of(run, "full", 0); }

double sparse_perplexity(const RunResults& run, int64_t top_k) {
  return perplexity_of(run, "sparse", top_k);
}

double mean_sparsity(const RunResults& run) {
  double sum = 0;
  int64_t layers = 0;
  for (const JsonRecord& row : run.stats)
    if (const double* value = number_at(row, "attention_sparsity")) {
      sum += *value;
      ++layers;
    }
  if (layers == 0) fail("report: {}/stats.json has no attention_sparsity", run.dir);
  return sum / static_cast<double>(layers);
}

std::vector<Claim> paper_claims(const RunResults& fa, const RunResults& sa, const RunResults& ssa,
                                int64_t top_k) {
  return {sparse_gap_claim(fa, ssa, top_k),
          sparse_inference_claim(sa, ssa, top_k),
          full_inference_claim(fa, ssa),
          sparsity_claim(fa, sa, ssa, top_k),
          monotone_claim(ssa),
          {"Long context: perplexity at 2× and 4× the training length, and passkey accuracy",
           std::nullopt, "the long-context table below"}};
}

std::string results_markdown(const std::vector<RunResults>& runs, const std::vector<Claim>& claims,
                             const std::vector<std::string>& plots) {
  const int passed = static_cast<int>(
      std::count_if(claims.begin(), claims.end(), [](const Claim& c) { return c.passed == true; }));
  const int judged = static_cast<int>(
      std::count_if(claims.begin(), claims.end(), [](const Claim& c) { return c.passed; }));
  std::string text = "# Results: the SSA paper's claims at small scale\n\n";
  text += fmt::format(
      "Written by `ssa-eval report` from the runs' JSON files (`scripts/reproduce.sh --report` "
      "rebuilds it); what was run and why: [REPRODUCE.md](REPRODUCE.md). {} of {} claims "
      "pass.\n\n",
      passed, judged);
  text += fmt::format("## Claims\n\n{}", claims_table(claims));
  text +=
      fmt::format("\n## Perplexity under full and sparse inference\n\n{}", perplexity_table(runs));
  if (plots.size() > 1) text += fmt::format("\n![perplexity vs budget]({})\n", plots[1]);
  text += fmt::format("\n## Attention sparsity per layer\n\n{}", sparsity_table(runs));
  if (plots.size() > 2) text += fmt::format("\n![sparsity per layer]({})\n", plots[2]);
  text += fmt::format("\n## Long context\n\n{}", long_context_table(runs));
  text += fmt::format("\n## Training\n\n{}", training_table(runs));
  if (!plots.empty()) text += fmt::format("\n![loss curves]({})\n\n", plots[0]);
  text += fmt::format("## Runs\n\n{}", runs_table(runs));
  return text;
}

}  // namespace ssa
