// End to end: ssa-eval long-context and plot-log on a tiny model trained from text.
#include <fstream>

#include "e2e_util.h"
#include "eval/jsonl.h"
#include "train/checkpoint.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// One trained job shared by the test cases below.
struct TrainedJob {
  TempDir dir{"e2e_long_context"};
  std::string ckpt = train_text_job(dir);
};

const TrainedJob& trained_job() {
  static const TrainedJob job;
  return job;
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<JsonRecord> rows_of_kind(const std::vector<JsonRecord>& rows, const std::string& kind) {
  std::vector<JsonRecord> matching;
  for (const JsonRecord& row : rows)
    if (std::get<std::string>(row.at("kind")) == kind) matching.push_back(row);
  return matching;
}

}  // namespace

TEST_CASE(
    "long-context: perplexity and passkey rows at 1x and 2x the training length, and a plot") {
  const std::string& ckpt = trained_job().ckpt;
  Result probed = run(fmt::format(
      "ssa-eval long-context --checkpoint {} --factors 1,2 --passkey-trials 1 --max-batches 1 "
      "--top-k 1",
      ckpt));
  REQUIRE_MESSAGE(probed.exit_code == 0, probed.output);
  CHECK(contains(probed.output, "passkey"));
  const std::vector<JsonRecord> rows = read_jsonl(ckpt + ".long.json");
  const std::vector<JsonRecord> ppl = rows_of_kind(rows, "ppl");
  REQUIRE(ppl.size() == 4);  // factors 1 and 2, full and sparse
  CHECK(std::get<double>(ppl[2].at("factor")) == 2);
  CHECK(std::get<double>(ppl[2].at("seq_len")) == 64);
  CHECK(std::get<std::string>(ppl[3].at("attention")) == "sparse");
  CHECK(std::get<double>(ppl[3].at("top_k")) == 1);
  CHECK(std::get<double>(ppl[3].at("perplexity")) > 1);
  const std::vector<JsonRecord> passkey = rows_of_kind(rows, "passkey");
  REQUIRE(passkey.size() == 12);  // 2 factors x 3 depths x 2 attentions
  size_t scored = 0;
  for (const JsonRecord& row : passkey) {
    if (row.count("skipped")) {  // the key sentences and the question alone are longer
      CHECK(std::holds_alternative<std::nullptr_t>(row.at("accuracy")));
      continue;
    }
    const double accuracy = std::get<double>(row.at("accuracy"));
    CHECK((accuracy == 0 || accuracy == 1));
    ++scored;
  }
  CHECK(scored > 0);
  CHECK(contains(file_text(ckpt + ".long.svg"), "class=\"series\""));
}

TEST_CASE("long-context: a length no shard holds is reported as skipped, not a failure") {
  const TrainedJob& job = trained_job();
  Result skipped = run(fmt::format(
      "ssa-eval long-context --checkpoint {} --factors 100000 --passkey-trials 0 --out {}",
      job.ckpt, job.dir.file("far")));
  REQUIRE_MESSAGE(skipped.exit_code == 0, skipped.output);
  CHECK(contains(skipped.output, "skipped"));
  const std::vector<JsonRecord> far = read_jsonl(job.dir.file("far.json"));
  REQUIRE(far.size() == 2);
  CHECK(std::holds_alternative<std::nullptr_t>(far[0].at("perplexity")));
  CHECK(far[0].count("skipped") == 1);

  // Past 2^24 tokens: refused before any work (the passkey prompt was built whole: 20 GB).
  Result too_long =
      run(fmt::format("ssa-eval long-context --checkpoint {} --factors 1,1073741824", job.ckpt));
  CHECK(too_long.exit_code == 2);
  CHECK_MESSAGE(contains(too_long.output,
                         "--factors: 1073741824 x the training length 32 is more than the "
                         "16777216 tokens (2^24) long-context evaluates"),
                too_long.output);
}

TEST_CASE("plot-log draws a run's curves beside its log; a missing log or key is named") {
  const TrainedJob& job = trained_job();
  Result plotted = run(fmt::format("ssa-eval plot-log {}", job.dir.file("out/log.jsonl")));
  REQUIRE_MESSAGE(plotted.exit_code == 0, plotted.output);
  const std::string svg = file_text(job.dir.file("out/loss.svg"));
  CHECK(contains(svg, "class=\"series\""));
  CHECK(contains(svg, "out loss"));

  Result missing = run(fmt::format("ssa-eval plot-log {}", job.dir.file("nowhere/log.jsonl")));
  CHECK(missing.exit_code != 0);
  CHECK(contains(missing.output, job.dir.file("nowhere/log.jsonl")));
  Result directory = run(fmt::format("ssa-eval plot-log {}", job.dir.file("out")));
  CHECK(directory.exit_code != 0);
  CHECK(contains(directory.output, job.dir.file("out") + " is not a regular file"));
  Result no_key =
      run(fmt::format("ssa-eval plot-log {} --keys nosuch", job.dir.file("out/log.jsonl")));
  CHECK(no_key.exit_code != 0);
  CHECK(contains(no_key.output, "nosuch"));
}
