// End to end: where ssa-eval writes, checked before it computes: never over a file it reads or a
// training checkpoint, never into a place it cannot write.
#include <sys/mount.h>

#include <filesystem>

#include "e2e_util.h"
#include "small_disk.h"
#include "train/checkpoint.h"

using namespace ssa;
using namespace ssa::test;

namespace {

// The tiny job trained two steps, a checkpoint after each.
struct TwoCheckpoints {
  TinyJob job{"e2e_eval_outputs"};
  std::string first = job.dir.file("out/" + checkpoint_file_name(1));
  std::string second = job.dir.file("out/" + checkpoint_file_name(2));
  TwoCheckpoints() {
    Result trained = job.train("--train.steps=2 --train.ckpt_every=1 --train.keep_last=0");
    REQUIRE_MESSAGE(trained.exit_code == 0, trained.output);
  }
  Result grads(const std::string& out) const {
    return run(fmt::format("ssa-eval grads --checkpoint {} --out '{}'", second, out));
  }
};

const TwoCheckpoints& trained() {
  static const TwoCheckpoints checkpoints;
  return checkpoints;
}

void check_refused(const Result& result, const std::string& message) {
  CHECK(result.exit_code == 2);
  CHECK_MESSAGE(contains(result.output, message), result.output);
}

}  // namespace

TEST_CASE("ssa-eval refuses an output that is one of its inputs, however it is spelt") {
  const TwoCheckpoints& t = trained();
  const TempDir& dir = t.job.dir;
  const std::string shard = dir.file("val_000000.bin"), log = dir.file("out/log.jsonl");
  const std::string shard_bytes = text_of(shard), log_text = text_of(log);
  check_refused(t.grads(shard), "--out " + shard + " is the token shard itself");
  std::filesystem::create_symlink(t.second, dir.file("link.h5"));
  check_refused(t.grads(dir.file("link.h5")), "is the checkpoint itself (" + t.second + ")");
  const std::string relative_log = dir.file("out/../out/log.jsonl");
  check_refused(run(fmt::format("ssa-eval plot-log {} --out {}", log, relative_log)),
                "--out " + relative_log + " is the log itself");
  check_refused(run(fmt::format("ssa-eval report --fa {0} --sa {0} --ssa {0} --out {1}",
                                dir.file("out"), log)),
                "--out " + log + " is the run file itself");
  // A shard named like a results file: ppl's PREFIX.json would be it.
  std::filesystem::copy_file(shard, dir.file("shard.json"));
  check_refused(run(fmt::format("ssa-eval ppl --checkpoint {} --data {} --out {}", t.second,
                                dir.file("shard.json"), dir.file("shard"))),
                "--out " + dir.file("shard.json") + " is the token shard itself");
  CHECK(text_of(dir.file("shard.json")) == shard_bytes);
  CHECK(text_of(shard) == shard_bytes);
  CHECK(text_of(log) == log_text);
}

TEST_CASE("ssa-eval grads replaces its own earlier output, never a training checkpoint") {
  const TwoCheckpoints& t = trained();
  const std::string saved = text_of(t.first);
  check_refused(t.grads(t.first),
                "--out " + t.first + " exists and is not an earlier grads output");
  CHECK(text_of(t.first) == saved);
  const std::string notes = t.job.dir.file("notes.txt");
  std::ofstream(notes) << "mine\n";
  check_refused(t.grads(notes), "exists and is not an earlier grads output");
  const std::string out = t.job.dir.file("grads.h5");
  for (int run = 0; run < 2; ++run) {
    Result written = t.grads(out);
    CHECK_MESSAGE(written.exit_code == 0, written.output);
  }
}

TEST_CASE("ssa-eval checks where its outputs go before it computes") {
  const TwoCheckpoints& t = trained();
  const TempDir& dir = t.job.dir;
  const std::string log = dir.file("out/log.jsonl");
  check_refused(t.grads(""), "--out '' names no file");
  check_refused(run(fmt::format("ssa-eval plot-log {} --out {}/", log, dir.file("out"))),
                "names no file");
  check_refused(run(fmt::format("ssa-eval plot-log {} --out {}", log, dir.file("out"))),
                "--out " + dir.file("out") + " is a directory");
  check_refused(
      run(fmt::format("ssa-eval report --fa {0} --sa {0} --ssa {0} --out ''", dir.path())),
      "names no file");
  check_refused(t.grads(dir.file("nowhere/g.h5")), dir.file("nowhere") + " is not a directory");

  SmallDisk read_only("e2e_eval_outputs_ro", 64 << 10);
  if (!read_only.mounted()) {
    MESSAGE(read_only.why_not());
    return;
  }
  REQUIRE(::mount(nullptr, read_only.path().c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) ==
          0);
  Result ppl =
      run(fmt::format("ssa-eval ppl --checkpoint {} --out {}", t.second, read_only.file("ppl")));
  CHECK(ppl.exit_code == 1);
  CHECK_MESSAGE(contains(ppl.output, "ssa-eval: error: --out " + read_only.file("ppl.json") +
                                         ": cannot write a file in '" + read_only.path() +
                                         "': Read-only file system"),
                ppl.output);
  CHECK_MESSAGE(!contains(ppl.output, "perplexity"), ppl.output);  // no table: nothing ran
  Result grads = t.grads(read_only.file("g.h5"));
  CHECK(grads.exit_code == 1);
  CHECK_MESSAGE(contains(grads.output, "cannot write a file in"), grads.output);
  CHECK_MESSAGE(!contains(grads.output, "HDF5"), grads.output);
}
