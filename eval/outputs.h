#pragma once
// Where the eval commands write their results, checked before they compute: a mistake costs
// no run, and no output replaces the checkpoint a command reads.
#include <string>
#include <vector>

namespace ssa {

// A usage error naming `option` when a path of `paths` is empty, is the checkpoint itself, or
// lies in a directory that does not exist.
void check_outputs(const std::string& option, const std::vector<std::string>& paths,
                   const std::string& checkpoint);

}  // namespace ssa
