#include "core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
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

void write_file_replacing(const std::string& path,
                          std::initializer_list<std::span<const std::byte>> parts) {
  const std::string tmp_path = path + ".tmp";
  std::FILE* file = std::fopen(tmp_path.c_str(), "wb");
  if (file == nullptr) fail("cannot create {}: {}", tmp_path, std::strerror(errno));
  int error = 0;
  for (std::span<const std::byte> part : parts)
    if (error == 0 && std::fwrite(part.data(), 1, part.size(), file) != part.size()) error = errno;
  if (std::fclose(file) != 0 && error == 0) error = errno;
  bool renaming = false;
  if (error == 0) {
    if (std::rename(tmp_path.c_str(), path.c_str()) == 0) return;
    error = errno;
    renaming = true;
  }
  std::remove(tmp_path.c_str());
  if (renaming) fail("cannot rename {} to {}: {}", tmp_path, path, std::strerror(error));
  fail("cannot write {}: {}", tmp_path, std::strerror(error));
}

void check_directory_takes_files(const std::string& dir) {
  std::string probe = dir + "/.write_check_XXXXXX";  // mkstemp: a name no other file has
  const int fd = ::mkstemp(probe.data());
  const bool written = fd >= 0 && ::write(fd, "x", 1) == 1;
  const int error = written ? 0 : errno;
  if (fd >= 0) {
    ::close(fd);
    ::unlink(probe.c_str());
  }
  if (!written) fail("cannot write a file in '{}': {}", dir, std::strerror(error));
}

}  // namespace ssa
