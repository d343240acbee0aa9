#include "core/files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace ssa {

void require_regular_file(const std::string& path, const char* what) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    fail("cannot open {} {}: {}", what, path.empty() ? "''" : path, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) fail("{} {} is not a regular file", what, path);
}

std::string read_regular_file(const std::string& path, const char* what, size_t max_bytes) {
  require_regular_file(path, what);
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) fail("cannot open {} {}: {}", what, path, std::strerror(errno));
  const auto size = static_cast<size_t>(file.tellg());
  if (size > max_bytes)
    fail("{} {} is {}, more than the {} such a file may hold", what, path, byte_text(size),
         byte_text(max_bytes));
  std::string bytes(size, '\0');
  file.seekg(0);
  file.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!file) fail("cannot read {} {}: {}", what, path, std::strerror(errno));
  return bytes;
}

}  // namespace ssa
