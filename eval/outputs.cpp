#include "eval/outputs.h"

#include <filesystem>

#include "core/tool.h"

namespace ssa {

void check_outputs(const std::string& option, const std::vector<std::string>& paths,
                   const std::string& checkpoint) {
  for (const std::string& path : paths) {
    const std::filesystem::path file(path);
    if (file.filename().string().starts_with("."))
      usage_error("{} '{}' names no file (a hidden name, or empty)", option, path);
    std::error_code not_found;
    if (std::filesystem::equivalent(file, checkpoint, not_found))
      usage_error("{} {} is the checkpoint itself; write the results to another file", option,
                  path);
    if (!file.parent_path().empty() && !std::filesystem::is_directory(file.parent_path()))
      usage_error("{} {}: {} is not a directory", option, path, file.parent_path().string());
  }
}

}  // namespace ssa
