// The checks a run passes before step 1 (train/run_files.h) and its stop signals
// (train/stop_signals.h).
#include <signal.h>

#include <filesystem>

#include "op_test_util.h"
#include "train/checkpoint.h"
#include "train/run_files.h"
#include "train/stop_signals.h"
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
  const int64_t estimate = checkpoint_bytes(settings.model, settings.run.dtype);
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
  CHECK(contains_all(message, {"train.out_dir: '" + out + "' has ", " free, less than the ",
                               "4096.00 TiB a checkpoint of this model takes"}));
  CHECK(std::filesystem::is_directory(out));  // it was there before: kept
  const std::string fresh = dir.file("a/c");
  CHECK(!error_of([&] { check_out_dir(fresh, int64_t{1} << 52); }).empty());
  CHECK(!std::filesystem::exists(fresh));  // made by the refused check: removed again
}

TEST_CASE("the first SIGTERM or SIGINT is recorded, and the handlers restored afterwards") {
  struct sigaction before {};
  ::sigaction(SIGTERM, nullptr, &before);
  {
    StopSignals signals;
    CHECK(signals.received() == 0);
    ::raise(SIGINT);
    CHECK(signals.received() == SIGINT);
    CHECK(std::string(stop_signal_name(signals.received())) == "SIGINT");
  }
  struct sigaction after {};
  ::sigaction(SIGTERM, nullptr, &after);
  CHECK((after.sa_handler == before.sa_handler));
  StopSignals again;
  CHECK(again.received() == 0);
}

TEST_CASE("the resume command is this one with --resume auto, quoted for the shell") {
  const std::vector<std::string> args = {"build/bin/ssa-train",
                                         "--config",
                                         "a b.conf",
                                         "--resume",
                                         "out/ckpt_00000003.h5",
                                         "--data.train=shards/train_*.bin",
                                         "--resume=auto",
                                         "--data.val=",
                                         "--note=it's"};
  CHECK(resume_command(args) ==
        "build/bin/ssa-train --config 'a b.conf' '--data.train=shards/train_*.bin' --data.val= "
        "'--note=it'\\''s' --resume auto");
}
