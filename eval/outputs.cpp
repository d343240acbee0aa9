#include "eval/outputs.h"

#include <filesystem>

#include "core/files.h"
#include "core/tool.h"
#include "data/loader.h"

namespace ssa {
namespace {

void check_output(const std::string& option, const std::filesystem::path& file) {
  const std::string name = file.filename().string();
  if (name.empty() || name.starts_with("."))
    usage_error("{} '{}' names no file (empty, a directory or a hidden name)", option,
                file.string());
  if (std::filesystem::is_directory(file))
    usage_error("{} {} is a directory; name a file in it", option, file.string());
  const std::filesystem::path dir = file.parent_path().empty() ? "." : file.parent_path();
  if (!std::filesystem::is_directory(dir))
    usage_error("{} {}: {} is not a directory", option, file.string(), dir.string());
  try {
    check_directory_takes_files(dir.string());
  } catch (const Error& error) {
    fail("{} {}: {}", option, file.string(), error.what());
  }
}

}  // namespace

std::vector<Input> shard_inputs(const std::string& glob) {
  std::vector<Input> shards;
  for (const std::string& path : expand_glob(glob)) shards.push_back({"token shard", path});
  return shards;
}

std::vector<Input> model_inputs(const std::string& checkpoint, const std::string& glob) {
  std::vector<Input> inputs = shard_inputs(glob);
  inputs.push_back({"checkpoint", checkpoint});
  return inputs;
}

void check_outputs(const std::string& option, const std::vector<std::string>& paths,
                   const std::vector<Input>& inputs) {
  for (const std::string& path : paths) {
    for (const Input& input : inputs) {
      std::error_code not_found;
      if (std::filesystem::equivalent(path, input.path, not_found))
        usage_error("{} {} is the {} itself ({}); write the results to another file", option, path,
                    input.what, input.path);
    }
    check_output(option, path);
  }
}

}  // namespace ssa
