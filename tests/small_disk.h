#pragma once
// A small tmpfs, for tests of what happens when the disk is full. Mounting needs root (or
// CAP_SYS_ADMIN); where it is refused the test says so and skips.
#include <fmt/format.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "test_data_util.h"

namespace ssa::test {

class SmallDisk {
 public:
  // `files` > 0 limits the number of files (inodes), the root directory included.
  SmallDisk(const std::string& name, int64_t bytes, int64_t files = 0) : dir_(name) {
    std::string options = fmt::format("size={}", bytes);
    if (files > 0) options += fmt::format(",nr_inodes={}", files);
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      why_not_ = fmt::format(
          "skipped: cannot mount a {}-byte tmpfs at {} ({}); the full-disk "
          "tests run as root where mounting is allowed",
          bytes, dir_.path(), std::strerror(errno));
    }
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  bool mounted() const { return mounted_; }
  // The skip message when mounting was refused.
  const std::string& why_not() const { return why_not_; }
  std::string file(const std::string& name) const { return dir_.file(name); }
  std::string path() const { return dir_.path(); }

 private:
  TempDir dir_;
  bool mounted_ = false;
  std::string why_not_;
};

}  // namespace ssa::test
