#pragma once
// The Encoder's memo of chunk -> ids: an open-addressing table (linear probing, at most half
// full) whose slots point into two arenas, one for the chunks' bytes and one for their ids.
// Flat, so a lookup costs about two cache misses instead of a node-based map's pointer chase.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ssa {

class ChunkCache {
 public:
  static constexpr size_t kMaxChunkBytes = 255;

  // The ids cached for `chunk`, or an empty span when it is not cached.
  std::span<const uint32_t> find(std::string_view chunk) const;
  // Caches a chunk of 1..kMaxChunkBytes bytes (not already cached) with its ids.
  void insert(std::string_view chunk, std::span<const uint32_t> ids);
  size_t size() const { return used_; }
  void clear();

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t bytes_offset = 0;
    uint32_t ids_offset = 0;
    uint8_t bytes_count = 0;  // 0 marks an empty slot
    uint8_t ids_count = 0;
  };

  static uint64_t hash_of(std::string_view chunk);
  size_t slot_of(std::string_view chunk, uint64_t hash) const;
  void grow();

  std::vector<Slot> slots_ = std::vector<Slot>(1024);
  std::string bytes_;
  std::vector<uint32_t> ids_;
  size_t used_ = 0;
};

}  // namespace ssa
