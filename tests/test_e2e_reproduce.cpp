// scripts/reproduce.sh end to end on the CPU, at a toy size: corpus, tokenizer, shards, the
// three trainings, every evaluation and the report; then --report alone rebuilds it.
#include <filesystem>

#include "e2e_util.h"

using namespace ssa::test;

namespace {

// The tiny model on the CPU; blocks of 2 so that top_k 16 reads half of the 32 blocks.
constexpr const char* kToyTraining =
    "--model.vocab_size=512 --model.d_model=32 --model.n_layers=2 --model.n_heads=4 "
    "--model.n_kv_heads=1 --model.head_dim=8 --model.ffn_dim=64 --model.max_seq_len=64 "
    "--data.seq_len=64 --attention.block_size=2 --train.device=cpu --train.dtype=f32 "
    "--train.micro_batch=2 --train.val_every=0 --train.log_every=2";

Result reproduce(const TempDir& dir, const std::string& arguments) {
  return run_shell(fmt::format(
      "cd {0} && BUILD=0 BIN={1} WORK={2}/work RESULTS={2}/results REPORT={2}/RESULTS.md "
      "CORPUS={0}/eval TOKENS=2000 VOCAB=512 SAMPLE_MB=1 TRAIN_ARGS='{3}' "
      "EVAL_ARGS='--device cpu' bash scripts/reproduce.sh {4}",
      SSA_SOURCE_DIR, SSA_BIN_DIR, dir.path(), kToyTraining, arguments));
}

}  // namespace

TEST_CASE("reproduce.sh: three toy models from text to the report, and --report alone") {
  TempDir dir("e2e_reproduce");
  const Result all = reproduce(dir, "");
  REQUIRE_MESSAGE(all.exit_code == 0, all.output);
  for (const char* model : {"fa", "sa", "ssa"})
    for (const char* file : {"run.json", "log.jsonl", "ppl.json", "stats.json", "long.json"})
      CHECK(std::filesystem::exists(dir.file(fmt::format("results/{}/{}", model, file))));
  const std::string report = text_of(dir.file("RESULTS.md"));
  CHECK(contains(report, "## Claims"));
  CHECK(contains(report, "| 5 | SSA's sparse-inference perplexity falls monotonically"));
  CHECK(contains(report, "## Long context"));
  for (const char* plot : {"RESULTS_loss.svg", "RESULTS_budget.svg", "RESULTS_sparsity.svg"})
    CHECK(contains(text_of(dir.file(plot)), "<svg"));

  std::filesystem::remove(dir.file("RESULTS.md"));
  const Result again = reproduce(dir, "--report");
  REQUIRE_MESSAGE(again.exit_code == 0, again.output);
  CHECK(text_of(dir.file("RESULTS.md")) == report);

  const Result unknown = reproduce(dir, "moe");
  CHECK(unknown.exit_code == 2);
  CHECK(contains(unknown.output, "reproduce: unknown model 'moe' (expected fa, sa or ssa)"));
}
