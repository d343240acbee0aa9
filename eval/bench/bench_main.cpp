// ssa-bench: performance benchmarks on the GPU (docs/PERF.md). Subcommands in eval/bench/bench.h.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include "core/command_line.h"
#include "eval/bench/bench.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/runtime.h"
#endif

using namespace ssa;

namespace {

constexpr const char* kUsage = R"(usage: ssa-bench COMMAND [options]   (ssa-bench COMMAND --help for each)

  kernels     cuBLAS GEMMs at the configs' shapes (TFLOP/s) and each fused kernel's bandwidth
              against a device-to-device copy measured in the same run
  attention   full and sparse attention forward + backward at T = 4k .. 32k (TFLOP/s)
  train       training steps of a config in mode full, sparse or ssa: tokens/s, MFU, peak
              memory

Each prints a table and, with --json PATH, appends one JSON object per row. Needs a CUDA GPU.
scripts/bench.sh runs them all with the PyTorch counterpart (eval/bench/bench_torch.py).
)";

const std::vector<std::string> kCommands{"kernels", "attention", "train"};

#ifdef SSA_HAVE_CUDA
int run_command(const std::string& name, const std::vector<std::string>& args) {
  const bool help = std::find(args.begin(), args.end(), "--help") != args.end();
  if (!help && cuda::device_count() == 0)
    fail("no GPU is usable ({}); ssa-bench measures CUDA kernels and needs one",
         cuda::no_device_reason());
  if (name == "kernels") return bench_kernels_command(args);
  if (name == "attention") return bench_attention_command(args);
  return bench_train_command(args);
}
#else
int run_command(const std::string&, const std::vector<std::string>&) {
  fail("this build has no CUDA backend; ssa-bench measures CUDA kernels (configure with "
       "-DSSA_CUDA=ON where nvcc is installed, and run it on a machine with a GPU)");
}
#endif

int run(std::vector<std::string> args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    fmt::print("{}", kUsage);
    return args.empty() ? 2 : 0;
  }
  const std::string name = args[0];
  if (std::find(kCommands.begin(), kCommands.end(), name) == kCommands.end())
    usage_error("unknown command '{}' (expected kernels, attention or train)", name);
  args.erase(args.begin());
  return run_command(name, args);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(arguments(argc, argv, 1));
  } catch (const UsageError& error) {
    fmt::print(stderr, "ssa-bench: {}\nrun 'ssa-bench --help' for usage\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    fmt::print(stderr, "ssa-bench: error: {}\n", error.what());
    return 1;
  }
}
