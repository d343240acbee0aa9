// End to end: ssa-train writing checkpoints onto a disk that fills up.
#include <filesystem>

#include "e2e_util.h"
#include "small_disk.h"
#include "train/checkpoint.h"
#include "train/restore.h"

using namespace ssa;
using namespace ssa::test;

TEST_CASE("ssa-train on a full disk: exit 1 with one line, no .tmp, the last checkpoint loads") {
  TinyJob job("e2e_full_disk");
  SmallDisk disk("e2e_full_disk_tmpfs", 1 << 20);  // holds three of the tiny job's checkpoints
  if (!disk.mounted()) {
    MESSAGE(disk.why_not());
    return;
  }
  const std::string out = disk.file("out");
  Result result =
      job.train(fmt::format("--train.ckpt_every=1 --train.keep_last=0 --train.out_dir={}", out));
  CHECK_MESSAGE(result.exit_code == 1, "128 + N: killed by signal N\n" << result.output);
  std::vector<std::string> written = list_checkpoints(out);
  REQUIRE_MESSAGE(written.size() >= 1, result.output);
  const int64_t failed_step = static_cast<int64_t>(written.size()) + 1;
  const std::string failed = out + "/" + checkpoint_file_name(failed_step);
  const std::string expected =
      "ssa-train: error: checkpoint " + failed + ": not enough disk space (needs about ";
  CHECK_MESSAGE(contains(result.output, expected), result.output);
  CHECK_MESSAGE(!contains(result.output, "HDF5"), result.output);
  for (const auto& entry : std::filesystem::directory_iterator(out))
    CHECK(entry.path().extension() != ".tmp");
  LoadedModel loaded = load_model(written.back(), Device::cpu);
  CHECK(loaded.model->params().count() > 0);
}
