#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/files.h"

namespace ssa {

static_assert(std::endian::native == std::endian::little, "shards are read in place");

namespace {

int64_t token_width(ShardVersion version) { return version == ShardVersion::u16 ? 2 : 4; }

ShardVersion resolve_version(std::span<const uint32_t> tokens, ShardVersion requested) {
  if (requested != ShardVersion::automatic) return requested;
  bool fits_u16 = std::all_of(tokens.begin(), tokens.end(), [](uint32_t t) { return t < 65536; });
  return fits_u16 ? ShardVersion::u16 : ShardVersion::u32;
}

std::vector<uint16_t> narrow_to_u16(std::span<const uint32_t> tokens, const std::string& path) {
  std::vector<uint16_t> narrow(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= 65536)
      fail("cannot write token shard {} as version 1 (uint16): token id {} at index {} is >= 65536",
           path, tokens[i], i);
    narrow[i] = static_cast<uint16_t>(tokens[i]);
  }
  return narrow;
}

// The token width a (magic, version) pair announces; an error for pairs no writer produces.
ShardVersion version_of_header(int32_t magic, int32_t version, const std::string& path) {
  if (magic == kShardMagic) {
    if (version == 1 || version == 2) return static_cast<ShardVersion>(version);
    fail(
        "token shard {} has unknown version {} for magic {}, expected 1 (uint16 tokens) or 2 "
        "(uint32 tokens)",
        path, version, magic);
  }
  if (magic == kLlamaShardMagic) {
    if (version == kLlamaShardVersion) return ShardVersion::u32;
    fail(
        "token shard {} has unknown version {} for magic {} (llm.c Llama 3), expected {} "
        "(uint32 tokens)",
        path, version, magic, kLlamaShardVersion);
  }
  fail(
      "token shard {} has bad magic {}, expected {} (ssa, llm.c GPT-2) or {} (llm.c Llama 3) "
      "(not a token shard?)",
      path, magic, kShardMagic, kLlamaShardMagic);
}

// Returns the largest id.
template <typename T>
uint32_t check_ids_below(const T* tokens, int64_t count, int64_t vocab_size,
                         const std::string& path) {
  // A branch-free max first (vectorises); the offending index only when there is one.
  T largest = *std::max_element(tokens, tokens + count);
  if (static_cast<int64_t>(largest) < vocab_size) return largest;
  const T* bad = std::find_if(tokens, tokens + count,
                              [&](T id) { return static_cast<int64_t>(id) >= vocab_size; });
  fail("token shard {} has token id {} at index {}, not below the vocab size {}", path, *bad,
       bad - tokens, vocab_size);
}

}  // namespace

void write_shard(const std::string& path, std::span<const uint32_t> tokens, ShardVersion version) {
  if (tokens.size() > static_cast<size_t>(INT32_MAX))
    fail("cannot write token shard {}: {} tokens, the header holds at most {}", path, tokens.size(),
         INT32_MAX);
  version = resolve_version(tokens, version);
  int32_t header[256] = {kShardMagic, static_cast<int32_t>(version),
                         static_cast<int32_t>(tokens.size())};
  const auto header_bytes = std::as_bytes(std::span(header));
  if (version == ShardVersion::u16) {
    const std::vector<uint16_t> narrow = narrow_to_u16(tokens, path);
    write_file_replacing(path, {header_bytes, std::as_bytes(std::span(narrow))});
  } else {
    write_file_replacing(path, {header_bytes, std::as_bytes(tokens)});
  }
}

namespace {

// An open file descriptor, closed at the end of its scope.
struct OpenFile {
  int fd;
  explicit OpenFile(const std::string& path) : fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK)) {}
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
};

// What identifies the contents of the open file `fd` (bytes −1: not a regular file).
FileStamp stamp_of(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) return {};
  return {info.st_size, static_cast<uint64_t>(info.st_dev), static_cast<uint64_t>(info.st_ino),
          info.st_mtim.tv_sec * int64_t{1000000000} + info.st_mtim.tv_nsec};
}

// How `now` differs from `then`, or "" when it does not.
std::string difference(const FileStamp& now, const FileStamp& then) {
  if (now.bytes < 0) return "it is no longer a regular file";
  if (now.bytes != then.bytes) return fmt::format("{} bytes, was {}", now.bytes, then.bytes);
  if (now.device != then.device || now.inode != then.inode)
    return "another file of the same size took its place";
  if (now.modified_ns != then.modified_ns) return "it was rewritten: its modification time moved";
  return "";
}

// A read-only mapping of a whole file, unmapped at the end of its scope.
struct Mapping {
  void* data;
  size_t bytes;
  Mapping(int fd, size_t n) : data(::mmap(nullptr, n, PROT_READ, MAP_SHARED, fd, 0)), bytes(n) {}
  ~Mapping() {
    if (data != MAP_FAILED) ::munmap(data, bytes);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

}  // namespace

Shard::Shard(const std::string& path, int64_t vocab_size) : path_(path), vocab_size_(vocab_size) {
  const OpenFile file(path);  // O_NONBLOCK: a FIFO's open would wait for a writer
  if (file.fd < 0) fail("cannot open token shard {}: {}", path, std::strerror(errno));
  stamp_ = stamp_of(file.fd);
  if (stamp_.bytes < 0) fail("token shard {} is not a regular file", path);
  if (stamp_.bytes < kShardHeaderBytes)
    fail("token shard {} is {} bytes, smaller than its {}-byte header", path, stamp_.bytes,
         kShardHeaderBytes);
  check_file(file.fd, stamp_.bytes);
}

void Shard::check_file(int fd, int64_t file_bytes) {
  const Mapping mapping(fd, static_cast<size_t>(file_bytes));
  if (mapping.data == MAP_FAILED)
    fail("cannot map token shard {}: {}", path_, std::strerror(errno));
  const int32_t* header = static_cast<const int32_t*>(mapping.data);
  version_ = version_of_header(header[0], header[1], path_);
  count_ = header[2];
  if (count_ <= 0)
    fail("token shard {} holds no tokens: its header count is {}, expected at least 1", path_,
         count_);
  const int64_t expected_bytes = kShardHeaderBytes + count_ * token_width(version_);
  if (file_bytes != expected_bytes)
    fail(
        "token shard {} has size {} bytes, expected {} (1024-byte header + {} tokens x {} "
        "bytes): truncated or corrupt",
        path_, file_bytes, expected_bytes, count_, token_width(version_));
  const char* tokens = static_cast<const char*>(mapping.data) + kShardHeaderBytes;
  largest_id_ =
      version_ == ShardVersion::u16
          ? check_ids_below(reinterpret_cast<const uint16_t*>(tokens), count_, vocab_size_, path_)
          : check_ids_below(reinterpret_cast<const uint32_t*>(tokens), count_, vocab_size_, path_);
}

void Shard::changed(const std::string& how) const {
  fail("token shard {} changed while it was being read ({}); restore it as it was", path_, how);
}

void Shard::read(int64_t start, int64_t count, int32_t* out) const {
  SSA_CHECK(start >= 0 && count >= 0 && start + count <= count_,
            "tokens [{}, {}) of a {}-token shard", start, start + count, count_);
  const OpenFile file(path_);
  if (file.fd < 0) changed(fmt::format("cannot open it: {}", std::strerror(errno)));
  const std::string how = difference(stamp_of(file.fd), stamp_);
  if (!how.empty()) changed(how);
  const int64_t width = token_width(version_);
  std::vector<char> raw(static_cast<size_t>(count * width));
  const off_t offset = static_cast<off_t>(kShardHeaderBytes + start * width);
  for (size_t done = 0; done < raw.size();) {
    const ssize_t got =
        ::pread(file.fd, raw.data() + done, raw.size() - done, offset + static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) changed(got < 0 ? std::strerror(errno) : "it ended early");
    done += static_cast<size_t>(got);
  }
  for (int64_t i = 0; i < count; ++i) {
    uint32_t id = 0;
    std::memcpy(&id, raw.data() + i * width, static_cast<size_t>(width));  // little-endian
    if (static_cast<int64_t>(id) >= vocab_size_)
      changed(fmt::format("token id {} at index {}, not below the vocab size {}", id, start + i,
                          vocab_size_));
    out[i] = static_cast<int32_t>(id);
  }
}

}  // namespace ssa
