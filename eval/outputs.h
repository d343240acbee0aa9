#pragma once
// Where the eval commands write their results, checked before they compute: a mistake costs
// no run, and no output replaces a file the command reads.
#include <string>
#include <vector>

namespace ssa {

// A file a command reads, and what it is ("checkpoint", "token shard", "log", ...).
struct Input {
  std::string what, path;
};

// The token shards the glob `glob` matches, as inputs (an error when it matches none).
std::vector<Input> shard_inputs(const std::string& glob);

// The inputs of a command that runs the model of `checkpoint` on the shards of `glob`.
std::vector<Input> model_inputs(const std::string& checkpoint, const std::string& glob);

// A usage error naming `option` when a path of `paths` is one of `inputs` (the same file,
// however spelt: a link or a relative path counts), names no file (empty, a hidden name, a
// directory) or lies in a directory that does not exist; an error when that directory does not
// take a new file (a probe file is created and removed there).
void check_outputs(const std::string& option, const std::vector<std::string>& paths,
                   const std::vector<Input>& inputs);

}  // namespace ssa
