#pragma once
// Small files read whole (configs, tokenizers): what is not a regular file (a directory, a FIFO
// whose open would block, a device that never ends) is refused with one message naming it.
#include <cstddef>
#include <string>

namespace ssa {

// Fails with "cannot open WHAT PATH: reason" when `path` cannot be examined, and with "WHAT
// PATH is not a regular file" when it is something else.
void require_regular_file(const std::string& path, const char* what);

// The bytes of the regular file `path`; fails when it holds more than max_bytes.
std::string read_regular_file(const std::string& path, const char* what, size_t max_bytes);

}  // namespace ssa
