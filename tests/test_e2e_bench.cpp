#include "e2e_util.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/runtime.h"
#endif

namespace ssa::test {

TEST_CASE("ssa-bench: usage and mistakes") {
  Result help = run("ssa-bench --help");
  CHECK(help.exit_code == 0);
  CHECK(contains(help.output, "attention"));
#ifdef SSA_HAVE_CUDA  // without the CUDA backend a command stops before reading its options
  Result train_help = run("ssa-bench train --help");
  CHECK(train_help.exit_code == 0);
  CHECK(contains(train_help.output, "--kernels"));
  // A mistake in a command's options is a usage error on any machine, with or without a GPU
  // (it said "no GPU is usable", exit 1, where there was none).
  for (const std::string& mistake :
       {fmt::format("train --config {}/configs/bench-160m.conf --steps abc", SSA_SOURCE_DIR),
        std::string("train"), std::string("kernels --bogus"), std::string("attention --paths x")}) {
    CAPTURE(mistake);
    Result result = run("ssa-bench " + mistake);
    CHECK(result.exit_code == 2);
    CHECK(contains(result.output, "run 'ssa-bench --help' for usage"));
  }
#endif
  Result unknown = run("ssa-bench fly");
  CHECK(unknown.exit_code == 2);
  CHECK(contains(unknown.output, "unknown command 'fly'"));
}

TEST_CASE("ssa-bench: a clear message where no GPU can be measured") {
#ifdef SSA_HAVE_CUDA
  if (cuda::device_count() > 0) return;  // the GPU machine measures instead
#endif
  Result result =
      run(fmt::format("ssa-bench kernels --configs {}/configs/bench-160m.conf", SSA_SOURCE_DIR));
  CHECK(result.exit_code == 1);
  CHECK((contains(result.output, "no GPU is usable") ||
         contains(result.output, "this build has no CUDA backend")));
}

}  // namespace ssa::test
