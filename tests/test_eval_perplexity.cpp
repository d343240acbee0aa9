#include <doctest/doctest.h>

#include <set>
#include <vector>

#include "data/shard.h"
#include "eval/perplexity.h"
#include "test_data_util.h"

using namespace ssa;

TEST_CASE("eval windows: whole batches, and one batch of every window when there are fewer") {
  test::TempDir dir("eval_windows");
  std::vector<uint32_t> tokens;
  for (uint32_t j = 0; j < 41; ++j) tokens.push_back(j);
  write_shard(dir.file("val_000000.bin"), tokens);  // windows of 8 + 1 tokens: 5
  const std::string glob = dir.file("val_*.bin");
  const EvalWindows pairs = eval_windows(glob, 8, 100, 2, 0);
  CHECK(pairs.batch == 2);
  CHECK(pairs.batches == 2);
  EvalWindows all = eval_windows(glob, 8, 100, 1000, 0);
  CHECK(all.batch == 5);
  CHECK(all.batches == 1);
  const Batch batch = all.loader.next_batch(all.batch);
  std::set<int32_t> firsts;
  for (int64_t row = 0; row < 5; ++row) firsts.insert(batch.inputs.data<int32_t>()[row * 8]);
  CHECK(firsts.size() == 5);  // no window twice
}
