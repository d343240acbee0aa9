// ssa-bench: performance benchmarks on the GPU (docs/PERF.md). Subcommands in eval/bench/bench.h.
#include "core/command_line.h"
#include "eval/bench/bench.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/runtime.h"
#endif

using namespace ssa;

namespace {

constexpr const char* kAbout =
    "Performance benchmarks on a CUDA GPU. Each command prints a table and, with --json PATH,\n"
    "appends one JSON object per row. scripts/bench.sh runs them all with the PyTorch\n"
    "counterpart (eval/bench/bench_torch.py).";

// Runs benchmark `name` on the arguments after it, where a GPU is usable (--help needs none).
int run_on_gpu(const std::string& name, const std::vector<std::string>& args) {
#ifdef SSA_HAVE_CUDA
  if (!asks_for_help(args) && cuda::device_count() == 0)
    fail("no GPU is usable ({}); ssa-bench measures CUDA kernels and needs one",
         cuda::no_device_reason());
  if (name == "kernels") return bench_kernels_command(args);
  if (name == "attention") return bench_attention_command(args);
  return bench_train_command(args);
#else
  (void)name, (void)args;
  fail(
      "this build has no CUDA backend; ssa-bench measures CUDA kernels (configure with "
      "-DSSA_CUDA=ON where nvcc is installed, and run it on a machine with a GPU)");
#endif
}

Subcommand on_gpu(const std::string& name, const std::string& about) {
  return {name, about,
          [name](const std::vector<std::string>& args) { return run_on_gpu(name, args); }};
}

const std::vector<Subcommand> kCommands{
    on_gpu("kernels",
           "cuBLAS GEMMs at the configs' shapes (TFLOP/s) and each fused kernel's\n"
           "bandwidth against a device-to-device copy measured in the same run"),
    on_gpu("attention", "full and sparse attention forward + backward at T = 4k .. 32k (TFLOP/s)"),
    on_gpu("train",
           "training steps of a config in mode full, sparse or ssa: tokens/s, MFU,\n"
           "peak memory"),
};

}  // namespace

int main(int argc, char** argv) {
  return run_tool("ssa-bench", [&] {
    return run_subcommand("ssa-bench", kAbout, kCommands, arguments(argc, argv, 1));
  });
}
