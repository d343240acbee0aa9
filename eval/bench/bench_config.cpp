#include <filesystem>

#include "core/command_line.h"
#include "eval/bench/bench.h"
#include "train/settings.h"

namespace ssa {

BenchConfig load_bench_config(const std::string& path) {
  Config config = default_train_config();
  config.load_file(path);
  return {std::filesystem::path(path).stem().string(), train_settings_from(config)};
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
