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

Shard::Shard(const std::string& path, int64_t vocab_size) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);  // a FIFO's open would wait for a writer
  if (fd < 0) fail("cannot open token shard {}: {}", path, std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    fail("token shard {} is not a regular file", path);
  }
  int64_t file_bytes = info.st_size;
  if (file_bytes < kShardHeaderBytes) {
    ::close(fd);
    fail("token shard {} is {} bytes, smaller than its {}-byte header", path, file_bytes,
         kShardHeaderBytes);
  }
  mapping_bytes_ = static_cast<size_t>(file_bytes);
  mapping_ = ::mmap(nullptr, mapping_bytes_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    fail("cannot map token shard {}: {}", path, std::strerror(errno));
  }
  try {
    const int32_t* header = static_cast<const int32_t*>(mapping_);
    version_ = version_of_header(header[0], header[1], path);
    count_ = header[2];
    if (count_ <= 0)
      fail("token shard {} holds no tokens: its header count is {}, expected at least 1", path,
           count_);
    int64_t expected_bytes = kShardHeaderBytes + count_ * token_width(version_);
    if (file_bytes != expected_bytes)
      fail(
          "token shard {} has size {} bytes, expected {} (1024-byte header + {} tokens x {} "
          "bytes): truncated or corrupt",
          path, file_bytes, expected_bytes, count_, token_width(version_));
    tokens_ = static_cast<const char*>(mapping_) + kShardHeaderBytes;
    check_tokens(vocab_size);
  } catch (...) {
    unmap();
    throw;
  }
}

Shard::~Shard() { unmap(); }

Shard::Shard(Shard&& other) noexcept { *this = std::move(other); }

Shard& Shard::operator=(Shard&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_bytes_ = std::exchange(other.mapping_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
    count_ = std::exchange(other.count_, 0);
    version_ = other.version_;
    largest_id_ = other.largest_id_;
  }
  return *this;
}

void Shard::unmap() {
  if (mapping_) ::munmap(mapping_, mapping_bytes_);
  mapping_ = nullptr;
}

uint32_t Shard::operator[](int64_t index) const {
  SSA_CHECK(index >= 0 && index < count_, "token {} of a {}-token shard", index, count_);
  if (version_ == ShardVersion::u16) return static_cast<const uint16_t*>(tokens_)[index];
  return static_cast<const uint32_t*>(tokens_)[index];
}

void Shard::read(int64_t start, int64_t count, int32_t* out) const {
  SSA_CHECK(start >= 0 && count >= 0 && start + count <= count_,
            "tokens [{}, {}) of a {}-token shard", start, start + count, count_);
  if (version_ == ShardVersion::u16) {
    std::copy_n(static_cast<const uint16_t*>(tokens_) + start, count, out);
  } else {
    std::copy_n(static_cast<const uint32_t*>(tokens_) + start, count, out);
  }
}

namespace {

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

void Shard::check_tokens(int64_t vocab_size) {
  largest_id_ =
      version_ == ShardVersion::u16
          ? check_ids_below(static_cast<const uint16_t*>(tokens_), count_, vocab_size, path_)
          : check_ids_below(static_cast<const uint32_t*>(tokens_), count_, vocab_size, path_);
}

}  // namespace ssa
