#pragma once
// Small files read whole (configs, tokenizers): what is not a regular file (a directory, a FIFO
// whose open would block, a device that never ends) is refused with one message naming it. Files
// written whole (tokenizers, shards) appear under their name only once complete.
#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>

namespace ssa {

// Fails with "cannot open WHAT PATH: reason" when `path` cannot be examined, and with "WHAT
// PATH is not a regular file" when it is something else.
void require_regular_file(const std::string& path, const char* what);

// The bytes of the regular file `path`; fails when it holds more than max_bytes.
std::string read_regular_file(const std::string& path, const char* what, size_t max_bytes);

// Writes `parts` in order into `path`.tmp, then renames it to `path`. On any failure the
// temporary file is removed and the message gives the system's reason: `path` is either the
// complete new file or what it was before.
void write_file_replacing(const std::string& path,
                          std::initializer_list<std::span<const std::byte>> parts);

// Creates, writes and removes a file in the directory `dir`; fails with "cannot write a file in
// 'DIR': reason" when that is refused (permissions, a read-only or immutable directory). Run
// before long work whose result goes into `dir`.
void check_directory_takes_files(const std::string& dir);

}  // namespace ssa
