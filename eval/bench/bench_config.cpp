#include <filesystem>

#include "core/command_line.h"
#include "eval/bench/bench.h"
#include "train/settings.h"
#ifdef SSA_HAVE_CUDA
#include "cuda/runtime/runtime.h"
#endif

namespace ssa {

BenchConfig load_bench_config(const std::string& path) {
  Config config = default_train_config();
  config.load_file(path);
  return {std::filesystem::path(path).stem().string(), train_settings_from(config)};
}

void require_gpu() {
#ifdef SSA_HAVE_CUDA
  if (cuda::device_count() == 0)
    fail("no GPU is usable ({}); ssa-bench measures CUDA kernels and needs one",
         cuda::no_device_reason());
#else
  fail(
      "this build has no CUDA backend; ssa-bench measures CUDA kernels (configure with "
      "-DSSA_CUDA=ON where nvcc is installed, and run it on a machine with a GPU)");
#endif
}

std::vector<std::string> split_list(const std::string& text, const std::string& option) {
  std::vector<std::string> items;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    items.push_back(text.substr(start, comma == std::string::npos ? comma : comma - start));
    if (items.back().empty()) usage_error("{}: empty item in '{}'", option, text);
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

}  // namespace ssa
