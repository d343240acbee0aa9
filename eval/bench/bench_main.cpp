// ssa-bench: performance benchmarks on the GPU (docs/PERF.md). Subcommands in eval/bench/bench.h.
#include "core/command_line.h"
#include "eval/bench/bench.h"

using namespace ssa;

namespace {

constexpr const char* kAbout =
    "Performance benchmarks on a CUDA GPU. Each command prints a table and, with --json PATH,\n"
    "appends one JSON object per row. scripts/bench.sh runs them all with the PyTorch\n"
    "counterpart (eval/bench/bench_torch.py).";

// Runs benchmark `name` on the arguments after it; each command checks its arguments, then
// that a GPU is usable (require_gpu).
int run_on_gpu(const std::string& name, const std::vector<std::string>& args) {
#ifdef SSA_HAVE_CUDA
  if (name == "kernels") return bench_kernels_command(args);
  if (name == "attention") return bench_attention_command(args);
  return bench_train_command(args);
#else
  (void)name, (void)args;
  require_gpu();  // fails: this build has no CUDA backend
  return 1;
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
