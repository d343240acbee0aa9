#pragma once
// The fuzz input as a file: the parsers take paths, so each input is written to one scratch file
// (in $TMPDIR, else /tmp), replaced by the next input and removed at exit. A real file, not a
// memfd: HDF5 resolves the real path of the files it opens.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace ssa::fuzz {

class ScratchFile {
 public:
  ScratchFile()
      : path_((std::filesystem::temp_directory_path() /
               ("ssa-fuzz-input-" + std::to_string(::getpid())))
                  .string()) {}
  ~ScratchFile() { std::remove(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& write(const uint8_t* data, size_t size) const {
    std::FILE* file = std::fopen(path_.c_str(), "wb");
    if (!file || std::fwrite(data, 1, size, file) != size || std::fclose(file) != 0) std::abort();
    return path_;
  }

 private:
  std::string path_;
};

inline const ScratchFile& scratch_file() {
  static const ScratchFile file;
  return file;
}

// The path of a file that holds exactly `size` bytes of `data`, until the next call.
inline const std::string& as_file(const uint8_t* data, size_t size) {
  return scratch_file().write(data, size);
}

}  // namespace ssa::fuzz
