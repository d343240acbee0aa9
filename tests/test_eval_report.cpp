// The reproduction report's claims (eval/report.h) on hand-made runs.
#include <doctest/doctest.h>

#include <fstream>

#include "eval/report.h"
#include "test_data_util.h"

using namespace ssa;
using ssa::test::error_of;
using ssa::test::TempDir;

namespace {

JsonRecord ppl_row(const std::string& attention, int64_t top_k, double perplexity) {
  return {
      {"attention", attention}, {"top_k", static_cast<double>(top_k)}, {"perplexity", perplexity}};
}

// A run with full-inference perplexity `full`, sparse perplexity `sparse[i]` at top_k 2^i and
// captured mass `sparsity` in each of two layers.
RunResults run_of(const std::string& name, double full, const std::vector<double>& sparse,
                  double sparsity) {
  RunResults run{name, "runs/" + name, {}, {}, {}, {}, {}};
  run.ppl.push_back(ppl_row("full", 0, full));
  for (size_t i = 0; i < sparse.size(); ++i)
    run.ppl.push_back(ppl_row("sparse", int64_t{1} << i, sparse[i]));
  for (double layer : {0.0, 1.0})
    run.stats.push_back({{"layer", layer}, {"attention_sparsity", sparsity}});
  return run;
}

std::vector<std::optional<bool>> verdicts(const std::vector<Claim>& claims) {
  std::vector<std::optional<bool>> result;
  for (const Claim& claim : claims) result.push_back(claim.passed);
  return result;
}

// The paper's figures at top_k 16 (index 4): FA 15.13 full, 17.05 sparse; SSA 15.28, 15.96.
const RunResults kFa = run_of("FA", 15.13, {40, 30, 24, 20, 17.05, 16, 15.5}, 0.62);
const RunResults kSa = run_of("SA", 17.5, {35, 25, 20, 18, 16.9, 16.6, 16.5}, 0.53);
const RunResults kSsa = run_of("SSA", 15.28, {30, 22, 18, 16.5, 15.96, 15.6, 15.4}, 0.69);

}  // namespace

TEST_CASE("report: the paper's own figures pass claims 1-5; 6 has no bar") {
  const std::vector<Claim> claims = paper_claims(kFa, kSa, kSsa, 16);
  REQUIRE(claims.size() == 6);
  CHECK(verdicts(claims) ==
        std::vector<std::optional<bool>>{true, true, true, true, true, std::nullopt});
  CHECK(claims[0].numbers == "FA 17.050 − 15.130 = 1.920; SSA 15.960 − 15.280 = 0.680");
  CHECK(claims[2].numbers == "SSA 15.280, FA 15.130 (+0.99%)");
}

TEST_CASE("report: each claim fails on the numbers that break it") {
  RunResults ssa = kSsa;
  ssa.ppl[0] = ppl_row("full", 0, 15.6);      // 3.1% above FA, and a gap of 0.36
  ssa.ppl[6] = ppl_row("sparse", 32, 16.0);   // rises past top_k 16
  ssa.stats[1]["attention_sparsity"] = 0.40;  // mean 0.545 < FA's 0.62
  RunResults sa = kSa;
  sa.ppl[5] = ppl_row("sparse", 16, 15.9);  // below SSA's 15.96
  RunResults fa = kFa;
  fa.ppl[5] = ppl_row("sparse", 16, 15.7);  // FA's gap 0.57, still above SSA's 0.36
  std::vector<Claim> claims = paper_claims(fa, sa, ssa, 16);
  CHECK(verdicts(claims) ==
        std::vector<std::optional<bool>>{true, false, false, false, false, std::nullopt});
  fa.ppl[5] = ppl_row("sparse", 16, 15.4);  // FA's gap 0.27 < SSA's 0.36
  claims = paper_claims(fa, sa, ssa, 16);
  CHECK(claims[0].passed == false);
}

TEST_CASE("report: missing rows and files are errors naming them") {
  RunResults fa = kFa;
  fa.ppl.pop_back();
  CHECK(error_of([&] { sparse_perplexity(fa, 64); }) ==
        "report: runs/FA/ppl.json has no sparse row at top_k 64 with a perplexity");
  fa.stats.clear();
  CHECK(error_of([&] { mean_sparsity(fa); }) ==
        "report: runs/FA/stats.json has no attention_sparsity");
  TempDir dir("report_missing");
  std::ofstream(dir.file("run.json")) << "{\"model\": \"fa\"}\n";
  CHECK(error_of([&] { read_run("FA", dir.path()); }) ==
        "report: " + dir.file("log.jsonl") + " is missing");
}
