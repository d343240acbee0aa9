// End to end: ssa-eval stats on a checkpoint of the tiny job.
#include <filesystem>

#include "e2e_util.h"
#include "eval/jsonl.h"
#include "train/checkpoint.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("ssa-eval stats writes per-layer attention statistics; mistakes name the option") {
  TinyJob job("e2e_stats");
  REQUIRE(job.train("--train.steps=2 --attention.block_size=4").exit_code == 0);
  const std::string ckpt = job.dir.file("out/" + checkpoint_file_name(2));

  Result stats = run(fmt::format("ssa-eval stats --checkpoint {} --top-k 1", ckpt));
  REQUIRE_MESSAGE(stats.exit_code == 0, stats.output);
  CHECK(contains(stats.output, "sparsity"));
  CHECK(contains(stats.output, "mean"));
  const std::vector<JsonRecord> rows = read_jsonl(ckpt + ".stats.json");
  REQUIRE(rows.size() == 2);  // the tiny model's layers
  for (size_t layer = 0; layer < rows.size(); ++layer) {
    const JsonRecord& row = rows[layer];
    CAPTURE(layer);
    for (const char* key :
         {"seq_len", "rows", "dropping_rows", "attention_sparsity", "dropped_mass", "entropy_bits",
          "sink_mass", "relative_error", "bound_violations", "max_bound_ratio"})
      CHECK_MESSAGE(std::holds_alternative<double>(row.at(key)), key);
    CHECK(std::get<double>(row.at("layer")) == static_cast<double>(layer));
    CHECK(std::get<double>(row.at("block_size")) == 4);  // the checkpoint's, by default
    CHECK(std::get<double>(row.at("top_k")) == 1);
    const double sparsity = std::get<double>(row.at("attention_sparsity"));
    CHECK(sparsity > 0);
    CHECK(sparsity < 1);  // 16-token windows in blocks of 4, top-1: every later query drops
    CHECK(std::get<double>(row.at("bound_violations")) == 0);
  }
  CHECK(std::filesystem::exists(ckpt + ".stats.svg"));

  Result help = run("ssa-eval stats --help");
  CHECK(help.exit_code == 0);
  CHECK(contains(help.output, "--max-batches"));
  Result unknown = run(fmt::format("ssa-eval stats --checkpoint {} --topk 1", ckpt));
  CHECK(unknown.exit_code == 2);
  CHECK(contains(unknown.output, "unknown option --topk"));
  Result zero = run(fmt::format("ssa-eval stats --checkpoint {} --top-k 0", ckpt));
  CHECK(zero.exit_code == 2);
  CHECK(contains(zero.output, "--top-k must be at least 1"));
}
