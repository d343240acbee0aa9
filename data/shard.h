#pragma once
// Token shards. Layout (little-endian), llm.c's:
//   int32 header[256] = {magic, version, token count, 0...}, then `count` tokens.
// Accepted (magic, version) pairs: (20240520, 1) uint16 tokens, ours and llm.c's GPT-2;
// (20240520, 2) uint32 tokens, ours; (20240801, 7) uint32 tokens, llm.c's Llama 3.
// We write 20240520 with version 1 or 2.
#include <cstdint>
#include <span>
#include <string>

namespace ssa {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kLlamaShardMagic = 20240801;  // llm.c's Llama 3 shards, version 7 only
constexpr int32_t kLlamaShardVersion = 7;
constexpr int64_t kShardHeaderBytes = 256 * 4;

// The on-disk version; `automatic` picks u16 when every id < 65536, else u32.
enum class ShardVersion : int32_t { automatic = 0, u16 = 1, u32 = 2 };

// Writes `path` + ".tmp", then renames it to `path`.
void write_shard(const std::string& path, std::span<const uint32_t> tokens,
                 ShardVersion version = ShardVersion::automatic);

// Size, identity and modification time of a shard's file (bytes −1: not a regular file).
struct FileStamp {
  int64_t bytes = -1;
  uint64_t device = 0, inode = 0;
  int64_t modified_ns = 0;
};

// A token shard on disk. Opening checks the header, the file size and that every id <
// vocab_size (reading it through a read-only mapping, unmapped again); each read() opens the
// file, checks that it is the same file, unchanged (size, device and inode, modification time),
// and the ids it read, so that a shard truncated, rewritten or replaced while a run reads it is
// an error naming it (not a bus error, nor other tokens). Holds no file descriptor between reads.
class Shard {
 public:
  Shard(const std::string& path, int64_t vocab_size);

  const std::string& path() const { return path_; }
  int64_t size() const { return count_; }
  // The token width as our version: u16, or u32 (our version 2 and llm.c's Llama 3 shards).
  ShardVersion version() const { return version_; }
  // The largest token id it holds.
  uint32_t largest_id() const { return largest_id_; }
  // Copies tokens [start, start + count) widened to int32 into `out`.
  void read(int64_t start, int64_t count, int32_t* out) const;

 private:
  // Reads the header, the size and the ids of the open file `fd` of `file_bytes` bytes.
  void check_file(int fd, int64_t file_bytes);
  [[noreturn]] void changed(const std::string& how) const;

  std::string path_;
  int64_t vocab_size_ = 0;
  FileStamp stamp_;
  int64_t count_ = 0;
  ShardVersion version_ = ShardVersion::u16;
  uint32_t largest_id_ = 0;
};

}  // namespace ssa
