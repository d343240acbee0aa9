// The checks a run passes before step 1 (train/run_files.h).
#include <filesystem>

#include "op_test_util.h"
#include "train/checkpoint.h"
#include "train/run_files.h"
#include "train_test_util.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("a checkpoint takes no more than its estimate on disk") {
  TempDir dir("checkpoint_estimate");
  write_tiny_shards(dir);
  TrainSettings settings = tiny_settings(dir);
  Trainer trainer(settings);
  const std::string path = trainer.save_checkpoint();
  const auto written = static_cast<int64_t>(std::filesystem::file_size(path));
  const int64_t estimate = checkpoint_bytes(settings.model);
  CHECK(written <= estimate);
  CHECK(estimate >= 12 * trainer.model().params().count());
}

TEST_CASE("an out_dir is created, and refused without room for a checkpoint") {
  TempDir dir("out_dir_checks");
  const std::string out = dir.file("a/b");
  check_out_dir(out, 1);
  CHECK(std::filesystem::is_directory(out));
  CHECK(std::filesystem::is_empty(out));  // the file written to check it is gone
  const std::string message = error_of([&] { check_out_dir(out, int64_t{1} << 52); });
  CHECK(contains_all(message, {"train.out_dir: '" + out + "' has ", " free, less than the 4096.00 TiB "
                               "a checkpoint of this model takes"}));
}
